package analysis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/internal/parallel"
)

// HipLocaliser finds the hip joints and the pelvis on a display-ready
// image (rows x cols, values in [0,1]); *onnx.LocaliserModel is one.
type HipLocaliser interface {
	FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error)
}

// HipModel is a hip classifier whose manifest has a localiser stage, with
// that localiser.
type HipModel struct {
	Classifier
	Localiser HipLocaliser
}

// Crops runs prepared crops through a model; a Classifier without its
// manifest (the command line's direct session).
type Crops interface {
	Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error)
}

// ModelOf binds a manifest to a session that has none, with the hip
// localiser when the manifest has one (nil otherwise), so that `analyze`
// and `eval` read images as the service does.
func ModelOf(m *inference.Manifest, c Crops, loc HipLocaliser) Classifier {
	b := bound{Crops: c, m: m}
	if loc != nil {
		return &HipModel{Classifier: b, Localiser: loc}
	}
	return b
}

type bound struct {
	Crops
	m *inference.Manifest
}

func (b bound) Manifest() *inference.Manifest { return b.m }

// HipReading is one hip image's reading: the Result, and when it was read
// the model's own findings and outputs, in region order (for overlays and
// evaluation).
type HipReading struct {
	Result   Result
	Findings []inference.Finding
	Outputs  []inference.Output
}

// ReadImage reads one decoded image with a model, through the image gate:
// a refused image gives a Result with NotRead and no finding. The Result's
// study is left for the caller.
func (a *Analyzer) ReadImage(ctx context.Context, c Classifier, img *imaging.Image, in Input) (Result, error) {
	if v, ok := c.(*VertebralModel); ok {
		return a.readVertebral(ctx, v, img, in)
	}
	hr, err := a.ReadHip(ctx, c, img)
	return hr.Result, err
}

// gateImage applies the gate's tag and image checks.
func (a *Analyzer) gateImage(g Gate, img *imaging.Image) *NotRead {
	if nr := g.Tags(img.Meta); nr != nil {
		return nr
	}
	return g.Quality(img)
}

// notRead is the Result of an image the gate refused, told the observer.
func (a *Analyzer) notRead(m *inference.Manifest, img *imaging.Image, nr *NotRead) Result {
	if a.Observer != nil {
		a.Observer.Refused(m.Task, nr.Reason)
	}
	r := newResult(m, img)
	r.NotRead = nr
	r.Analyzed = a.Now().UTC().Truncate(time.Second)
	return r
}

// readVertebral gates a lateral spine, reads it, and refuses it when too
// few levels were localised (unless the caller gave the bodies).
func (a *Analyzer) readVertebral(ctx context.Context, v *VertebralModel, img *imaging.Image, in Input) (Result, error) {
	m := v.Pipeline.Manifest
	g := GateFor(m)
	if nr := a.gateImage(g, img); nr != nil {
		return a.notRead(m, img, nr), nil
	}
	r, err := a.ReadVertebral(ctx, v, img, in)
	if err != nil || len(in.Bodies) > 0 {
		return r, err
	}
	if nr := g.Vertebrae(len(r.Localised)); nr != nil {
		if a.Observer != nil {
			a.Observer.Refused(m.Task, nr.Reason)
		}
		r.NotRead, r.Findings, r.Priority, r.Review = nr, nil, "", false
	}
	return r, nil
}

