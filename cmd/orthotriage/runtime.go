package main

import (
	"github.com/orthotriage/orthotriage/app"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/onnx"
)

// onnxRuntime is the service's model runtime (app.Runtime): ONNX Runtime
// through inference/onnx, with the onnxruntime settings. It lives here, in
// the one package that links both, so that app builds without cgo.
type onnxRuntime struct{ opt onnx.Options }

var _ app.Runtime = onnxRuntime{}

func newRuntime(o config.ONNXRuntime) onnxRuntime {
	return onnxRuntime{opt: onnx.Options{Library: o.Library, BatchMax: o.BatchMax, BatchWait: o.BatchWait,
		Session: onnx.SessionOptions{IntraOpThreads: o.IntraOpThreads, GraphOptimization: o.GraphOptimization,
			ExecutionProvider: o.ExecutionProvider, Spinning: o.AllowSpinning}}}
}

// Start loads the ONNX Runtime library (see onnx.Start).
func (r onnxRuntime) Start() error {
	_, err := onnx.Start(r.opt.Library)
	return err
}

// Open loads m's sessions behind a batcher (see onnx.Open).
func (r onnxRuntime) Open(m *inference.Manifest) (app.Model, error) {
	l, err := onnx.Open(m, r.opt)
	if err != nil {
		return nil, err
	}
	return onnx.Serve(l), nil
}
