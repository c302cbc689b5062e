package onnx_test

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/phantom"
)

// The analyzer runs a batcher (the service) or a bare model (the offline
// commands).
var (
	_ analysis.Classifier = (*onnx.Batcher)(nil)
	_ analysis.Classifier = (*onnx.Model)(nil)
)

// Open gives a hip manifest its session, behind a batcher when asked, and
// no vertebral pipeline; the batcher and the bare session agree.
func TestOpenHip(t *testing.T) {
	m, err := models.Manifest("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	l, err := onnx.Open(m, onnx.Options{Library: library(t), Session: onnx.SessionOptions{IntraOpThreads: 1}, BatchMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	if l.Model == nil || l.Batcher == nil || l.Localiser != nil || l.Pipeline != nil {
		t.Fatalf("hip: model %v, batcher %v, localiser %v, pipeline %v; want a model behind a batcher only", l.Model, l.Batcher, l.Localiser, l.Pipeline)
	}
	if l.Batcher.Model() != l.Model || l.Batcher.Manifest() != m || l.Model.Manifest() != m {
		t.Fatal("the batcher, the model and the loaded manifest differ")
	}
	_, crops, regions := prepared(t, l.Model, 31, 0)
	want, err := l.Model.Run(crops, len(regions))
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Batcher.Classify(t.Context(), crops, len(regions))
	if err != nil {
		t.Fatal(err)
	}
	sameOutputs(t, got, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil { // a second Close releases nothing twice
		t.Fatal(err)
	}
	if _, err := l.Batcher.Classify(t.Context(), crops, len(regions)); err != onnx.ErrClosed {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	// The bare session refuses too, instead of reaching a destroyed
	// session; each refusal is counted.
	if _, err := l.Model.Run(crops, len(regions)); !errors.Is(err, onnx.ErrClosed) {
		t.Fatalf("model after Close: %v, want ErrClosed", err)
	}
	if n := l.UsesAfterClose(); n != 2 {
		t.Errorf("%d uses after close counted, want 2", n)
	}
}

// Close waits for the runs under way and refuses the later ones: runs
// racing a Close either finish with outputs or get ErrClosed, never a
// destroyed session (run under -race).
func TestCloseUnderRuns(t *testing.T) {
	md := loadHip(t)
	_, crops, regions := prepared(t, md, 31, 0)
	var wg sync.WaitGroup
	var ran, refused atomic.Int32
	for range 4 {
		wg.Go(func() {
			for range 5 {
				_, err := md.Run(crops, len(regions))
				switch {
				case err == nil:
					ran.Add(1)
				case errors.Is(err, onnx.ErrClosed):
					refused.Add(1)
				default:
					t.Errorf("run: %v", err)
				}
			}
		})
	}
	for ran.Load() == 0 {
		runtime.Gosched()
	}
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := md.UsesAfterClose(); got != uint64(refused.Load()) || ran.Load()+refused.Load() != 20 {
		t.Errorf("%d ran, %d refused, %d counted after close; want 20 in all, the refused counted", ran.Load(), refused.Load(), got)
	}
}

// Open gives the shipped vertebral manifest its whole pipeline (localiser,
// network, fusion); read through the batcher or the bare session, a
// phantom radiograph gives the same bodies and probabilities.
func TestOpenVertebral(t *testing.T) {
	m, err := models.Manifest("spine-000")
	if err != nil {
		t.Fatal(err)
	}
	img := spineImage(t)
	var readings [][]float64
	for _, batch := range []int{0, 8} {
		l, err := onnx.Open(m, onnx.Options{Library: library(t), Session: onnx.SessionOptions{IntraOpThreads: 1}, BatchMax: batch})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		p := l.Pipeline
		if p == nil || p.Manifest != m || p.Localiser == nil || p.Net == nil || p.Fusion == nil || l.Localiser == nil || l.Model == nil {
			t.Fatalf("batch %d: pipeline %+v, want the localiser, network and fusion", batch, p)
		}
		if (batch > 0) != (l.Batcher != nil) || (batch > 0 && p.Net != l.Batcher) || (batch == 0 && p.Net != l.Model) {
			t.Fatalf("batch %d: the pipeline's network is %T, batcher %v", batch, p.Net, l.Batcher)
		}
		rs, err := p.Read(t.Context(), img, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) < 3 {
			t.Fatalf("batch %d: %d bodies localised on a phantom radiograph", batch, len(rs))
		}
		var probs []float64
		for _, r := range rs {
			probs = append(probs, r.Probabilities...)
		}
		readings = append(readings, probs)
		if batch == 0 { // a closed pipeline refuses to read, and counts it
			l.Close()
			if _, err := p.Read(t.Context(), img, nil, false); !errors.Is(err, onnx.ErrClosed) {
				t.Fatalf("read after Close: %v, want ErrClosed", err)
			}
			if n := l.UsesAfterClose(); n != 1 {
				t.Errorf("%d uses after close counted, want 1 (the localiser)", n)
			}
		}
	}
	if len(readings[0]) != len(readings[1]) {
		t.Fatalf("%d probabilities unbatched, %d batched", len(readings[0]), len(readings[1]))
	}
	for i := range readings[0] {
		if d := math.Abs(readings[0][i] - readings[1][i]); d > 1e-5 {
			t.Fatalf("probability %d differs by %g batched", i, d)
		}
	}
}

// With Partial, Open loads the stages whose files exist, in training
// order, and needs no ONNX Runtime when none does; without it an absent
// file is an error naming it.
func TestOpenPartial(t *testing.T) {
	missingLib := filepath.Join(t.TempDir(), "libonnxruntime.so")
	tests := []struct {
		name    string
		files   []string
		lib     string
		partial bool
		// want: which of localiser, network, fusion loaded; or the error.
		localiser, net, fusion bool
		err                    string
	}{
		{name: "manifest only, no runtime needed", files: nil, lib: missingLib, partial: true},
		{name: "localiser", files: []string{"localiser.onnx"}, partial: true, localiser: true},
		{name: "localiser and network", files: []string{"localiser.onnx", "model.onnx"}, partial: true, localiser: true, net: true},
		{name: "network without localiser stops at the localiser", files: []string{"model.onnx", "fusion.json"}, partial: true},
		{name: "all", files: []string{"localiser.onnx", "model.onnx", "fusion.json"}, partial: true, localiser: true, net: true, fusion: true},
		{name: "absent localiser", files: []string{"model.onnx", "fusion.json"}, err: "localiser.onnx"},
		{name: "absent fusion", files: []string{"localiser.onnx", "model.onnx"}, err: "fusion.json"},
		{name: "absent runtime", files: []string{"localiser.onnx"}, lib: missingLib, partial: true, err: missingLib},
	}
	src, err := models.FS("spine-000")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range append([]string{"manifest.json"}, tt.files...) {
				b, err := fs.ReadFile(src, name)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			m, err := inference.LoadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			lib := tt.lib
			if lib == "" {
				lib = library(t)
			}
			l, err := onnx.Open(m, onnx.Options{Library: lib, Session: onnx.SessionOptions{IntraOpThreads: 1}, Partial: tt.partial})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one naming %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			p := l.Pipeline
			if got := [3]bool{p.Localiser != nil, p.Net != nil, p.Fusion != nil}; got != [3]bool{tt.localiser, tt.net, tt.fusion} {
				t.Fatalf("localiser, network, fusion loaded: %v, want %v", got, [3]bool{tt.localiser, tt.net, tt.fusion})
			}
			if (l.Localiser != nil) != tt.localiser || (l.Model != nil) != tt.net || l.Batcher != nil {
				t.Fatalf("loaded localiser %v, model %v, batcher %v", l.Localiser, l.Model, l.Batcher)
			}
		})
	}
}

// spineImage is a phantom lateral spine radiograph as the service decodes
// it.
func spineImage(t *testing.T) *imaging.Image {
	t.Helper()
	sc := phantom.Spine(3, 0)
	var b bytes.Buffer
	if err := imaging.WriteDICOM(&b, sc.Image); err != nil {
		t.Fatal(err)
	}
	img, err := imaging.Decode(b.Bytes(), imaging.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func sameOutputs(t *testing.T, got, want []inference.Output) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	for k := range got {
		for c, p := range got[k].Probabilities {
			if d := math.Abs(p - want[k].Probabilities[c]); d > 1e-5 {
				t.Fatalf("crop %d class %d differs by %g", k, c, d)
			}
		}
	}
}
