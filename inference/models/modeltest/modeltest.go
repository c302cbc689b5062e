// Package modeltest gives tests the shipped models in the shapes they need
// without ONNX Runtime (it builds with CGO_ENABLED=0): a hip manifest with
// fixed crops, for the tests whose classifier is a stand-in and whose
// images need no localiser.
package modeltest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
)

// FixedRegions are the crops hip-000 0.1.0 placed at fixed positions: a
// square of 0.31 of the width around (0.225, 0.58) and (0.775, 0.58), the
// patient's left hip mirrored.
var FixedRegions = []inference.Region{
	{Name: "right-hip", Laterality: "right", Cx: 0.225, Cy: 0.58, Size: 0.31},
	{Name: "left-hip", Laterality: "left", Cx: 0.775, Cy: 0.58, Size: 0.31, Mirror: true},
}

// FixedCropHip is the shipped hip-000 manifest with its localiser stage
// replaced by FixedRegions, validated.
func FixedCropHip(t testing.TB) *inference.Manifest {
	t.Helper()
	m, err := models.Manifest("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	m.Preprocess.Localiser, m.Preprocess.CropScale, m.Preprocess.Upright = nil, 0, false
	m.Preprocess.Regions = append([]inference.Region(nil), FixedRegions...)
	if err := m.Validate(); err != nil {
		t.Fatalf("hip-000 with fixed crops: %v", err)
	}
	return m
}

// FixedCropHipDir writes FixedCropHip's manifest and the shipped network
// (model.onnx) to a new folder, a model folder a command can be given.
func FixedCropHipDir(t testing.TB) string {
	t.Helper()
	m := FixedCropHip(t)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	onnx, err := m.ReadFile(m.File)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.File), onnx, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
