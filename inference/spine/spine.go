// Package spine is the vertebral fracture acuity pipeline of a lateral
// thoracolumbar radiograph, after the second source paper (deep transfer
// learning features, radiomics and clinical data fused into a nomogram):
//
//  1. the localiser finds the vertebral bodies T9-L5 and their levels on
//     the whole image (or the caller gives the bodies);
//  2. each body's square region of interest goes through the per-vertebra
//     network: none, acute or chronic, and its 2048-d pooled features;
//  3. the bodies the network calls fractured get IBSI radiomics of the box;
//  4. the fusion model (fusion.go) selects deep and radiomics features, runs
//     gradient-boosted trees (the deep-learning-radiomics score, DLR) and the
//     nomogram that adds the clinical data.
//
// The same code writes the training data (orthotriage phantom spine
// --crops-only), evaluates (orthotriage eval) and serves, so that a model is
// trained on exactly the numbers the service computes.
package spine

import (
	"context"
	"errors"
	"fmt"
	"image"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/radiomics"
)

// Localiser finds the vertebral bodies of a display-ready image (rows x
// cols, values in [0,1]); an empty answer means none could be localised.
// *onnx.LocaliserModel is one.
type Localiser interface {
	Find(pixels []float32, rows, cols int) ([]inference.Body, error)
}

// Classifier runs prepared crops through the per-vertebra network;
// *onnx.Batcher and *onnx.Model are ones.
type Classifier interface {
	Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error)
}

// MaxBodies bounds the bodies read per image (given or localised).
const MaxBodies = 32

// Pipeline reads the vertebral bodies of one image. Localiser, Net and
// Fusion may be nil while training data is written (each stage needs the
// ones before it).
type Pipeline struct {
	Manifest  *inference.Manifest
	Localiser Localiser
	Net       Classifier
	Fusion    *Fusion
}

// Reading is one vertebral body as the pipeline saw it.
type Reading struct {
	Body inference.Body
	// Given is set when the body came from the caller, not the localiser.
	Given bool
	// ROI is the network's input plane (preprocessing.resize, normalised).
	ROI []float32
	// Probabilities are the network's none, acute and chronic (label
	// order); nil without a network.
	Probabilities []float64
	// Deep are the network's pooled features; nil without a network.
	Deep []float32
	// Radiomics are the box's IBSI features; nil without a network or
	// when the body is not fractured (see Pipeline.Read).
	Radiomics radiomics.Features
}

// Fractured is the network's probability that the body is fractured
// (acute or chronic), and whether it reaches the normal label's threshold
// from the other side: a body is fractured when P(none) is below its
// threshold.
func (r Reading) Fractured(m *inference.Manifest) (float64, bool) {
	i := m.LabelIndex("none")
	if i < 0 || i >= len(r.Probabilities) {
		return 0, false
	}
	th, ok := m.Thresholds["none"]
	if !ok {
		th = 0.5
	}
	p := 1 - r.Probabilities[i]
	return p, r.Probabilities[i] < th
}

// Read localises the bodies of img (or takes given, when not empty), cuts
// each region of interest and, with a network, classifies them. Radiomics
// are computed for every body when all is set (training data), else only
// for fractured bodies. No body found is not an error: the answer is empty.
func (p *Pipeline) Read(ctx context.Context, img *imaging.Image, given []inference.Body, all bool) ([]Reading, error) {
	m := p.Manifest
	if m == nil || m.Vertebral == nil {
		return nil, errors.New("spine: no vertebral manifest")
	}
	rows, cols := img.Meta.Rows, img.Meta.Columns
	bodies := given
	if len(bodies) == 0 {
		if p.Localiser == nil {
			return nil, errors.New("spine: no localiser loaded and no bodies given")
		}
		var err error
		if bodies, err = p.Localiser.Find(img.Pixels, rows, cols); err != nil {
			return nil, err
		}
	} else if err := checkGiven(given, rows, cols); err != nil {
		return nil, err
	}
	if len(bodies) > MaxBodies {
		return nil, fmt.Errorf("spine: %d bodies, limit %d", len(bodies), MaxBodies)
	}
	pre := m.Preprocess
	w, h := pre.Resize.Width, pre.Resize.Height
	crops := make([]float32, len(bodies)*w*h)
	out := make([]Reading, len(bodies))
	for i, b := range bodies {
		plane := crops[i*w*h : (i+1)*w*h]
		if err := pre.CropResize(img.Pixels, rows, cols, m.Vertebral.ROI.ROIBox(b.Box), false, w, h, plane); err != nil {
			return nil, fmt.Errorf("spine: %s: %w", b.Level, err)
		}
		out[i] = Reading{Body: b, Given: len(given) > 0, ROI: plane}
	}
	if p.Net != nil && len(bodies) > 0 {
		outs, err := p.Net.Classify(ctx, crops, len(bodies))
		if err != nil {
			return nil, fmt.Errorf("spine: model %s: %w", m.ID, err)
		}
		for i := range out {
			out[i].Probabilities, out[i].Deep = outs[i].Probabilities, outs[i].Features
		}
	}
	for i := range out {
		if _, fractured := out[i].Fractured(m); !all && !fractured {
			continue
		}
		f, err := Radiomics(m, img, out[i].Body.Box)
		if err != nil {
			return nil, fmt.Errorf("spine: %s: %w", out[i].Body.Level, err)
		}
		out[i].Radiomics = f
	}
	return out, nil
}

// Radiomics computes the IBSI features of a body's box, inset as the
// manifest says, on the display values.
func Radiomics(m *inference.Manifest, img *imaging.Image, box image.Rectangle) (radiomics.Features, error) {
	r := m.Vertebral.ROI.RadiomicsBox(box).Intersect(image.Rect(0, 0, img.Meta.Columns, img.Meta.Rows))
	if r.Empty() {
		return nil, radiomics.ErrEmptyROI
	}
	s := radiomics.Slice{W: r.Dx(), H: r.Dy(), Values: make([]float64, r.Dx()*r.Dy()), Mask: make([]bool, r.Dx()*r.Dy())}
	for y := range s.H {
		row := img.Pixels[(r.Min.Y+y)*img.Meta.Columns:]
		for x := range s.W {
			s.Values[y*s.W+x] = float64(row[r.Min.X+x])
			s.Mask[y*s.W+x] = true
		}
	}
	sy, sx := img.Meta.PixelSpacing[0], img.Meta.PixelSpacing[1]
	return radiomics.All(s, sx, sy, m.Vertebral.RadiomicsBins)
}

// checkGiven refuses bodies outside the image, too small or unnamed.
func checkGiven(bodies []inference.Body, rows, cols int) error {
	seen := map[string]bool{}
	for i, b := range bodies {
		switch {
		case b.Level == "":
			return fmt.Errorf("spine: given body %d has no level", i)
		case seen[b.Level]:
			return fmt.Errorf("spine: level %s given twice", b.Level)
		case b.Box.Dx() < 4 || b.Box.Dy() < 4:
			return fmt.Errorf("spine: given body %s is smaller than 4x4 pixels", b.Level)
		case !b.Box.In(image.Rect(0, 0, cols, rows)):
			return fmt.Errorf("spine: given body %s %v lies outside the %dx%d image", b.Level, b.Box, cols, rows)
		}
		seen[b.Level] = true
	}
	return nil
}
