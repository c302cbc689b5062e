package imaging

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Inspection is what the pipeline sees of one radiograph: its encoding,
// the attributes the models are chosen by, and the stored and display
// value ranges (`orthotriage inspect` prints it as JSON).
type Inspection struct {
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

// Inspect describes a decoded image read from source (a path, or a URL as
// SourceName shows it).
func Inspect(source string, img *Image) Inspection {
	m := img.Meta
	r := Inspection{
		Source: source, TransferSyntax: m.TransferSyntax, Photometric: m.Photometric, Rows: m.Rows, Columns: m.Columns,
		BitsAllocated: m.BitsAllocated, BitsStored: m.BitsStored, PixelRepresentation: m.PixelRepresentation,
		PixelSpacing: m.PixelSpacing, SpacingSource: m.SpacingSource, Modality: m.Modality, ViewPosition: m.ViewPosition,
		Laterality: m.Laterality, BodyPart: m.BodyPart, Lossy: m.Lossy, VOI: m.VOI,
		StoredMin: img.Stats.StoredMin, StoredMax: img.Stats.StoredMax, StoredMean: round6(img.Stats.StoredMean),
	}
	r.OutputMin, r.OutputMax, r.OutputMean = outputStats(img.Pixels)
	return r
}

// SourceName is a file path or URL as errors and reports may show it: a
// URL's password is masked.
func SourceName(src string) string {
	if u, err := url.Parse(src); err == nil && u.User != nil {
		return u.Redacted()
	}
	return src
}

// dicomAccept asks a WADO-RS instance URL for the file as stored (Orthanc
// refuses a bare application/dicom, and any list naming it, with 400); a
// server that answers with a plain application/dicom body is read too.
const dicomAccept = `multipart/related; type="application/dicom"; transfer-syntax=*`

// ReadSource reads a file, or GETs a URL (a WADO-RS instance or a plain
// file) within 30 s, up to limit bytes. It is for a person's own command
// line: the URL is not checked against any egress policy.
func ReadSource(ctx context.Context, src string, limit int64) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return readFile(src, limit)
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
		parts, err := ReadMultipart(resp.Body, ctype, limit, 1)
		if err != nil {
			return nil, err
		}
		return parts[0], nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

// readFile reads a file in one allocation of its size (io.ReadAll would
// grow its buffer by doubling, costing up to twice the file).
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, st.Size(), limit)
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
	return round6(lo), round6(hi), round6(sum / float64(len(p)))
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
