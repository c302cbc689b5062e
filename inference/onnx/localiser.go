package onnx

import (
	"errors"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/orthotriage/orthotriage/inference"
)

// LocaliserModel is a loaded vertebral localiser (see inference.Localiser).
type LocaliserModel struct {
	spec    inference.Localiser
	pre     inference.Preprocess
	session *ort.DynamicAdvancedSession
	guard   sessionGuard
}

// LoadLocaliser creates the session of a vertebral manifest's localiser and
// checks its input and output shapes against the manifest.
func LoadLocaliser(m *inference.Manifest, opt SessionOptions) (*LocaliserModel, error) {
	if m.Vertebral == nil {
		return nil, fmt.Errorf("model %s: no vertebral localiser in the manifest", m.ID)
	}
	if !ort.IsInitialized() {
		return nil, errors.New("onnx: runtime not initialised")
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
	want := []inference.Tensor{{Name: l.Input, Shape: []int64{-1, 1, int64(l.Height), int64(l.Width)}, DType: "float32"}}
	if err := checkTensors("input", want, ins); err != nil {
		return nil, fmt.Errorf("model %s: the localiser does not match the manifest: %w", m.ID, err)
	}
	want = []inference.Tensor{{Name: l.Output, Shape: []int64{-1, int64(len(l.Levels)), 5}, DType: "float32"}}
	if err := checkTensors("output", want, outs); err != nil {
		return nil, fmt.Errorf("model %s: the localiser does not match the manifest: %w", m.ID, err)
	}
	s, err := newSession(m, data, []string{l.Input}, []string{l.Output}, opt)
	if err != nil {
		return nil, err
	}
	return &LocaliserModel{spec: l, pre: m.Preprocess, session: s}, nil
}

// Input writes the localiser's input plane for an image (see
// inference.LocaliserInput). dst holds Width x Height values.
func (lm *LocaliserModel) Input(pixels []float32, rows, cols int, dst []float32) error {
	return inference.LocaliserInput(lm.spec, lm.pre, pixels, rows, cols, dst)
}

// Find localises the vertebral bodies of a display-ready image (rows x
// cols, values in [0,1]). Levels below the presence threshold and boxes of
// under 4 pixels a side are left out; an empty answer means nothing could
// be localised.
func (lm *LocaliserModel) Find(pixels []float32, rows, cols int) ([]inference.Body, error) {
	l := lm.spec
	in := make([]float32, l.Width*l.Height)
	if err := lm.Input(pixels, rows, cols, in); err != nil {
		return nil, err
	}
	if !lm.guard.enter() {
		return nil, fmt.Errorf("onnx: localiser: %w", ErrClosed)
	}
	defer lm.guard.leave()
	x, err := ort.NewTensor(ort.NewShape(1, 1, int64(l.Height), int64(l.Width)), in)
	if err != nil {
		return nil, fmt.Errorf("onnx: localiser input: %w", err)
	}
	defer x.Destroy()
	outs := []ort.Value{nil}
	if err := lm.session.Run([]ort.Value{x}, outs); err != nil {
		return nil, fmt.Errorf("onnx: localiser: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, errors.New("onnx: localiser output is not float32")
	}
	return inference.DecodeBodies(l, t.GetData(), rows, cols)
}

// Close releases the session once the run under way is done; later runs
// fail with ErrClosed, and later calls of Close do nothing.
func (lm *LocaliserModel) Close() error { return lm.guard.close(lm.session.Destroy) }

// UsesAfterClose is how many runs found the localiser closed.
func (lm *LocaliserModel) UsesAfterClose() uint64 { return lm.guard.afterClose.Load() }
