package models_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
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
