package app

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
)

// servedModel is a loaded model behind its batcher, with the vertebral
// pipeline around it for a vertebral model.
type servedModel struct{ *onnx.Loaded }

// classifier is what the analyzer runs.
func (s servedModel) classifier() analysis.Classifier {
	if s.Pipeline != nil {
		return &analysis.VertebralModel{Classifier: s.Batcher, Pipeline: s.Pipeline}
	}
	if s.HipLocaliser != nil {
		return &analysis.HipModel{Classifier: s.Batcher, Localiser: s.HipLocaliser}
	}
	return s.Batcher
}

// loadModels loads ONNX Runtime and every configured model, each behind a
// batcher, side by side (session creation is most of a start); they are
// served in the configured order. It fails, naming the file, when any is
// missing or mismatched, and then leaves none open.
func loadModels(o config.ONNXRuntime, log *slog.Logger) ([]servedModel, error) {
	if _, err := onnx.Start(o.Library); err != nil {
		return nil, err
	}
	opt := onnx.Options{Library: o.Library, BatchMax: o.BatchMax, BatchWait: o.BatchWait,
		Session: onnx.SessionOptions{IntraOpThreads: o.IntraOpThreads, GraphOptimization: o.GraphOptimization,
			ExecutionProvider: o.ExecutionProvider, Spinning: o.AllowSpinning}}
	loaded := make([]servedModel, len(o.Models))
	errs := make([]error, len(o.Models))
	var wg sync.WaitGroup
	for i, name := range o.Models {
		wg.Go(func() { loaded[i], errs[i] = loadModel(name, opt, o, log) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, m := range loaded {
			if errs[i] == nil {
				m.Close()
			}
		}
		return nil, err
	}
	return loaded, nil
}

// loadModel opens one configured model (a shipped id or a folder).
func loadModel(name string, opt onnx.Options, o config.ONNXRuntime, log *slog.Logger) (servedModel, error) {
	m, err := models.Lookup(name)
	if err != nil {
		return servedModel{}, fmt.Errorf("onnxruntime.models: %w", err)
	}
	l, err := onnx.Open(m, opt)
	if err != nil {
		return servedModel{}, err
	}
	log.Info("model loaded", "id", m.ID, "version", m.Version, "file", m.ModelPath(), "trainingData", m.TrainingData,
		"executionProvider", o.ExecutionProvider, "batchMax", o.BatchMax, "batchWait", o.BatchWait.String())
	if m.TrainingData == "synthetic" {
		log.Warn("model trained on synthetic data", "id", m.ID, "warning", m.Warning)
	}
	return servedModel{l}, nil
}
