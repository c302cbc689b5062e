package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/phantom"
)

// maxPhantoms bounds one run (about 0.5 MB of DICOM per case).
const maxPhantoms = 100000

// phantomCmd runs `orthotriage phantom pelvis|spine`.
func phantomCmd(ctx context.Context, args []string, library string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("phantom", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 10, "number of radiographs")
	seed := fs.Uint64("seed", 1, "generator seed; a case depends only on (seed, index)")
	start := fs.Int("start", 0, "index of the first case")
	out := fs.String("out", "", "output `DIR` (created)")
	cropsOnly := fs.Bool("crops-only", false, "write the model inputs computed by the service's own code instead of DICOM files: pelvis crops.npy and crops.csv; spine localiser.npy and localiser.csv, then, for each stage of --model already trained, rois.npy, rois.csv, radiomics.csv and deep.npy; pelvis with a vertebral --model: localiser inputs with no vertebra (negatives)")
	model := fs.String("model", "", "shipped model `ID` or folder whose manifest defines the inputs (with --crops-only; default hip-000 or spine-000)")
	pngs := fs.Bool("png", false, "also write an 8-bit PNG preview beside each DICOM file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orthotriage phantom pelvis|spine --n N --seed S --out DIR [--crops-only] [--png]")
		fs.PrintDefaults()
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs.Usage()
		return errors.New("phantom: say pelvis or spine")
	}
	kind := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch {
	case kind != "pelvis" && kind != "spine":
		return fmt.Errorf("phantom: unknown kind %q (pelvis or spine)", kind)
	case *out == "":
		return errors.New("phantom: --out DIR is required")
	case *n < 1 || *n > maxPhantoms:
		return fmt.Errorf("phantom: --n %d outside 1-%d", *n, maxPhantoms)
	case *start < 0:
		return fmt.Errorf("phantom: --start %d is negative", *start)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("phantom: %w", err)
	}
	g := phantomRun{kind: kind, n: *n, seed: *seed, start: *start, out: *out, png: *pngs, stderr: stderr}
	if *cropsOnly {
		if *model == "" {
			*model = map[string]string{"pelvis": "hip-000", "spine": "spine-000"}[kind]
		}
		m, err := loadManifest(*model)
		if err != nil {
			return fmt.Errorf("phantom: --model: %w", err)
		}
		switch {
		case kind == "spine" && m.Task == inference.TaskVertebral:
			return g.spineCrops(ctx, m, library, stdout)
		case kind == "pelvis" && m.Task == inference.TaskVertebral:
			// Images without a vertebra to find: the localiser's negatives.
			return g.localiserNegatives(ctx, m, stdout)
		case kind == "spine":
			return fmt.Errorf("phantom: --model %s is a %s model, spine phantoms need a %s model", *model, m.Task, inference.TaskVertebral)
		}
		g.pre = &m.Preprocess
	}
	return g.run(ctx, stdout)
}

type phantomRun struct {
	kind   string
	n      int
	seed   uint64
	start  int
	out    string
	png    bool
	pre    *inference.Preprocess
	stderr io.Writer
}

// phantomItem is one generated case ready to be written in order.
type phantomItem struct {
	rows  [][]string // label rows
	crops []float32
	err   error
}

