package onnx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/orthotriage/orthotriage/inference"
)

var (
	envMu   sync.Mutex
	envPath string
)

// Init loads the ONNX Runtime library at path and creates the process's one
// environment. Calling it again with the same path does nothing; another
// path is an error while the environment exists.
func Init(path string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if ort.IsInitialized() {
		if path != envPath {
			return fmt.Errorf("onnx runtime already loaded from %s, not %s", envPath, path)
		}
		return nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(); err != nil {
		return fmt.Errorf("load onnx runtime %s: %w", path, err)
	}
	envPath = path
	return nil
}

// SessionOptions are the ONNX Runtime settings of a model session.
type SessionOptions struct {
	IntraOpThreads    int    // 0: ONNX Runtime's default (one per core)
	GraphOptimization string // all (default), extended, basic or disabled
	ExecutionProvider string // cpu (default) or cuda
	// Spinning lets ONNX Runtime's worker threads spin between runs
	// (lower latency for back-to-back runs, a core burnt while idle); off
	// by default: a service waits between hooks.
	Spinning bool
}

var graphLevels = map[string]ort.GraphOptimizationLevel{
	"":         ort.GraphOptimizationLevelEnableAll,
	"all":      ort.GraphOptimizationLevelEnableAll,
	"extended": ort.GraphOptimizationLevelEnableExtended,
	"basic":    ort.GraphOptimizationLevelEnableBasic,
	"disabled": ort.GraphOptimizationLevelDisableAll,
}

// Model is a loaded model: its manifest and an ONNX Runtime session whose
// inputs and outputs were checked against the manifest.
type Model struct {
	manifest *inference.Manifest
	session  *ort.DynamicAdvancedSession
	logits   int // index of the logits output
	cam      int // index of the cam output, -1 when absent
	features int // index of the features output, -1 when absent
	guard    sessionGuard
}

// Load creates the session of a model whose manifest was loaded with
// inference.LoadManifest or LoadManifestFS. Init must have been called (Open
// does both). It fails, naming the file, when the ONNX file is missing or
// its inputs and outputs differ from the manifest.
func Load(m *inference.Manifest, opt SessionOptions) (*Model, error) {
	if !ort.IsInitialized() {
		return nil, errors.New("onnx: runtime not initialised")
	}
	data, err := m.ModelBytes()
	if err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.ModelPath(), err)
	}
	if err := checkTensors("input", m.Inputs, ins); err != nil {
		return nil, fmt.Errorf("model %s does not match its manifest: %w", m.ModelPath(), err)
	}
	if err := checkTensors("output", m.Outputs, outs); err != nil {
		return nil, fmt.Errorf("model %s does not match its manifest: %w", m.ModelPath(), err)
	}
	names := func(ts []inference.Tensor) []string {
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = t.Name
		}
		return out
	}
	s, err := newSession(m, data, names(m.Inputs), names(m.Outputs), opt)
	if err != nil {
		return nil, err
	}
	md := &Model{manifest: m, session: s, cam: -1, features: -1}
	for i, o := range m.Outputs {
		switch o.Role {
		case "logits":
			md.logits = i
		case "cam":
			md.cam = i
		case "features":
			md.features = i
		}
	}
	return md, nil
}

// newSession creates an ONNX Runtime session of one of m's files.
func newSession(m *inference.Manifest, data []byte, inputs, outputs []string, opt SessionOptions) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("model %s: session options: %w", m.ID, err)
	}
	defer so.Destroy()
	if opt.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opt.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("model %s: %w", m.ID, err)
		}
	}
	spin := "0"
	if opt.Spinning {
		spin = "1"
	}
	for _, key := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := so.AddSessionConfigEntry(key, spin); err != nil {
			return nil, fmt.Errorf("model %s: %s: %w", m.ID, key, err)
		}
	}
	level, ok := graphLevels[opt.GraphOptimization]
	if !ok {
		return nil, fmt.Errorf("model %s: unknown graph optimisation %q", m.ID, opt.GraphOptimization)
	}
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.ID, err)
	}
	switch opt.ExecutionProvider {
	case "", "cpu":
	case "cuda":
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("model %s: execution provider cuda is not available in this ONNX Runtime library: %w", m.ID, err)
		}
		defer cuda.Destroy()
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return nil, fmt.Errorf("model %s: execution provider cuda is not available in this ONNX Runtime library: %w", m.ID, err)
		}
	default:
		return nil, fmt.Errorf("model %s: unknown execution provider %q (cpu or cuda)", m.ID, opt.ExecutionProvider)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.ID, err)
	}
	return s, nil
}

// checkTensors compares the manifest's tensors with the file's, by name,
// element type and every fixed dimension.
func checkTensors(kind string, want []inference.Tensor, have []ort.InputOutputInfo) error {
	if len(want) != len(have) {
		return fmt.Errorf("%d %ss in the manifest, %d in the file", len(want), kind, len(have))
	}
	for _, w := range want {
		i := slices.IndexFunc(have, func(h ort.InputOutputInfo) bool { return h.Name == w.Name })
		if i < 0 {
			return fmt.Errorf("%s %q is not in the file", kind, w.Name)
		}
		h := have[i]
		if h.DataType != ort.TensorElementDataTypeFloat {
			return fmt.Errorf("%s %q is %v in the file, want float32", kind, w.Name, h.DataType)
		}
		if len(h.Dimensions) != len(w.Shape) {
			return fmt.Errorf("%s %q has shape %v in the file, manifest %v", kind, w.Name, h.Dimensions, w.Shape)
		}
		for d, n := range w.Shape {
			if n > 0 && h.Dimensions[d] != n {
				return fmt.Errorf("%s %q has shape %v in the file, manifest %v", kind, w.Name, h.Dimensions, w.Shape)
			}
		}
	}
	return nil
}

