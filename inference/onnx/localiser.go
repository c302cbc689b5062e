package onnx

import (
	"errors"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/orthotriage/orthotriage/inference"
)

// LocaliserModel is a loaded whole-image localiser (see
// inference.Localiser): a vertebral manifest's, or a hip manifest's
// preprocessing.localiser.
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
	return loadLocaliser(m, m.Vertebral.Localiser, opt)
}

// LoadHipLocaliser creates the session of a hip manifest's localiser
// (preprocessing.localiser) and checks it against the manifest.
func LoadHipLocaliser(m *inference.Manifest, opt SessionOptions) (*LocaliserModel, error) {
	if m.Preprocess.Localiser == nil {
		return nil, fmt.Errorf("model %s: no hip localiser in the manifest", m.ID)
	}
	return loadLocaliser(m, *m.Preprocess.Localiser, opt)
}

func loadLocaliser(m *inference.Manifest, l inference.Localiser, opt SessionOptions) (*LocaliserModel, error) {
	if !ort.IsInitialized() {
		return nil, errors.New("onnx: runtime not initialised")
	}
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
	out, err := lm.run(pixels, rows, cols)
	if err != nil {
		return nil, err
	}
	return inference.DecodeBodies(lm.spec, out, rows, cols)
}

// FindHips finds the hip joints and the pelvis of a display-ready image
// with a hip localiser (see inference.DecodeHips).
func (lm *LocaliserModel) FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error) {
	out, err := lm.run(pixels, rows, cols)
	if err != nil {
		return inference.HipJoints{}, err
	}
	return inference.DecodeHips(lm.spec, out, rows, cols)
}

// run is the localiser's raw output for one image: levels x 5 values.
func (lm *LocaliserModel) run(pixels []float32, rows, cols int) ([]float32, error) {
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
	return append([]float32(nil), t.GetData()...), nil
}

// Close releases the session once the run under way is done; later runs
// fail with ErrClosed, and later calls of Close do nothing.
func (lm *LocaliserModel) Close() error { return lm.guard.close(lm.session.Destroy) }

// UsesAfterClose is how many runs found the localiser closed.
func (lm *LocaliserModel) UsesAfterClose() uint64 { return lm.guard.afterClose.Load() }
