package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// onnxRuntime is ONNX Runtime behind Runtime, as cmd/orthotriage passes it
// (its runtime.go; a main package cannot be imported).
type onnxRuntime struct{ opt onnx.Options }

var _ Runtime = onnxRuntime{}

func newRuntime(o config.ONNXRuntime) onnxRuntime {
	return onnxRuntime{opt: onnx.Options{Library: o.Library, BatchMax: o.BatchMax, BatchWait: o.BatchWait,
		Session: onnx.SessionOptions{IntraOpThreads: o.IntraOpThreads, GraphOptimization: o.GraphOptimization,
			ExecutionProvider: o.ExecutionProvider, Spinning: o.AllowSpinning}}}
}

func (r onnxRuntime) Start() error {
	_, err := onnx.Start(r.opt.Library)
	return err
}

func (r onnxRuntime) Open(m *inference.Manifest) (Model, error) {
	l, err := onnx.Open(m, r.opt)
	if err != nil {
		return nil, err
	}
	return onnx.Serve(l), nil
}

// fakeRuntime opens every manifest but those named in fail; it records
// what it opened.
type fakeRuntime struct {
	startErr error
	fail     map[string]bool
	mu       sync.Mutex
	opened   []*fakeModel
}

func (r *fakeRuntime) Start() error { return r.startErr }

func (r *fakeRuntime) Open(m *inference.Manifest) (Model, error) {
	if r.fail[m.ID] {
		return nil, fmt.Errorf("model %s: broken", m.ID)
	}
	fm := &fakeModel{m: m}
	r.mu.Lock()
	r.opened = append(r.opened, fm)
	r.mu.Unlock()
	return fm, nil
}

type fakeModel struct {
	m      *inference.Manifest
	closed atomic.Int32
}

func (f *fakeModel) Classify(context.Context, []float32, int) ([]inference.Output, error) {
	return nil, nil
}
func (f *fakeModel) Manifest() *inference.Manifest { return f.m }
func (f *fakeModel) Pipeline() *spine.Pipeline     { return nil }
func (f *fakeModel) HasHipLocaliser() bool         { return false }
func (f *fakeModel) FindHips([]float32, int, int) (inference.HipJoints, error) {
	return inference.HipJoints{}, errors.New("no hip localiser")
}
func (f *fakeModel) Stats() (uint64, uint64) { return 0, 0 }
func (f *fakeModel) UsesAfterClose() uint64  { return 0 }
func (f *fakeModel) Close() error            { f.closed.Add(1); return nil }

func TestLoadModels(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	shipped := config.ONNXRuntime{Models: []string{"spine-000", "hip-000"}}
	for _, tc := range []struct {
		name    string
		rt      *fakeRuntime
		wantErr string
		served  int
	}{
		{name: "all open", rt: &fakeRuntime{}, served: 2},
		{name: "start fails", rt: &fakeRuntime{startErr: errors.New("no library")}, wantErr: "no library"},
		{name: "one fails", rt: &fakeRuntime{fail: map[string]bool{"hip-000": true}}, wantErr: "hip-000: broken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadModels(tc.rt, shipped, log)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("loadModels = %v, want an error with %q", err, tc.wantErr)
				}
				for _, m := range tc.rt.opened {
					if m.closed.Load() != 1 {
						t.Errorf("model %s left open after the failure", m.m.ID)
					}
				}
				return
			}
			if err != nil || len(got) != tc.served {
				t.Fatalf("loadModels = %d models, %v; want %d", len(got), err, tc.served)
			}
			for i, id := range shipped.Models {
				if got[i].Manifest().ID != id {
					t.Errorf("model %d is %s, want %s (the configured order)", i, got[i].Manifest().ID, id)
				}
			}
		})
	}
	if _, err := loadModels(nil, shipped, log); err == nil {
		t.Error("loadModels(nil runtime) = nil error")
	}
}
