// Package dataset writes phantom data sets: synthetic radiographs as DICOM
// files with their labels.csv, and the training data of the reference
// models, computed by the service's own decoding and preprocessing (hip
// crops; the vertebral localiser's inputs and targets, then, for each stage
// of a vertebral model already trained, its regions of interest,
// radiomics and deep features), so that a model is trained on exactly the
// numbers the service computes.
//
// Cases are generated on every core and written in index order; a case
// depends only on the seed and its index.
package dataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/phantom"
)

// Run is one data set: cases Start..Start+N-1 of a phantom series, written
// into the folder Out, which exists.
type Run struct {
	Kind  string // pelvis or spine
	N     int
	Seed  uint64
	Start int
	Out   string
	// Vary is the cases' positioning and acquisition variation; the zero
	// Variation gives the default cases.
	Vary phantom.Variation
	// PNG also writes an 8-bit preview beside each DICOM file.
	PNG bool
	// Crops, for pelvis, writes the model inputs its preprocessing makes
	// (crops.npy, with one crops.csv row per crop) instead of DICOM files.
	Crops *inference.Preprocess
	// Progress, when set, gets a line every 100 cases.
	Progress io.Writer
	// OODAs, for an out-of-distribution run, is the region its images are
	// tagged as: "pelvis" (the default: AP pelvis, kinds OODKinds) or
	// "spine" (lateral spine, kinds SpineOODKinds).
	OODAs string
}

// item is one generated case ready to be written in order.
type item struct {
	rows  [][]string // label rows
	crops []float32
	err   error
}

func (g Run) progress() io.Writer {
	if g.Progress == nil {
		return io.Discard
	}
	return g.Progress
}

// Generate writes the radiographs (DICOM files and labels.csv), or with
// Crops the hip model's inputs, and says on stdout what it wrote.
func (g Run) Generate(ctx context.Context, stdout io.Writer) error {
	if err := g.Vary.Validate(); err != nil {
		return err
	}
	began := time.Now()
	header, labelsName := g.labelHeader()
	lf, err := os.Create(filepath.Join(g.Out, labelsName))
	if err != nil {
		return err
	}
	defer lf.Close()
	labels := csv.NewWriter(lf)
	labels.Write(header)
	var npy *outputs
	var crops *npyWriter
	if g.Crops != nil {
		npy = newOutputs(g.Out)
		defer npy.close()
		w, h := g.Crops.Resize.Width, g.Crops.Resize.Height
		if crops, err = npy.npy("crops.npy", []int{g.N * len(g.Crops.Regions), 1, h, w}); err != nil {
			return err
		}
	}
	err = inOrder(ctx, g.N, func(i int) item { return g.make(g.Start + i) }, func(i int, it item) error {
		if it.err != nil {
			return it.err
		}
		labels.WriteAll(it.rows)
		if crops != nil {
			crops.write(it.crops)
		}
		if done := i + 1; done%100 == 0 || done == g.N {
			fmt.Fprintf(g.progress(), "phantom: %d/%d %s cases (%.1fs)\n", done, g.N, g.Kind, time.Since(began).Seconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	labels.Flush()
	if err := labels.Error(); err != nil {
		return fmt.Errorf("%s: %w", labelsName, err)
	}
	if npy != nil {
		if err := npy.finish(); err != nil {
			return fmt.Errorf("crops.npy: %w", err)
		}
	}
	fmt.Fprintf(stdout, "wrote %d %s cases to %s (%s)\n", g.N, g.Kind, g.Out, labelsName)
	return nil
}

// labelHeader is the header and name of the run's labels file.
func (g Run) labelHeader() ([]string, string) {
	switch {
	case g.Crops != nil:
		return cropsHeader, "crops.csv"
	case g.Kind == "pelvis":
		return phantom.PelvisHeader, "labels.csv"
	default:
		return phantom.SpineHeader, "labels.csv"
	}
}

// make generates case i and writes its files.
func (g Run) make(i int) item {
	var img imaging.Radiograph
	var id string
	var rows [][]string
	var pc phantom.PelvisCase
	switch g.Kind {
	case "pelvis":
		var err error
		if pc, err = phantom.PelvisVaried(g.Seed, i, g.Vary); err != nil {
			return item{err: err}
		}
		img, id = pc.Image, pc.ID
		rows = [][]string{pc.Row(id + ".dcm")}
	default:
		sc, err := phantom.SpineVaried(g.Seed, i, g.Vary)
		if err != nil {
			return item{err: err}
		}
		img, id = sc.Image, sc.ID
		rows = sc.Rows(id + ".dcm")
	}
	var dcm bytes.Buffer
	if err := imaging.WriteDICOM(&dcm, img); err != nil {
		return item{err: fmt.Errorf("case %s: %w", id, err)}
	}
	if g.Crops != nil {
		return g.hipCrops(pc, i, dcm.Bytes())
	}
	name := id + ".dcm"
	if err := os.WriteFile(filepath.Join(g.Out, name), dcm.Bytes(), 0o644); err != nil {
		return item{err: err}
	}
	if g.PNG {
		dec, err := imaging.Decode(dcm.Bytes(), imaging.Limits{})
		if err != nil {
			return item{err: fmt.Errorf("case %s: decode: %w", id, err)}
		}
		if err := imaging.SavePNG(filepath.Join(g.Out, id+".png"), dec.Gray8()); err != nil {
			return item{err: err}
		}
	}
	return item{rows: rows}
}

// hipCrops cuts case i's hip crops the way the service does: decode the
// DICOM bytes, then the manifest's crops; each crop's row indexes this
// run's crops.npy.
func (g Run) hipCrops(pc phantom.PelvisCase, i int, dcm []byte) item {
	dec, err := imaging.Decode(dcm, imaging.Limits{})
	if err != nil {
		return item{err: fmt.Errorf("case %s: decode: %w", pc.ID, err)}
	}
	w, h := g.Crops.Resize.Width, g.Crops.Resize.Height
	crops := make([]float32, len(g.Crops.Regions)*w*h)
	regions, err := g.Crops.Prepare(dec.Pixels, dec.Meta.Rows, dec.Meta.Columns, crops)
	if err != nil {
		return item{err: fmt.Errorf("case %s: %w", pc.ID, err)}
	}
	var rows [][]string
	for k, r := range regions {
		hip := pc.Right
		if r.Region.Laterality == "left" {
			hip = pc.Left
		}
		index := (i-g.Start)*len(regions) + k
		rows = append(rows, []string{strconv.Itoa(index), pc.ID, r.Region.Laterality, hip.Class, hip.Difficulty, hip.Detail})
	}
	return item{rows: rows, crops: crops}
}

// decodeCase writes a case's radiograph as DICOM and decodes it, as the
// service would receive it.
func decodeCase(id string, r imaging.Radiograph) (*imaging.Image, error) {
	var dcm bytes.Buffer
	if err := imaging.WriteDICOM(&dcm, r); err != nil {
		return nil, fmt.Errorf("case %s: %w", id, err)
	}
	img, err := imaging.Decode(dcm.Bytes(), imaging.Limits{})
	if err != nil {
		return nil, fmt.Errorf("case %s: decode: %w", id, err)
	}
	return img, nil
}
