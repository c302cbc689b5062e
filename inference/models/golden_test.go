package models_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
)

func initRuntime(t testing.TB) {
	t.Helper()
	lib, err := inference.FindLibrary(filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so"))
	if err != nil {
		t.Fatalf("%v: run `make setup` to install ONNX Runtime", err)
	}
	if err := inference.Init(lib); err != nil {
		t.Fatal(err)
	}
}

func loadHip(t testing.TB) *inference.Model { return loadHipThreads(t, 1) }

// loadHipThreads loads the shipped hip model with a session of threads
// intra-op threads.
func loadHipThreads(t testing.TB, threads int) *inference.Model {
	t.Helper()
	initRuntime(t)
	m, err := models.Manifest("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	md, err := inference.Load(m, inference.SessionOptions{IntraOpThreads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	return md
}

// prepared runs phantom case i of seed through the service's path: DICOM
// bytes, decoding, the manifest's crops.
func prepared(t testing.TB, md *inference.Model, seed uint64, i int) (phantom.PelvisCase, []float32, []inference.Crop) {
	t.Helper()
	pc := phantom.Pelvis(seed, i)
	var b bytes.Buffer
	if err := imaging.WriteDICOM(&b, pc.Image); err != nil {
		t.Fatal(err)
	}
	img, err := imaging.Decode(b.Bytes(), imaging.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pre := md.Manifest.Preprocess
	crops := make([]float32, len(pre.Regions)*pre.Resize.Width*pre.Resize.Height)
	regions, err := pre.Prepare(img.Pixels, img.Meta.Rows, img.Meta.Columns, crops)
	if err != nil {
		t.Fatal(err)
	}
	return pc, crops, regions
}

// The exported ONNX file in ONNX Runtime gives PyTorch's probabilities
// (golden.json, written by train.py from the same phantom crops).
func TestGoldenProbabilities(t *testing.T) {
	md := loadHip(t)
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "inference", "models", "hip-000", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Seed          uint64
		Cases         int
		Probabilities []struct {
			File          string
			Side          string
			Probabilities []float64
		}
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Probabilities) != 2*golden.Cases || golden.Cases == 0 {
		t.Fatalf("golden.json holds %d rows for %d cases", len(golden.Probabilities), golden.Cases)
	}
	var worst float64
	var batch []float32
	for i := range golden.Cases {
		pc, crops, regions := prepared(t, md, golden.Seed, i)
		batch = append(batch, crops...)
		outs, err := md.Run(crops, len(regions))
		if err != nil {
			t.Fatal(err)
		}
		for k, r := range regions {
			g := golden.Probabilities[2*i+k]
			if g.File != pc.ID || g.Side != r.Region.Laterality {
				t.Fatalf("golden row %d is %s %s, the pipeline made %s %s", 2*i+k, g.File, g.Side, pc.ID, r.Region.Laterality)
			}
			for c, p := range outs[k].Probabilities {
				worst = math.Max(worst, math.Abs(p-g.Probabilities[c]))
			}
		}
	}
	t.Logf("largest difference from PyTorch: %.2g", worst)
	if worst > 1e-4 {
		t.Fatalf("ONNX Runtime differs from PyTorch by %.3g (> 1e-4)", worst)
	}
	// One batch of all crops gives the same as one radiograph at a time.
	outs, err := md.Run(batch, 2*golden.Cases)
	if err != nil {
		t.Fatal(err)
	}
	for j, o := range outs {
		for c, p := range o.Probabilities {
			if d := math.Abs(p - golden.Probabilities[j].Probabilities[c]); d > 1e-4 {
				t.Fatalf("batched crop %d class %d differs by %.3g", j, c, d)
			}
		}
		if len(o.CAM) != 8*o.CAMSize[0]*o.CAMSize[1] || o.CAMSize[0] == 0 {
			t.Fatalf("activation map of %d values for %v", len(o.CAM), o.CAMSize)
		}
	}
}

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
	if _, err := inference.Load(m, inference.SessionOptions{}); err == nil || !strings.Contains(err.Error(), "model.onnx") || !strings.Contains(err.Error(), "heatmap") {
		t.Fatalf("mismatched output: %v", err)
	}
	os.Remove(filepath.Join(dir, "model.onnx"))
	if _, err := inference.Load(m, inference.SessionOptions{}); err == nil || !strings.Contains(err.Error(), "model.onnx") {
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
		md, err := inference.Load(m, inference.SessionOptions{IntraOpThreads: 1, GraphOptimization: level})
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
	if _, err := inference.Load(m, inference.SessionOptions{ExecutionProvider: "cuda"}); err == nil || !strings.Contains(err.Error(), "cuda") {
		t.Fatalf("cuda on a CPU build: %v", err)
	}
}
