package onnx_test

import (
	"errors"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
)

var _ analysis.Classifier = (*onnx.Served)(nil)

// Served answers as the Loaded it wraps: the batcher's outputs and
// counters, the manifest, no pipeline for a hip model, and after Close
// ErrClosed, counted.
func TestServed(t *testing.T) {
	m, err := models.Manifest("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	l, err := onnx.Open(m, onnx.Options{Library: library(t), Session: onnx.SessionOptions{IntraOpThreads: 1}, BatchMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	s := onnx.Serve(l)
	if s.Manifest() != m || s.Pipeline() != nil {
		t.Fatalf("manifest %p (want %p), pipeline %v (want nil)", s.Manifest(), m, s.Pipeline())
	}
	_, crops, regions := prepared(t, l.Model, 31, 0)
	want, err := l.Model.Run(crops, len(regions))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Classify(t.Context(), crops, len(regions))
	if err != nil {
		t.Fatal(err)
	}
	sameOutputs(t, got, want)
	if batches, n := s.Stats(); batches != 1 || n != uint64(len(regions)) {
		t.Errorf("Stats = %d batches, %d crops; want 1, %d", batches, n, len(regions))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Classify(t.Context(), crops, len(regions)); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("Classify after Close = %v, want ErrClosed", err)
	}
	if n := s.UsesAfterClose(); n != 1 {
		t.Errorf("UsesAfterClose = %d, want 1", n)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
