package inference

import (
	"errors"
	"fmt"
	"image"
	"math"

	ort "github.com/yalue/onnxruntime_go"
)

// Body is one vertebral body the localiser found.
type Body struct {
	Level    string          `json:"level"`
	Presence float64         `json:"presence"`
	Box      image.Rectangle `json:"box"` // in image pixels, clipped to the image
}

// LocaliserModel is a loaded vertebral localiser (see Localiser).
type LocaliserModel struct {
	spec    Localiser
	pre     Preprocess
	session *ort.DynamicAdvancedSession
}

// LoadLocaliser creates the session of a vertebral manifest's localiser and
// checks its input and output shapes against the manifest.
func LoadLocaliser(m *Manifest, opt SessionOptions) (*LocaliserModel, error) {
	if m.Vertebral == nil {
		return nil, fmt.Errorf("model %s: no vertebral localiser in the manifest", m.ID)
	}
	if !ort.IsInitialized() {
		return nil, errors.New("inference: onnx runtime not initialised")
	}
	l := m.Vertebral.Localiser
	data, err := m.ReadFile(l.File)
	if err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: localiser: %w", m.ID, err)
	}
	want := []Tensor{{Name: l.Input, Shape: []int64{-1, 1, int64(l.Height), int64(l.Width)}, DType: "float32"}}
	if err := checkTensors("input", want, ins); err != nil {
		return nil, fmt.Errorf("model %s: the localiser does not match the manifest: %w", m.ID, err)
	}
	want = []Tensor{{Name: l.Output, Shape: []int64{-1, int64(len(l.Levels)), 5}, DType: "float32"}}
	if err := checkTensors("output", want, outs); err != nil {
		return nil, fmt.Errorf("model %s: the localiser does not match the manifest: %w", m.ID, err)
	}
	s, err := newSession(m, data, []string{l.Input}, []string{l.Output}, opt)
	if err != nil {
		return nil, err
	}
	pre := m.Preprocess
	return &LocaliserModel{spec: l, pre: pre, session: s}, nil
}

// Input writes the localiser's input plane for an image: the whole image
// resized to the localiser's size with the manifest's filter and
// normalisation. dst holds Width x Height values.
func (lm *LocaliserModel) Input(pixels []float32, rows, cols int, dst []float32) error {
	return LocaliserInput(lm.spec, lm.pre, pixels, rows, cols, dst)
}

// LocaliserInput is LocaliserModel.Input without a loaded model (for
// writing training data).
func LocaliserInput(l Localiser, pre Preprocess, pixels []float32, rows, cols int, dst []float32) error {
	return pre.CropResize(pixels, rows, cols, image.Rect(0, 0, cols, rows), false, l.Width, l.Height, dst)
}

// Find localises the vertebral bodies of a display-ready image (rows x
// cols, values in [0,1]). Levels below the presence threshold and boxes of
// under 4 pixels a side are left out; an empty answer means nothing could
// be localised.
func (lm *LocaliserModel) Find(pixels []float32, rows, cols int) ([]Body, error) {
	l := lm.spec
	in := make([]float32, l.Width*l.Height)
	if err := lm.Input(pixels, rows, cols, in); err != nil {
		return nil, err
	}
	x, err := ort.NewTensor(ort.NewShape(1, 1, int64(l.Height), int64(l.Width)), in)
	if err != nil {
		return nil, fmt.Errorf("inference: localiser input: %w", err)
	}
	defer x.Destroy()
	outs := []ort.Value{nil}
	if err := lm.session.Run([]ort.Value{x}, outs); err != nil {
		return nil, fmt.Errorf("inference: localiser: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, errors.New("inference: localiser output is not float32")
	}
	return decodeBodies(l, t.GetData(), rows, cols)
}

// decodeBodies turns the localiser's [levels x 5] output into boxes.
func decodeBodies(l Localiser, out []float32, rows, cols int) ([]Body, error) {
	if len(out) != 5*len(l.Levels) {
		return nil, fmt.Errorf("inference: localiser gave %d values for %d levels", len(out), len(l.Levels))
	}
	var bodies []Body
	for k, level := range l.Levels {
		v := out[5*k : 5*k+5]
		p := float64(v[0])
		if !(p >= l.MinPresence) { // also NaN
			continue
		}
		cx, cy, w, h := float64(v[1])*float64(cols), float64(v[2])*float64(rows), float64(v[3])*float64(cols), float64(v[4])*float64(rows)
		if !(w >= 4 && h >= 4) || math.IsNaN(cx) || math.IsNaN(cy) {
			continue
		}
		box := image.Rect(int(math.Round(cx-w/2)), int(math.Round(cy-h/2)), int(math.Round(cx+w/2)), int(math.Round(cy+h/2)))
		box = box.Intersect(image.Rect(0, 0, cols, rows))
		if box.Dx() < 4 || box.Dy() < 4 {
			continue
		}
		bodies = append(bodies, Body{Level: level, Presence: math.Round(p*1e4) / 1e4, Box: box})
	}
	return bodies, nil
}

// ROIBox is the square the network reads around a body's box: side
// Scale x the longer side, centred on the box.
func (r ROI) ROIBox(box image.Rectangle) image.Rectangle {
	side := int(math.Round(r.Scale * float64(max(box.Dx(), box.Dy()))))
	side = max(side, 1)
	c := box.Min.Add(box.Max).Div(2)
	return image.Rect(c.X-side/2, c.Y-side/2, c.X-side/2+side, c.Y-side/2+side)
}

// RadiomicsBox is the box inset by Inset of its size on each side, the
// radiomics region of interest.
func (r ROI) RadiomicsBox(box image.Rectangle) image.Rectangle {
	dx, dy := int(math.Round(r.Inset*float64(box.Dx()))), int(math.Round(r.Inset*float64(box.Dy())))
	in := image.Rect(box.Min.X+dx, box.Min.Y+dy, box.Max.X-dx, box.Max.Y-dy)
	if in.Empty() {
		return box
	}
	return in
}

// Close releases the session.
func (lm *LocaliserModel) Close() error { return lm.session.Destroy() }
