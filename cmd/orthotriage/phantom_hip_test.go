package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models/modeltest"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

// hipLocaliserDir is a model folder: the shipped hip-000 manifest with a
// hip localiser stage (regions reduced to name, side and mirroring), and
// no localiser.onnx.
func hipLocaliserDir(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "inference", "models", "hip-000", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	pre := m["preprocessing"].(map[string]any)
	for _, r := range pre["regions"].([]any) {
		for _, k := range []string{"cx", "cy", "size"} {
			delete(r.(map[string]any), k)
		}
	}
	pre["localiser"] = map[string]any{"file": "localiser.onnx", "input": "image", "output": "levels", "width": 192, "height": 160,
		"levels": []string{"right", "left", "pelvis"}, "minPresence": 0.5}
	pre["cropScale"], pre["upright"] = 1.1, true
	dir := t.TempDir()
	b, _ = json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func csvRows(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A hip model with a localiser stage and no localiser.onnx yet: pelvis
// --crops-only writes the localiser's inputs and targets only;
// --negatives its negatives; --negatives needs a localiser.
func TestPhantomHipLocaliser(t *testing.T) {
	dir := hipLocaliserDir(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"phantom", "pelvis", "--n", "2", "--seed", "1", "--vary", "clinical", "--crops-only", "--model", dir, "--out", out}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if rows := csvRows(t, filepath.Join(out, "localiser.csv")); len(rows) != 1+2*3 || strings.Join(rows[0], ",") != "index,file,level,present,cx,cy,w,h" || rows[3][2] != "pelvis" {
		t.Fatalf("localiser.csv %v", rows)
	}
	if _, err := os.Stat(filepath.Join(out, "crops.npy")); !os.IsNotExist(err) {
		t.Errorf("crops.npy without a localiser.onnx (%v)", err)
	}
	neg := t.TempDir()
	stdout.Reset()
	if err := run(t.Context(), []string{"phantom", "pelvis", "--n", "12", "--seed", "7", "--negatives", "--model", dir, "--out", neg}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "grey 1 black 1 white 1 noise 1 structured 1 spine 1 flipped 1 under 1 over 1 rotated 1 mirrored 1 corner 1") {
		t.Errorf("stdout %q", stdout.String())
	}
	for _, row := range csvRows(t, filepath.Join(neg, "localiser.csv"))[1:] {
		if row[3] != "0" {
			t.Errorf("negative row %v present", row)
		}
	}
	if err := run(t.Context(), []string{"phantom", "pelvis", "--negatives", "--model", modeltest.FixedCropHipDir(t), "--out", t.TempDir()}, ortEnv(t), &stdout, &stderr); err == nil {
		t.Error("--negatives with a hip model without a localiser: no error")
	}
}

// hipLocaliserModel is a model folder with a trained hip localiser: the one
// ORTHOTRIAGE_TEST_HIP_LOCALISER names, else the shipped hip-000, which has
// one since 0.2.0 (a shipped model that lost it fails here rather than
// skipping the checks that need it).
func hipLocaliserModel(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ORTHOTRIAGE_TEST_HIP_LOCALISER")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(t), "inference", "models", "hip-000")
	}
	m, err := inference.LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := m.Preprocess.Localiser
	if l == nil {
		t.Fatalf("%s has no hip localiser stage (preprocessing.localiser)", dir)
	}
	if _, err := m.ReadFile(l.File); err != nil {
		t.Fatalf("%s: no trained hip localiser: %v", dir, err)
	}
	return dir
}

// With a trained hip localiser, pelvis --crops-only also writes the crops
// cut through it.
func TestPhantomHipLocaliserCrops(t *testing.T) {
	dir := hipLocaliserModel(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"phantom", "pelvis", "--n", "3", "--seed", "5", "--vary", "clinical", "--crops-only", "--model", dir, "--out", out}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "localiser found no joint on ") {
		t.Errorf("stdout %q", stdout.String())
	}
	rows := csvRows(t, filepath.Join(out, "crops.csv"))
	if len(rows) != 1+6 || strings.Join(rows[0], ",") != "index,file,side,class,difficulty,detail" || rows[6][0] != "5" {
		t.Fatalf("crops.csv %v", rows)
	}
	b, err := os.ReadFile(filepath.Join(out, "crops.npy"))
	if err != nil || len(b) < 10 {
		t.Fatal(err)
	}
	if hlen := int(b[8]) | int(b[9])<<8; !strings.Contains(string(b[10:10+hlen]), "'shape': (6, 1, ") {
		t.Errorf("crops.npy header %q", b[10:10+hlen])
	}
	if rows := csvRows(t, filepath.Join(out, "localiser.csv")); len(rows) != 1+3*3 {
		t.Errorf("localiser.csv has %d rows", len(rows))
	}
}