func (g phantomRun) run(ctx context.Context, stdout io.Writer) error {
	began := time.Now()
	var header []string
	labelsName := "labels.csv"
	switch {
	case g.pre != nil:
		header = []string{"index", "file", "side", "class", "difficulty", "detail"}
		labelsName = "crops.csv"
	case g.kind == "pelvis":
		header = []string{"file", "left", "right", "left_difficulty", "right_difficulty", "left_detail", "right_detail"}
	default:
		header = phantom.SpineHeader
	}
	lf, err := os.Create(filepath.Join(g.out, labelsName))
	if err != nil {
		return fmt.Errorf("phantom: %w", err)
	}
	defer lf.Close()
	labels := csv.NewWriter(lf)
	labels.Write(header)

	var npy *bufio.Writer
	var nf *os.File
	if g.pre != nil {
		nf, err = os.Create(filepath.Join(g.out, "crops.npy"))
		if err != nil {
			return fmt.Errorf("phantom: %w", err)
		}
		defer nf.Close()
		npy = bufio.NewWriterSize(nf, 1<<20)
		w, h := g.pre.Resize.Width, g.pre.Resize.Height
		if err := writeNPYHeader(npy, []int{g.n * len(g.pre.Regions), 1, h, w}); err != nil {
			return err
		}
	}
	err = inOrder(ctx, g.n, func(i int) phantomItem { return g.make(g.start + i) }, func(i int, it phantomItem) error {
		if it.err != nil {
			return it.err
		}
		labels.WriteAll(it.rows)
		if npy != nil {
			if err := binary.Write(npy, binary.LittleEndian, it.crops); err != nil {
				return fmt.Errorf("phantom: crops.npy: %w", err)
			}
		}
		if done := i + 1; done%100 == 0 || done == g.n {
			fmt.Fprintf(g.stderr, "phantom: %d/%d %s cases (%.1fs)\n", done, g.n, g.kind, time.Since(began).Seconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	labels.Flush()
	if err := labels.Error(); err != nil {
		return fmt.Errorf("phantom: %s: %w", labelsName, err)
	}
	if npy != nil {
		if err := npy.Flush(); err != nil {
			return fmt.Errorf("phantom: crops.npy: %w", err)
		}
	}
	fmt.Fprintf(stdout, "wrote %d %s cases to %s (%s)\n", g.n, g.kind, g.out, labelsName)
	return nil
}

// inOrder makes items 0..n-1 on every core and hands each to use in
// index order; it stops at use's first error or when ctx ends.
func inOrder[T any](ctx context.Context, n int, produce func(i int) T, use func(i int, it T) error) error {
	items := make([]chan T, n)
	for i := range items {
		items[i] = make(chan T, 1)
	}
	jobs := make(chan int)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range jobs {
				items[i] <- produce(i)
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(done)
	for i := range n {
		select {
		case it := <-items[i]:
			if err := use(i, it); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// make generates case i and writes its files.
func (g phantomRun) make(i int) phantomItem {
	var img imaging.Radiograph
	var id string
	var rows [][]string
	var pc phantom.PelvisCase
	switch g.kind {
	case "pelvis":
		pc = phantom.Pelvis(g.seed, i)
		img, id = pc.Image, pc.ID
	default:
		sc := phantom.Spine(g.seed, i)
		img, id = sc.Image, sc.ID
		rows = sc.Rows(id + ".dcm")
	}
	var dcm bytes.Buffer
	if err := imaging.WriteDICOM(&dcm, img); err != nil {
		return phantomItem{err: fmt.Errorf("phantom %s: %w", id, err)}
	}
	if g.pre != nil {
		// The same path as the service: decode the DICOM bytes, then the
		// manifest's crops.
		dec, err := imaging.Decode(dcm.Bytes(), imaging.Limits{})
		if err != nil {
			return phantomItem{err: fmt.Errorf("phantom %s: decode: %w", id, err)}
		}
		w, h := g.pre.Resize.Width, g.pre.Resize.Height
		crops := make([]float32, len(g.pre.Regions)*w*h)
		regions, err := g.pre.Prepare(dec.Pixels, dec.Meta.Rows, dec.Meta.Columns, crops)
		if err != nil {
			return phantomItem{err: fmt.Errorf("phantom %s: %w", id, err)}
		}
		for k, r := range regions {
			hip := pc.Right
			if r.Region.Laterality == "left" {
				hip = pc.Left
			}
			// index is the crop's row in this run's crops.npy.
			index := (i-g.start)*len(regions) + k
			rows = append(rows, []string{strconv.Itoa(index), id, r.Region.Laterality, hip.Class, hip.Difficulty, hip.Detail})
		}
		return phantomItem{rows: rows, crops: crops}
	}
	name := id + ".dcm"
	if g.kind == "pelvis" {
		rows = [][]string{{name, pc.Left.Class, pc.Right.Class, pc.Left.Difficulty, pc.Right.Difficulty, pc.Left.Detail, pc.Right.Detail}}
	}
	if err := os.WriteFile(filepath.Join(g.out, name), dcm.Bytes(), 0o644); err != nil {
		return phantomItem{err: fmt.Errorf("phantom: %w", err)}
	}
	if g.png {
		dec, err := imaging.Decode(dcm.Bytes(), imaging.Limits{})
		if err != nil {
			return phantomItem{err: fmt.Errorf("phantom %s: decode: %w", id, err)}
		}
		if err := writePreview(filepath.Join(g.out, id+".png"), dec); err != nil {
			return phantomItem{err: err}
		}
	}
	return phantomItem{rows: rows}
}

// writePreview writes the display-ready image as an 8-bit PNG.
func writePreview(path string, img *imaging.Image) error {
	m := img.Meta
	g := image.NewGray(image.Rect(0, 0, m.Columns, m.Rows))
	for i, v := range img.Pixels {
		g.Pix[i] = uint8(math.Round(float64(max(0, min(1, v))) * 255))
	}
	return savePNG(path, g)
}

// writeNPYHeader writes a NumPy .npy version 1.0 header for a C-ordered
// little-endian float32 array of the given shape.
func writeNPYHeader(w io.Writer, shape []int) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", strings.Join(dims, ", "))
	// Magic (6) + version (2) + header length (2) + dict, padded with
	// spaces and a newline to a multiple of 64 bytes.
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	hdr := append([]byte("\x93NUMPY\x01\x00"), byte(len(dict)), byte(len(dict)>>8))
	if _, err := w.Write(append(hdr, dict...)); err != nil {
		return fmt.Errorf("phantom: crops.npy: %w", err)
	}
	return nil
}