// ReadHip reads one AP pelvis through the gate: the tags and image checks,
// then, with a localiser, the pelvis and joints it finds (the crops follow
// them), else the manifest's fixed crops; then the model and the policy.
func (a *Analyzer) ReadHip(ctx context.Context, c Classifier, img *imaging.Image) (HipReading, error) {
	m := c.Manifest()
	g := GateFor(m)
	if nr := a.gateImage(g, img); nr != nil {
		return HipReading{Result: a.notRead(m, img, nr)}, nil
	}
	pre := m.Preprocess
	rows, cols := img.Meta.Rows, img.Meta.Columns
	t0 := time.Now()
	var crops []inference.Crop
	var hips *Hips
	if pre.Localiser != nil {
		hm, ok := c.(*HipModel)
		if !ok || hm.Localiser == nil {
			return HipReading{}, fmt.Errorf("analysis: model %s: its manifest has a hip localiser, none is loaded", m.ID)
		}
		h, err := hm.Localiser.FindHips(img.Pixels, rows, cols)
		if err != nil {
			return HipReading{}, fmt.Errorf("analysis: model %s: localiser: %w", m.ID, err)
		}
		hips = &Hips{Right: jointOf(h.Right), Left: jointOf(h.Left), Pelvis: h.Pelvis.Presence}
		nr := g.Hips(h)
		if nr == nil {
			right, left, inferred, _ := h.Complete()
			hips.Inferred = inferred
			if crops, err = pre.JointCrops(right, left); err != nil {
				if !errors.Is(err, inference.ErrNoJoint) {
					return HipReading{}, fmt.Errorf("analysis: %w", err)
				}
				nr = refuse(ReasonNoJoint, "no hip joint found: %v", err)
			}
		}
		if nr != nil {
			r := a.notRead(m, img, nr)
			r.Hips = hips
			return HipReading{Result: r}, nil
		}
	} else {
		crops = make([]inference.Crop, len(pre.Regions))
	}
	planes := make([]float32, len(crops)*pre.Resize.Width*pre.Resize.Height)
	var err error
	if pre.Localiser != nil {
		err = pre.PrepareCrops(img.Pixels, rows, cols, crops, planes)
	} else {
		crops, err = pre.Prepare(img.Pixels, rows, cols, planes)
	}
	if err != nil {
		return HipReading{}, fmt.Errorf("analysis: %w", err)
	}
	t1 := time.Now()
	outs, err := c.Classify(ctx, planes, len(crops))
	if err != nil {
		return HipReading{}, fmt.Errorf("analysis: model %s: %w", m.ID, err)
	}
	t2 := time.Now()
	a.inferred(m.ID, t2.Sub(t1))
	hr := HipReading{Result: newResult(m, img), Outputs: outs}
	r := &hr.Result
	r.Hips = hips
	if len(crops) > 0 {
		hr.Findings, r.Findings = make([]inference.Finding, len(crops)), make([]Finding, len(crops))
	}
	// Each hip's finding (with its heat-map thumbnail) side by side.
	parallel.Each(len(crops), func(k int) {
		hr.Findings[k] = m.Interpret(outs[k], crops[k])
		r.Findings[k] = a.hipFinding(m, img, hr.Findings[k], outs[k])
	})
	for _, out := range r.Findings {
		if PriorityRank(out.Priority) > PriorityRank(r.Priority) {
			r.Priority = out.Priority
		}
		r.Review = r.Review || out.LowConfidence
	}
	r.Analyzed = a.Now().UTC().Truncate(time.Second)
	r.Timings.Preprocess, r.Timings.Inference, r.Timings.Postprocess = ms(t1.Sub(t0)), ms(t2.Sub(t1)), ms(time.Since(t2))
	return hr, nil
}

// hipFinding is one hip's finding with the policy applied.
func (a *Analyzer) hipFinding(m *inference.Manifest, img *imaging.Image, f inference.Finding, o inference.Output) Finding {
	label := m.Labels[m.LabelIndex(f.Class)]
	out := Finding{
		Region: f.Region, Laterality: f.Laterality, Class: f.Class, Display: f.Display,
		Code:        Code{System: label.System, Code: label.Code, Display: label.CodeDisplay, Verified: label.Verified},
		Probability: round4(f.Probability), Reported: f.Reported, Normal: label.Normal,
		Priority: f.Priority, PriorityClass: f.PriorityClass,
		Box: [4]int{f.Box.Min.X, f.Box.Min.Y, f.Box.Dx(), f.Box.Dy()},
	}
	for _, l := range m.Labels {
		out.Probabilities = append(out.Probabilities, ClassProbability{Class: l.Key, Display: l.Display, Probability: round4(f.Probabilities[l.Key])})
	}
	out.LowConfidence = a.Policy.ReviewBelow > 0 && out.Probability < a.Policy.ReviewBelow
	if a.Policy.HeatmapSide > 0 {
		thumb := inference.Thumbnail(img.Pixels, img.Meta.Rows, img.Meta.Columns, f.Box, f.HeatAt(o), a.Policy.HeatmapSide)
		var buf bytes.Buffer
		if err := encodeThumbnail(&buf, thumb); err == nil {
			out.Heatmap = buf.Bytes()
		}
	}
	return out
}
