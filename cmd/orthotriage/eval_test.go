package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/analysis/offline"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

func ortEnv(t *testing.T) func(string) string {
	lib := filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so")
	if _, err := os.Stat(lib); err != nil {
		t.Fatalf("%v: run `make setup` to install ONNX Runtime", err)
	}
	return func(k string) string {
		if k == "ORTHOTRIAGE_ONNXRUNTIME_LIBRARY" {
			return lib
		}
		return ""
	}
}

// phantom writes labelled DICOM files; eval reads them through the
// service's pipeline and prints the table as JSON and plots.
func TestPhantomThenEval(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"phantom", "pelvis", "--n", "6", "--seed", "21", "--out", data, "--png"}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("phantom: %v\n%s", err, stderr.String())
	}
	for _, name := range []string{"labels.csv", "pelvis-21-00005.dcm", "pelvis-21-00005.png"} {
		if _, err := os.Stat(filepath.Join(data, name)); err != nil {
			t.Fatal(err)
		}
	}
	evalPhantoms(t, dir, data)
	evalPerturbed(t, dir, data)
	analyzePhantoms(t, dir, data)

	// A label the model does not know is refused, naming the line.
	os.WriteFile(filepath.Join(data, "labels.csv"), []byte("file,left,right\npelvis-21-00000.dcm,normal,broken\n"), 0o600)
	err := run(t.Context(), []string{"eval", "--data", data}, ortEnv(t), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("bad label: %v", err)
	}
	os.WriteFile(filepath.Join(data, "labels.csv"), []byte("file,left,right\n../../etc/passwd,normal,normal\n"), 0o600)
	if err := run(t.Context(), []string{"eval", "--data", data}, ortEnv(t), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "inside the folder") {
		t.Fatalf("escaping path: %v", err)
	}
}

