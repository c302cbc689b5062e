package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
)

// inspectReport is what `orthotriage inspect` prints.
type inspectReport struct {
	Source              string     `json:"source"`
	TransferSyntax      string     `json:"transferSyntax"`
	Photometric         string     `json:"photometric"`
	Rows                int        `json:"rows"`
	Columns             int        `json:"columns"`
	BitsAllocated       int        `json:"bitsAllocated"`
	BitsStored          int        `json:"bitsStored"`
	PixelRepresentation int        `json:"pixelRepresentation"`
	PixelSpacing        [2]float64 `json:"pixelSpacing,omitempty"`
	SpacingSource       string     `json:"spacingSource,omitempty"`
	Modality            string     `json:"modality,omitempty"`
	ViewPosition        string     `json:"viewPosition,omitempty"`
	Laterality          string     `json:"laterality,omitempty"`
	BodyPart            string     `json:"bodyPart,omitempty"`
	Lossy               bool       `json:"lossy"`
	VOI                 string     `json:"voi"`
	StoredMin           int        `json:"storedMin"`
	StoredMax           int        `json:"storedMax"`
	StoredMean          float64    `json:"storedMean"`
	OutputMin           float64    `json:"outputMin"`
	OutputMax           float64    `json:"outputMax"`
	OutputMean          float64    `json:"outputMean"`
}

// inspect decodes one DICOM file or URL and prints what the pipeline sees.
func inspect(ctx context.Context, args []string, lim imaging.Limits, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pngOut := fs.String("png", "", "also write the decoded image as a 16-bit grayscale PNG to `FILE`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orthotriage inspect [--png OUT] FILE.dcm|URL")
		fs.PrintDefaults()
	}
	if len(args) > 1 && !strings.HasPrefix(args[0], "-") {
		args = append(args[1:], args[0]) // FILE before the flags
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("inspect: want one FILE.dcm or URL")
	}
	src := fs.Arg(0)
	if u, err := url.Parse(src); err == nil && u.User != nil {
		src = u.Redacted() // errors and the report never show a password
	}
	data, err := readSource(ctx, fs.Arg(0), lim.MaxBytes)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", src, err)
	}
	img, err := imaging.Decode(data, lim)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", src, err)
	}
	m := img.Meta
	r := inspectReport{
		Source: src, TransferSyntax: m.TransferSyntax, Photometric: m.Photometric, Rows: m.Rows, Columns: m.Columns,
		BitsAllocated: m.BitsAllocated, BitsStored: m.BitsStored, PixelRepresentation: m.PixelRepresentation,
		PixelSpacing: m.PixelSpacing, SpacingSource: m.SpacingSource, Modality: m.Modality, ViewPosition: m.ViewPosition,
		Laterality: m.Laterality, BodyPart: m.BodyPart, Lossy: m.Lossy, VOI: m.VOI,
		StoredMin: img.Stats.StoredMin, StoredMax: img.Stats.StoredMax, StoredMean: round(img.Stats.StoredMean),
	}
	r.OutputMin, r.OutputMax, r.OutputMean = outputStats(img.Pixels)
	if *pngOut != "" {
		if err := writePNG(*pngOut, img); err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// dicomAccept asks a WADO-RS instance URL for the file as stored (Orthanc
// refuses a bare application/dicom, and any list naming it, with 400); a
// server that answers with a plain application/dicom body is read too.
const dicomAccept = `multipart/related; type="application/dicom"; transfer-syntax=*`

// readSource reads a file, or GETs a URL (a WADO-RS instance or a plain
// file), up to max bytes.
func readSource(ctx context.Context, src string, max int64) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return readFile(src, max)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", dicomAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET answered %s", resp.Status)
	}
	ctype := resp.Header.Get("Content-Type")
	if strings.HasPrefix(strings.ToLower(ctype), "multipart/") {
		parts, err := imaging.ReadMultipart(resp.Body, ctype, max, 1)
		if err != nil {
			return nil, err
		}
		return parts[0], nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", imaging.ErrTooLarge, max)
	}
	return data, nil
}

// readFile reads a file in one allocation of its size (io.ReadAll would
// grow its buffer by doubling, costing up to twice the file).
func readFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", imaging.ErrTooLarge, st.Size(), max)
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	return data, nil
}

func outputStats(p []float32) (lo, hi, mean float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	var sum float64
	for _, v := range p {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
		sum += float64(v)
	}
	if len(p) == 0 {
		return 0, 0, 0
	}
	return round(lo), round(hi), round(sum / float64(len(p)))
}

func round(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func writePNG(path string, img *imaging.Image) error {
	g := image.NewGray16(image.Rect(0, 0, img.Meta.Columns, img.Meta.Rows))
	for i, v := range img.Pixels {
		g.SetGray16(i%img.Meta.Columns, i/img.Meta.Columns, color.Gray16{Y: uint16(math.Round(float64(v) * 65535))})
	}
	return savePNG(path, g)
}

// savePNG writes img to path as PNG.
func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