// Manifest is the model's manifest.
func (md *Model) Manifest() *inference.Manifest { return md.manifest }

// cropSize is the number of values of one input crop.
func (md *Model) cropSize() int {
	in := md.manifest.Inputs[0].Shape
	return int(in[2] * in[3])
}

// RunRaw runs the session on caller-owned ONNX Runtime values with no pre-
// or postprocessing: the baseline the benchmarks compare the pipeline with.
func (md *Model) RunRaw(inputs, outputs []ort.Value) error {
	if !md.guard.enter() {
		return fmt.Errorf("onnx: model %s: %w", md.manifest.ID, ErrClosed)
	}
	defer md.guard.leave()
	return md.session.Run(inputs, outputs)
}

// Close releases the session once the runs under way are done; later runs
// fail with ErrClosed, and later calls of Close do nothing.
func (md *Model) Close() error { return md.guard.close(md.session.Destroy) }

// UsesAfterClose is how many runs found the model closed.
func (md *Model) UsesAfterClose() uint64 { return md.guard.afterClose.Load() }

// Run classifies n prepared crops (n*height*width values, NCHW with one
// channel, as inference.Preprocess.Prepare writes them).
func (md *Model) Run(crops []float32, n int) ([]inference.Output, error) {
	in := md.manifest.Inputs[0].Shape
	per := md.cropSize()
	if n <= 0 || len(crops) != n*per {
		return nil, fmt.Errorf("onnx: %d values for %d crops of %d", len(crops), n, per)
	}
	if !md.guard.enter() {
		return nil, fmt.Errorf("onnx: model %s: %w", md.manifest.ID, ErrClosed)
	}
	defer md.guard.leave()
	x, err := ort.NewTensor(ort.NewShape(int64(n), 1, in[2], in[3]), crops)
	if err != nil {
		return nil, fmt.Errorf("onnx: input tensor: %w", err)
	}
	defer x.Destroy()
	outs := make([]ort.Value, len(md.manifest.Outputs))
	if err := md.session.Run([]ort.Value{x}, outs); err != nil {
		return nil, fmt.Errorf("onnx: model %s: %w", md.manifest.ID, err)
	}
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	logits, ok := outs[md.logits].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("onnx: model %s: logits are not float32", md.manifest.ID)
	}
	k := len(md.manifest.Labels)
	ld := logits.GetData()
	if len(ld) != n*k {
		return nil, fmt.Errorf("onnx: model %s: %d logits for %d crops of %d labels", md.manifest.ID, len(ld), n, k)
	}
	res := make([]inference.Output, n)
	for i := range n {
		res[i].Logits = slices.Clone(ld[i*k : (i+1)*k])
		res[i].Probabilities = inference.Softmax(res[i].Logits, md.manifest.Calibration.Temperature)
	}
	if md.cam >= 0 {
		cam, ok := outs[md.cam].(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("onnx: model %s: cam is not float32", md.manifest.ID)
		}
		shape := cam.GetShape()
		cd := cam.GetData()
		if len(shape) == 4 && int(shape[0]) == n {
			per := len(cd) / n
			for i := range n {
				res[i].CAM = slices.Clone(cd[i*per : (i+1)*per])
				res[i].CAMSize = [2]int{int(shape[2]), int(shape[3])}
			}
		}
	}
	if md.features >= 0 {
		ft, ok := outs[md.features].(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("onnx: model %s: features are not float32", md.manifest.ID)
		}
		fd := ft.GetData()
		if len(fd)%n != 0 {
			return nil, fmt.Errorf("onnx: model %s: %d feature values for %d crops", md.manifest.ID, len(fd), n)
		}
		per := len(fd) / n
		for i := range n {
			res[i].Features = slices.Clone(fd[i*per : (i+1)*per])
		}
	}
	return res, nil
}

// Classify is Run for callers that take a classifier (the offline commands
// run a model without a batcher). The session run cannot be interrupted:
// ctx is not consulted.
func (md *Model) Classify(_ context.Context, crops []float32, n int) ([]inference.Output, error) {
	return md.Run(crops, n)
}

// sessionGuard keeps a session from being destroyed under a run, and a run
// from reaching a destroyed session (a use after free in ONNX Runtime):
// runs hold it shared, Close exclusively; a run after Close is refused and
// counted.
type sessionGuard struct {
	mu         sync.RWMutex
	closed     bool
	closeErr   error
	afterClose atomic.Uint64
}

// enter begins a run; false (counted) when the session is closed.
func (g *sessionGuard) enter() bool {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		g.afterClose.Add(1)
		return false
	}
	return true
}

func (g *sessionGuard) leave() { g.mu.RUnlock() }

// close runs destroy once, after the runs under way.
func (g *sessionGuard) close(destroy func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed, g.closeErr = true, destroy()
	}
	return g.closeErr
}