// evalPhantoms runs eval on the phantoms: the table as JSON and plots.
func evalPhantoms(t *testing.T, dir, data string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	plots := filepath.Join(dir, "plots")
	if err := run(t.Context(), []string{"eval", "--model", "hip-000", "--data", data, "--json", "--plots", plots, "--resamples", "200"}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Model    string
		Accuracy *struct {
			Value float64
			CI95  []float64
		}
		MacroF1, MacroAUC map[string]any
		PerClass          []map[string]any
		Confusion         [][]int
		N                 int
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, stdout.String())
	}
	if rep.Model != "hip-000" || rep.N != 12 || rep.Accuracy == nil || len(rep.Accuracy.CI95) != 2 ||
		rep.MacroF1["value"] == nil || rep.MacroAUC["ci95"] == nil || len(rep.PerClass) != 8 {
		t.Fatalf("report lacks keys: %s", stdout.String())
	}
	total := 0
	for _, row := range rep.Confusion {
		for _, v := range row {
			total += v
		}
	}
	if total != 12 {
		t.Fatalf("confusion matrix counts %d hips, want 12", total)
	}
	for _, name := range []string{"confusion.png", "roc.png", "reliability.png"} {
		f, err := os.Open(filepath.Join(plots, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f.Close()
	}
	if !strings.Contains(stderr.String(), "6/6 radiographs") {
		t.Errorf("no progress line: %s", stderr.String())
	}
}

// evalPerturbed runs eval --perturb through ONNX Runtime: the unperturbed
// run and each perturbation, a MONOCHROME1 rewrite reading as the original;
// --fit-temperature fits on the model's logits; bad values are refused.
func evalPerturbed(t *testing.T, dir, data string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	plots := filepath.Join(dir, "perturbed")
	args := []string{"eval", "--data", data, "--json", "--resamples", "100", "--perturb", "rotate=15,mono1,halfres+noise=0.05", "--plots", plots}
	if err := run(t.Context(), args, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("eval --perturb: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Watched []string
		Runs    []struct {
			Perturbation string
			Confusion    [][]int
		}
		Summary []struct {
			Perturbation string
			Accuracy     struct{ Value float64 }
			ECE          struct{ Value *float64 }
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("eval --perturb --json: %v\n%s", err, stdout.String())
	}
	if len(rep.Runs) != 4 || len(rep.Summary) != 4 || rep.Runs[1].Perturbation != "rotate=15" || len(rep.Watched) != 2 || rep.Summary[0].ECE.Value == nil {
		t.Fatalf("eval --perturb report: %s", stdout.String())
	}
	if a, b := rep.Runs[0].Confusion, rep.Runs[2].Confusion; !cmp.Equal(a, b) {
		t.Errorf("mono1 changed the confusion matrix: %v, unperturbed %v", b, a)
	}
	if _, err := os.Stat(filepath.Join(plots, "mono1", "reliability.png")); err != nil {
		t.Error(err)
	}
	stdout.Reset()
	if err := run(t.Context(), []string{"eval", "--data", data, "--resamples", "100", "--fit-temperature"}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("eval --fit-temperature: %v", err)
	}
	for _, want := range []string{"ECE        ", "temperature fit on 12 hips", "fitted temperature"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("eval --fit-temperature lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, bad := range []string{"rotate=400", "blur=1", "zoom=0"} {
		if err := run(t.Context(), []string{"eval", "--data", data, "--perturb", bad}, ortEnv(t), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "perturb") {
			t.Errorf("--perturb %s: %v", bad, err)
		}
	}
}

// analyzePhantoms runs analyze on the phantoms: findings per hip with a
// priority, timings, a heat map; a folder gives one result per file.
func analyzePhantoms(t *testing.T, dir, data string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	hm := filepath.Join(dir, "heat.png")
	one := filepath.Join(data, "pelvis-21-00000.dcm")
	if err := run(t.Context(), []string{"analyze", "--json", "--heatmap", hm, one}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("analyze: %v\n%s", err, stderr.String())
	}
	var a offline.FileAnalysis
	if err := json.Unmarshal(stdout.Bytes(), &a); err != nil || len(a.Findings) != 2 || a.Heatmap != hm || a.Timings.Inference <= 0 {
		t.Fatalf("analyze output %s (%v)", stdout.String(), err)
	}
	sides := map[string]bool{}
	for _, f := range a.Findings {
		sides[f.Laterality] = true
		if f.Class == "" || f.Probability <= 0 || len(f.Probabilities) != 8 {
			t.Fatalf("finding %+v", f)
		}
	}
	if !sides["left"] || !sides["right"] {
		t.Fatalf("findings lack a side: %+v", a.Findings)
	}
	if f, err := os.Open(hm); err != nil {
		t.Fatal(err)
	} else if img, err := png.Decode(f); err != nil || img.Bounds().Dx() < 400 {
		t.Fatalf("heat map: %v", err)
	}
	stdout.Reset()
	if err := run(t.Context(), []string{"analyze", data}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("analyze DIR: %v", err)
	}
	if n := strings.Count(stdout.String(), "timings:"); n != 6 || !strings.Contains(stdout.String(), "not for clinical use") {
		t.Fatalf("analyze DIR printed %d results:\n%s", n, stdout.String())
	}
	os.WriteFile(filepath.Join(dir, "junk.dcm"), []byte("not dicom"), 0o600)
	if err := run(t.Context(), []string{"analyze", filepath.Join(dir, "junk.dcm")}, ortEnv(t), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "1 of 1 files failed") {
		t.Fatalf("junk file: %v", err)
	}
}

// --crops-only writes the model-input crops as a NumPy array with one row
// of crops.csv per crop.
func TestPhantomCropsOnly(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"phantom", "pelvis", "--n", "3", "--seed", "5", "--out", out, "--crops-only"}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "crops.npy"))
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(b[8]) | int(b[9])<<8
	header := string(b[10 : 10+hlen])
	if !strings.HasPrefix(string(b), "\x93NUMPY\x01\x00") || (10+hlen)%64 != 0 || !strings.Contains(header, "'shape': (6, 1, 128, 128)") {
		t.Fatalf("npy header %q", header)
	}
	if len(b) != 10+hlen+6*128*128*4 {
		t.Fatalf("crops.npy is %d bytes", len(b))
	}
	f, _ := os.Open(filepath.Join(out, "crops.csv"))
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 7 || rows[1][2] != "right" || rows[2][2] != "left" || rows[6][0] != "5" {
		t.Fatalf("crops.csv %v %v", rows, err)
	}
	// With --start, crops.csv indexes rows of this run's crops.npy.
	second := t.TempDir()
	if err := run(t.Context(), []string{"phantom", "pelvis", "--n", "1", "--seed", "5", "--start", "2", "--out", second, "--crops-only"}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	f2, _ := os.Open(filepath.Join(second, "crops.csv"))
	defer f2.Close()
	rows2, err := csv.NewReader(f2).ReadAll()
	if err != nil || len(rows2) != 3 || rows2[1][0] != "0" || rows2[1][1] != "pelvis-5-00002" || rows2[2][0] != "1" {
		t.Fatalf("crops.csv with --start 2: %v %v", rows2, err)
	}
	for _, args := range [][]string{
		{"phantom", "hand", "--out", out},
		{"phantom", "pelvis"},
		{"phantom", "pelvis", "--n", "0", "--out", out},
		{"phantom", "spine", "--crops-only", "--model", "hip-000", "--out", out},
	} {
		if err := run(t.Context(), args, ortEnv(t), &stdout, &stderr); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// The vertebral training data: every stage of the shipped model runs on
// spine phantoms and writes its files, one row per localised vertebra
// matched to its label; pelvis phantoms give localiser negatives.
func TestSpineTrainingData(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"phantom", "spine", "--n", "3", "--seed", "5", "--out", out, "--crops-only"}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	read := func(name string) [][]string {
		f, err := os.Open(filepath.Join(out, name))
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
	// values returns the number of float32 values after a .npy file's
	// header (magic, version, a 2-byte length, the header).
	values := func(name string) int {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || len(b) < 10 || string(b[1:6]) != "NUMPY" {
			t.Fatalf("%s: %v", name, err)
		}
		return (len(b) - 10 - int(b[8]) - int(b[9])<<8) / 4
	}
	if loc := read("localiser.csv"); len(loc) != 1+3*9 {
		t.Errorf("localiser.csv has %d rows, want 1 + 3 cases x 9 levels", len(loc))
	}
	rois, radio := read("rois.csv"), read("radiomics.csv")
	m := len(rois) - 1
	if m < 15 || len(radio) != m+1 || len(radio[0]) < 100 {
		t.Fatalf("%d regions, %d radiomics rows of %d columns", m, len(radio)-1, len(radio[0]))
	}
	if n := values("localiser.npy"); n != 3*224*128 {
		t.Errorf("localiser.npy holds %d values, want %d", n, 3*224*128)
	}
	if n := values("rois.npy"); n != m*64*64 {
		t.Errorf("rois.npy holds %d values, want %d", n, m*64*64)
	}
	if n := values("deep.npy"); n != m*2048 {
		t.Errorf("deep.npy holds %d values, want %d x 2048", n, m)
	}
	if !strings.Contains(stderr.String(), "localised") {
		t.Errorf("no localisation figures on stderr:\n%s", stderr.String())
	}
	neg := t.TempDir()
	if err := run(t.Context(), []string{"phantom", "pelvis", "--n", "2", "--seed", "6", "--out", neg, "--crops-only", "--model", "spine-000"}, ortEnv(t), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	out = neg
	if loc := read("localiser.csv"); len(loc) != 1+2*9 || loc[1][3] != "0" {
		t.Errorf("negatives: %v", loc[:2])
	}
}
