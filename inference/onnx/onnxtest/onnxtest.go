// Package onnxtest holds the test helpers of the packages that run the
// shipped models through ONNX Runtime: the library `make setup` installs,
// the hip model, and a phantom case prepared the way the service prepares
// it.
package onnxtest

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
)

// Library is the ONNX Runtime library `make setup` installs.
func Library(t testing.TB) string {
	return filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so")
}

// InitRuntime loads ONNX Runtime once for the test binary.
func InitRuntime(t testing.TB) {
	t.Helper()
	lib, err := onnx.FindLibrary(Library(t))
	if err != nil {
		t.Fatalf("%v: run `make setup` to install ONNX Runtime", err)
	}
	if err := onnx.Init(lib); err != nil {
		t.Fatal(err)
	}
}

// LoadHip loads the shipped hip model with a session of threads intra-op
// threads, closed when the test ends.
func LoadHip(t testing.TB, threads int) *onnx.Model {
	t.Helper()
	InitRuntime(t)
	m, err := models.Manifest("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	md, err := onnx.Load(m, onnx.SessionOptions{IntraOpThreads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	return md
}

// Prepared runs phantom case i of seed through the service's path: DICOM
// bytes, decoding, the manifest's crops.
func Prepared(t testing.TB, md *onnx.Model, seed uint64, i int) (phantom.PelvisCase, []float32, []inference.Crop) {
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
	m := md.Manifest()
	pre := m.Preprocess
	crops := make([]float32, len(pre.Regions)*pre.Resize.Width*pre.Resize.Height)
	if pre.Localiser == nil {
		regions, err := pre.Prepare(img.Pixels, img.Meta.Rows, img.Meta.Columns, crops)
		if err != nil {
			t.Fatal(err)
		}
		return pc, crops, regions
	}
	// With a localiser the crops follow the joints it finds, as the
	// service cuts them (analysis.Analyzer.ReadHip).
	lm, err := onnx.LoadHipLocaliser(m, onnx.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	h, err := lm.FindHips(img.Pixels, img.Meta.Rows, img.Meta.Columns)
	if err != nil {
		t.Fatal(err)
	}
	right, left, _, err := h.Complete()
	if err != nil {
		t.Fatalf("%s: %v", pc.ID, err)
	}
	regions, err := pre.JointCrops(right, left)
	if err != nil {
		t.Fatal(err)
	}
	if err := pre.PrepareCrops(img.Pixels, img.Meta.Rows, img.Meta.Columns, regions, crops); err != nil {
		t.Fatal(err)
	}
	return pc, crops, regions
}
