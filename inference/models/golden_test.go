package models_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/inference/onnx/onnxtest"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
)

func initRuntime(t testing.TB) { onnxtest.InitRuntime(t) }

func loadHip(t testing.TB) *onnx.Model { return onnxtest.LoadHip(t, 1) }

func loadHipThreads(t testing.TB, threads int) *onnx.Model { return onnxtest.LoadHip(t, threads) }

func prepared(t testing.TB, md *onnx.Model, seed uint64, i int) (phantom.PelvisCase, []float32, []inference.Crop) {
	return onnxtest.Prepared(t, md, seed, i)
}

// TestGoldenProbabilities runs golden.json's phantom cases through the
// service's path (DICOM, decoding, the manifest's crops, ONNX Runtime) and
// compares each golden row with PyTorch's probabilities on the crops the Go
// data writer gave the trainer. A row names its case by index (the trainer
// picks the least saturated crops of a pool); rows without an index are
// the cases 0, 1, ... two rows each, as older golden files hold them.
func TestGoldenProbabilities(t *testing.T) {
	md := loadHip(t)
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "inference", "models", "hip-000", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Seed  uint64
		Cases int
		// Temperature is the softmax temperature PyTorch's probabilities
		// were taken at (1 when absent): the manifest's, fitted after
		// training, may differ, so the rows are compared on the logits.
		Temperature   float64
		Probabilities []struct {
			Index         *int
			File          string
			Side          string
			Probabilities []float64
		}
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Probabilities) == 0 {
		t.Fatal("golden.json holds no rows")
	}
	if golden.Temperature == 0 {
		golden.Temperature = 1
	}
	probs := func(o inference.Output) []float64 {
		if len(o.Logits) == 0 {
			t.Fatal("the session gave no logits")
		}
		return inference.Softmax(o.Logits, golden.Temperature)
	}
	var worst float64
	var batch []float32
	per := 0
	for j, g := range golden.Probabilities {
		i := j / 2
		if g.Index != nil {
			i = *g.Index
		}
		pc, crops, regions := prepared(t, md, golden.Seed, i)
		per = len(crops) / len(regions)
		outs, err := md.Run(crops, len(regions))
		if err != nil {
			t.Fatal(err)
		}
		k := slices.IndexFunc(regions, func(r inference.Crop) bool { return r.Region.Laterality == g.Side })
		if pc.ID != g.File || k < 0 {
			t.Fatalf("golden row %d is %s %s, the pipeline made %s without that side", j, g.File, g.Side, pc.ID)
		}
		batch = append(batch, crops[k*per:(k+1)*per]...)
		for c, p := range probs(outs[k]) {
			worst = math.Max(worst, math.Abs(p-g.Probabilities[c]))
		}
	}
	t.Logf("largest difference from PyTorch: %.2g over %d rows", worst, len(golden.Probabilities))
	if worst > 1e-4 {
		t.Fatalf("ONNX Runtime differs from PyTorch by %.3g (> 1e-4)", worst)
	}
	// One batch of all the rows' crops gives the same as one radiograph at
	// a time.
	outs, err := md.Run(batch, len(golden.Probabilities))
	if err != nil {
		t.Fatal(err)
	}
	for j, o := range outs {
		for c, p := range probs(o) {
			if d := math.Abs(p - golden.Probabilities[j].Probabilities[c]); d > 1e-4 {
				t.Fatalf("batched crop %d class %d differs by %.3g", j, c, d)
			}
		}
		if len(o.CAM) != 8*o.CAMSize[0]*o.CAMSize[1] || o.CAMSize[0] == 0 {
			t.Fatalf("activation map of %d values for %v", len(o.CAM), o.CAMSize)
		}
	}
}
