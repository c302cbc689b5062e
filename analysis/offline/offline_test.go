package offline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/models/modeltest"
	"github.com/orthotriage/orthotriage/inference/spine"
	"github.com/orthotriage/orthotriage/phantom"
)

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.dcm", "a.DCM", "notes.txt", "c.dcm"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	os.Mkdir(filepath.Join(dir, "sub.dcm"), 0o700)
	empty := t.TempDir()
	for _, tc := range []struct {
		name       string
		path       string
		want       []string
		wantSingle bool
		wantErr    string
	}{
		{name: "a file", path: filepath.Join(dir, "notes.txt"), want: []string{filepath.Join(dir, "notes.txt")}, wantSingle: true},
		{name: "a folder's .dcm files, sorted", path: dir, want: []string{filepath.Join(dir, "a.DCM"), filepath.Join(dir, "b.dcm"), filepath.Join(dir, "c.dcm")}},
		{name: "a folder without .dcm files", path: empty, wantErr: "no .dcm files"},
		{name: "nothing there", path: filepath.Join(dir, "none"), wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, single, err := Files(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, files); d != "" || single != tc.wantSingle {
				t.Errorf("single %v, files (-want +got):\n%s", single, d)
			}
		})
	}
}

// fixedClassifier answers every crop with the same probabilities and a
// flat activation map.
type fixedClassifier struct{ probs []float64 }

func (c fixedClassifier) Classify(_ context.Context, _ []float32, n int) ([]inference.Output, error) {
	out := make([]inference.Output, n)
	for i := range out {
		cam := make([]float32, len(c.probs)*4*4)
		for k := range cam {
			cam[k] = float32(k % 5)
		}
		out[i] = inference.Output{Probabilities: c.probs, CAM: cam, CAMSize: [2]int{4, 4}}
	}
	return out, nil
}

// pelvisFiles writes n pelvis phantoms into a new folder.
func pelvisFiles(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		pc := phantom.Pelvis(9, i)
		var b bytes.Buffer
		if err := imaging.WriteDICOM(&b, pc.Image); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pc.ID+".dcm"), b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// spineFile writes one lateral spine phantom.
func spineFile(t *testing.T) string {
	t.Helper()
	sc := phantom.Spine(9, 0)
	var b bytes.Buffer
	if err := imaging.WriteDICOM(&b, sc.Image); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), sc.ID+".dcm")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// imageFile writes a pelvis phantom's tags (PELVIS, AP, DX or CR) with
