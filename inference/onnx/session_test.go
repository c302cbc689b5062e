package onnx_test

import (
	"bytes"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
)

// A model file that does not match its manifest is refused at load, naming
// the file; so is a missing file.
func TestLoadRefusesMismatch(t *testing.T) {
	initRuntime(t)
	fsys, _ := models.FS("hip-000")
	dir := t.TempDir()
	for _, name := range []string{"manifest.json", "model.onnx"} {
		b, err := fsReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	os.WriteFile(filepath.Join(dir, "manifest.json"), bytes.Replace(raw, []byte(`"name": "cam"`), []byte(`"name": "heatmap"`), 1), 0o600)
	m, err := inference.LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.Load(m, onnx.SessionOptions{}); err == nil || !strings.Contains(err.Error(), "model.onnx") || !strings.Contains(err.Error(), "heatmap") {
		t.Fatalf("mismatched output: %v", err)
	}
	os.Remove(filepath.Join(dir, "model.onnx"))
	if _, err := onnx.Load(m, onnx.SessionOptions{}); err == nil || !strings.Contains(err.Error(), "model.onnx") {
		t.Fatalf("missing file: %v", err)
	}
}

func fsReadFile(fsys fs.FS, name string) ([]byte, error) { return fs.ReadFile(fsys, name) }

// Session settings: every graph optimisation level gives the same answer;
// CUDA, absent from the CPU build installed by the setup, is refused with a
// message naming it.
func TestSessionOptions(t *testing.T) {
	initRuntime(t)
	fsys, _ := models.FS("hip-000")
	m, err := inference.LoadManifestFS(fsys, "hip-000")
	if err != nil {
		t.Fatal(err)
	}
	base := loadHip(t)
	_, crops, _ := prepared(t, base, 4, 0)
	want, err := base.Run(crops, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range []string{"disabled", "basic", "extended"} {
		md, err := onnx.Load(m, onnx.SessionOptions{IntraOpThreads: 1, GraphOptimization: level})
		if err != nil {
			t.Fatalf("%s: %v", level, err)
		}
		got, err := md.Run(crops, 2)
		md.Close()
		if err != nil {
			t.Fatal(err)
		}
		for k := range got {
			for c := range got[k].Probabilities {
				if d := math.Abs(got[k].Probabilities[c] - want[k].Probabilities[c]); d > 1e-5 {
					t.Fatalf("%s: crop %d class %d differs by %g", level, k, c, d)
				}
			}
		}
	}
	if _, err := onnx.Load(m, onnx.SessionOptions{ExecutionProvider: "cuda"}); err == nil || !strings.Contains(err.Error(), "cuda") {
		t.Fatalf("cuda on a CPU build: %v", err)
	}
}
