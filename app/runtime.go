package app

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// Runtime runs the models the service serves. cmd/orthotriage passes ONNX
// Runtime's (inference/onnx, built from the onnxruntime settings), so that
// app itself builds without cgo.
type Runtime interface {
	// Start loads the runtime (its library, once per process); New calls
	// it once, before any Open.
	Start() error
	// Open loads what manifest m needs to be served: its network behind a
	// batcher and, for a vertebral manifest, the pipeline around it,
	// checking each file against the manifest. On error nothing stays open.
	Open(m *inference.Manifest) (Model, error)
}

// Model is one loaded model as the service runs it.
type Model interface {
	// Classify and Manifest are the network behind its batcher.
	analysis.Classifier
	// Pipeline is a vertebral model's pipeline around the network; nil
	// for other tasks.
	Pipeline() *spine.Pipeline
	// HasHipLocaliser says whether a hip model's manifest has a localiser
	// stage, which FindHips runs (analysis.HipLocaliser).
	HasHipLocaliser() bool
	FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error)
	// Stats are the batches the batcher ran and the crops they held.
	Stats() (batches, crops uint64)
	// UsesAfterClose counts the runs asked after Close: 0 unless a
	// shutdown closed the model under work still running.
	UsesAfterClose() uint64
	// Close releases the model; later calls return the first call's answer.
	Close() error
}

// classifier is what the analyzer runs: m, with the vertebral pipeline
// around it for a vertebral model, or with its hip localiser.
func classifier(m Model) analysis.Classifier {
	if p := m.Pipeline(); p != nil {
		return &analysis.VertebralModel{Classifier: m, Pipeline: p}
	}
	if m.HasHipLocaliser() {
		return &analysis.HipModel{Classifier: m, Localiser: m}
	}
	return m
}

// loadModels starts rt and loads every configured model, side by side
// (session creation is most of a start); they are served in the configured
// order. It fails, naming the file, when any is missing or mismatched, and
// then leaves none open.
func loadModels(rt Runtime, o config.ONNXRuntime, log *slog.Logger) ([]Model, error) {
	if rt == nil {
		return nil, errors.New("no model runtime given")
	}
	if err := rt.Start(); err != nil {
		return nil, err
	}
	loaded := make([]Model, len(o.Models))
	errs := make([]error, len(o.Models))
	var wg sync.WaitGroup
	for i, name := range o.Models {
		wg.Go(func() { loaded[i], errs[i] = loadModel(rt, name, o, log) })
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
func loadModel(rt Runtime, name string, o config.ONNXRuntime, log *slog.Logger) (Model, error) {
	m, err := models.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("onnxruntime.models: %w", err)
	}
	l, err := rt.Open(m)
	if err != nil {
		return nil, err
	}
	log.Info("model loaded", "id", m.ID, "version", m.Version, "file", m.ModelPath(), "trainingData", m.TrainingData,
		"executionProvider", o.ExecutionProvider, "batchMax", o.BatchMax, "batchWait", o.BatchWait.String())
	if m.TrainingData == "synthetic" {
		log.Warn("model trained on synthetic data", "id", m.ID, "warning", m.Warning)
	}
	return l, nil
}
