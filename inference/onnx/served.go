package onnx

import (
	"context"
	"fmt"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// Served is a Loaded model as the service runs it: its network (behind the
// batcher when there is one), its vertebral pipeline, its counters and its
// Close, as methods, so that the service's wiring (package app) can take it
// through an interface of its own and build without cgo.
type Served struct{ l *Loaded }

// Serve is l as the service runs it.
func Serve(l *Loaded) *Served { return &Served{l: l} }

var _ spine.Classifier = (*Served)(nil)

// net is the batcher, else the network's session.
func (s *Served) net() spine.Classifier {
	if s.l.Batcher != nil {
		return s.l.Batcher
	}
	return s.l.Model
}

// Classify runs n prepared crops through the network (see Batcher.Classify).
func (s *Served) Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error) {
	return s.net().Classify(ctx, crops, n)
}

// Manifest is the model's manifest.
func (s *Served) Manifest() *inference.Manifest { return s.l.Manifest }

// Pipeline is a vertebral model's pipeline around the network; nil for
// other tasks.
func (s *Served) Pipeline() *spine.Pipeline { return s.l.Pipeline }

// HasHipLocaliser says whether the model has a hip localiser stage.
func (s *Served) HasHipLocaliser() bool { return s.l.HipLocaliser != nil }

// FindHips runs the hip localiser (see LocaliserModel.FindHips).
func (s *Served) FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error) {
	if s.l.HipLocaliser == nil {
		return inference.HipJoints{}, fmt.Errorf("onnx: model %s has no hip localiser", s.l.Manifest.ID)
	}
	return s.l.HipLocaliser.FindHips(pixels, rows, cols)
}

// Stats returns how many batches the batcher ran and how many crops they
// held; 0, 0 without a batcher.
func (s *Served) Stats() (batches, crops uint64) {
	if s.l.Batcher == nil {
		return 0, 0
	}
	return s.l.Batcher.Stats()
}

// UsesAfterClose is how many runs were asked after Close (see
// Loaded.UsesAfterClose).
func (s *Served) UsesAfterClose() uint64 { return s.l.UsesAfterClose() }

// Close releases the model (see Loaded.Close).
func (s *Served) Close() error { return s.l.Close() }