// other pixels, as DICOM.
func imageFile(t *testing.T, dir, name string, pixel func(x, y int) float64, edit func(r *imaging.Radiograph)) string {
	t.Helper()
	r := phantom.Pelvis(9, 0).Image
	full := float64(int(1)<<r.BitsStored - 1)
	for y := range r.Rows {
		for x := range r.Columns {
			r.Stored[y*r.Columns+x] = int(max(0, min(full, pixel(x, y)*full)))
		}
	}
	r.WindowCenter, r.WindowWidth = nil, nil
	if edit != nil {
		edit(&r)
	}
	var b bytes.Buffer
	if err := imaging.WriteDICOM(&b, r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".dcm")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// `analyze` reads through the service's gate: a blank image, noise and a
// CT tagged PELVIS / AP are not read, and say why; the pelvis is read.
func TestHipGate(t *testing.T) {
	m, c := hipModel(t)
	dir := t.TempDir()
	noise := uint64(1)
	rnd := func() float64 {
		noise = noise*6364136223846793005 + 1442695040888963407
		return float64(noise>>11) / (1 << 53)
	}
	files := []string{
		imageFile(t, dir, "blank", func(x, y int) float64 { return 0.5 }, nil),
		imageFile(t, dir, "noise", func(x, y int) float64 { return rnd() }, nil),
		imageFile(t, dir, "ct", func(x, y int) float64 { return float64(x%97) / 97 }, func(r *imaging.Radiograph) { r.Modality = "CT" }),
		filepath.Join(pelvisFiles(t, 1), "pelvis-9-00000.dcm"),
	}
	var out bytes.Buffer
	if err := Hip(t.Context(), HipOptions{Manifest: m, Model: c, JSON: true}, files, &out); err != nil {
		t.Fatal(err)
	}
	want := []string{analysis.ReasonBlank, analysis.ReasonNoise, analysis.ReasonModality, ""}
	dec := json.NewDecoder(&out)
	for i := range files {
		var a FileAnalysis
		if err := dec.Decode(&a); err != nil {
			t.Fatal(err)
		}
		got := ""
		if a.NotRead != nil {
			got = a.NotRead.Reason
		}
		if got != want[i] || (got != "" && len(a.Findings) != 0) || (got == "" && len(a.Findings) != 2) {
			t.Errorf("%s: not read %q (want %q), %d findings", files[i], got, want[i], len(a.Findings))
		}
	}
	out.Reset()
	Hip(t.Context(), HipOptions{Manifest: m, Model: c}, files[:1], &out)
	if !strings.Contains(out.String(), "not read: the image is blank or uniform") {
		t.Errorf("table:\n%s", out.String())
	}
}

func hipModel(t *testing.T) (*inference.Manifest, fixedClassifier) {
	t.Helper()
	m := modeltest.FixedCropHip(t) // the stand-in classifier reads fixed crops
	probs := make([]float64, len(m.Labels))
	probs[m.LabelIndex("itf")], probs[m.LabelIndex("normal")] = 0.7, 0.3
	return m, fixedClassifier{probs}
}

// One file: a finding per hip with the manifest's priority, the stage
// timings and the overlay PNG, as JSON.
func TestHipOneFileJSON(t *testing.T) {
	m, model := hipModel(t)
	dir := pelvisFiles(t, 1)
	file := filepath.Join(dir, "pelvis-9-00000.dcm")
	heat := filepath.Join(t.TempDir(), "heat.png")
	var out bytes.Buffer
	o := HipOptions{Manifest: m, Model: model, Heatmap: heat, Single: true, JSON: true}
	if err := Hip(t.Context(), o, []string{file}, &out); err != nil {
		t.Fatal(err)
	}
	var a FileAnalysis
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if a.File != file || a.Model != "hip-000 "+m.Version || a.Heatmap != heat || a.Error != "" || a.Timings.Decode <= 0 || len(a.Findings) != 2 {
		t.Fatalf("analysis %+v", a)
	}
	sides := map[string]bool{}
	for _, f := range a.Findings {
		sides[f.Laterality] = true
		if f.Class != "itf" || f.Priority != "stat" || !f.Reported || len(f.Probabilities) != len(m.Labels) {
			t.Errorf("finding %+v", f)
		}
	}
	if !sides["left"] || !sides["right"] {
		t.Errorf("findings lack a side: %+v", a.Findings)
	}
	for _, k := range []string{`"timingsMs":{"decode":`, `"heatmap":`, `"findings":[`} {
		if !strings.Contains(out.String(), k) {
			t.Errorf("JSON lacks %s: %s", k, out.String())
		}
	}
	f, err := os.Open(heat)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if img, err := png.Decode(f); err != nil || img.Bounds().Dx() < 400 {
		t.Errorf("overlay: %v", err)
	}
}

// A folder: the table per file, an overlay per file in the heat-map
// folder, a file that fails reported in its place and counted.
func TestHipFolderTable(t *testing.T) {
	m, model := hipModel(t)
	dir := pelvisFiles(t, 2)
	os.WriteFile(filepath.Join(dir, "junk.dcm"), []byte("not dicom"), 0o600)
	files, single, err := Files(dir)
	if err != nil || single || len(files) != 3 {
		t.Fatalf("files %v %v", files, err)
	}
	heats := t.TempDir()
	var out bytes.Buffer
	err = Hip(t.Context(), HipOptions{Manifest: m, Model: model, Heatmap: heats}, files, &out)
	if err == nil || err.Error() != "1 of 3 files failed" {
		t.Errorf("error %v, want 1 of 3 files failed", err)
	}
	text := out.String()
	for _, want := range []string{
		filepath.Join(dir, "junk.dcm") + " (model hip-000 " + m.Version + ")\n  error: dicom: ",
		"  hip    finding                              probability  priority  \n",
		"  right  Intertrochanteric fracture of femur  70.0%        stat      \n",
		"  heatmap: " + filepath.Join(heats, "pelvis-9-00001.png") + "\n",
		"  (" + m.Warning + ")\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "  timings: decode "); n != 2 {
		t.Errorf("%d timings lines, want 2", n)
	}
	for _, name := range []string{"pelvis-9-00000.png", "pelvis-9-00001.png"} {
		if _, err := os.Stat(filepath.Join(heats, name)); err != nil {
			t.Error(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Hip(ctx, HipOptions{Manifest: m, Model: model}, files, &out); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// A vertebral model without its localiser cannot read a file: each is
// reported as failed, in the table and as JSON.
func TestVertebralFailure(t *testing.T) {
	m, err := models.Manifest("spine-000")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := m.ReadFile(m.Vertebral.Fusion)
	fusion, err := spine.ParseFusion(data)
	if err != nil {
		t.Fatal(err)
	}
	v := &analysis.VertebralModel{Pipeline: &spine.Pipeline{Manifest: m, Fusion: fusion}}
	files := []string{spineFile(t)}
	var out bytes.Buffer
	if err := Vertebral(t.Context(), VertebralOptions{Model: v}, files, &out); err == nil || err.Error() != "1 of 1 files failed" {
		t.Errorf("error %v", err)
	}
	if want := files[0] + " (model spine-000 " + m.Version + ")\n  error: analysis: spine: no localiser loaded"; !strings.HasPrefix(out.String(), want) {
		t.Errorf("output %q, want %q...", out.String(), want)
	}
	out.Reset()
	Vertebral(t.Context(), VertebralOptions{Model: v, JSON: true}, files, &out)
	var s SpineAnalysis
	if err := json.Unmarshal(out.Bytes(), &s); err != nil || s.File != files[0] || s.Result != nil || !strings.Contains(s.Error, "no localiser") {
		t.Errorf("JSON %s (%v)", out.String(), err)
	}
}

// The vertebral table: a row per finding with P(acute) (1 - P for a
// chronic call) and how acuity was reached, and the notes.
func TestPrintSpine(t *testing.T) {
	m, err := models.Manifest("spine-000")
	if err != nil {
		t.Fatal(err)
	}
	r := &analysis.Result{Localised: []string{"T12", "L1"}, Notes: []string{"Clinical data missing: age."},
		Findings: []analysis.Finding{
			{Region: "L1", Class: "chronic", Probability: 0.8, Priority: "routine", Acuity: &analysis.Acuity{Fracture: 0.95}},
			{Region: "T12", Class: "acute", Probability: 0.9, Priority: "urgent", Acuity: &analysis.Acuity{Fracture: 0.99, Nomogram: &spine.Score{}}},
		}}
	var out bytes.Buffer
	printSpine(&out, SpineAnalysis{File: "x.dcm", Result: r}, m)
	want := "x.dcm (model spine-000 " + m.Version + ")\n" +
		"  localised: T12 L1\n" +
		"  vertebra  P(fracture)  acuity   P(acute)  from             priority  \n" +
		"  L1        0.950        chronic  0.200     DLR score alone  routine   \n" +
		"  T12       0.990        acute    0.900     nomogram         urgent    \n" +
		"  note: Clinical data missing: age.\n"
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Errorf("table (-want +got):\n%s", d)
	}
}
