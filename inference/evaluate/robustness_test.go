package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/imaging/perturb"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/phantom"
)

// recorder keeps a copy of the crops of every call, passing them on.
type recorder struct {
	next  Classifier
	crops [][]float32
}

func (r *recorder) Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error) {
	r.crops = append(r.crops, slices.Clone(crops))
	return r.next.Classify(ctx, crops, n)
}

// The robustness evaluation runs the set unperturbed, then under each
// perturbation: the crops change under a rotation, not under mono1 (the
// decoder inverts MONOCHROME1 back); the summary shows the manifest's
// most urgent classes; the report prints, encodes and plots per run.
func TestHipRobustness(t *testing.T) {
	m := hipManifest(t)
	const n = 3 // of seed 7, the third is MONOCHROME2
	data, oracle := hipData(t, m, n)
	ps, err := perturb.Parse("rotate=15,mono1,halfres+noise=0.05")
	if err != nil {
		t.Fatal(err)
	}
	runs := 1 + len(ps)
	one := oracle.outputs
	for range runs - 1 {
		oracle.outputs = append(oracle.outputs, one...)
	}
	rec := &recorder{next: oracle}
	var progress bytes.Buffer
	r, err := HipRobustness(t.Context(), HipOptions{Manifest: m, Model: rec, Data: data, Resamples: 100, Seed: 2, Progress: &progress}, ps)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range r.Runs {
		names = append(names, e.Perturbation)
	}
	if !slices.Equal(names, []string{"none", "rotate=15", "mono1", "halfres+noise=0.05"}) || !slices.Equal(r.Watched, []string{"fnf", "itf"}) {
		t.Fatalf("runs %v, watched %v", names, r.Watched)
	}
	mono2 := 0
	for i := range n {
		if phantom.Pelvis(7, i).Image.Photometric == "MONOCHROME2" {
			mono2++
		}
	}
	if mono2 == 0 || r.Runs[2].Rewritten != mono2 || r.Runs[1].Rewritten != 0 {
		t.Errorf("mono1 rewrote %d files, want %d", r.Runs[2].Rewritten, mono2)
	}
	diff := func(a, b []float32) float64 {
		d := 0.0
		for i := range a {
			d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		}
		return d
	}
	for i := range n {
		none, rotated, mono1, half := rec.crops[i], rec.crops[n+i], rec.crops[2*n+i], rec.crops[3*n+i]
		if diff(none, rotated) < 0.1 || diff(none, half) < 0.01 {
			t.Errorf("radiograph %d: rotation changed the crops by %v, half resolution with noise by %v", i, diff(none, rotated), diff(none, half))
		}
		if d := diff(none, mono1); d > 1e-4 {
			t.Errorf("radiograph %d: mono1 changed the crops by %v", i, d)
		}
	}
	if !strings.Contains(progress.String(), "eval rotate=15: 3/3 radiographs") || !strings.Contains(progress.String(), "eval mono1: ") {
		t.Errorf("progress:\n%s", progress.String())
	}

	var text bytes.Buffer
	r.Print(&text)
	for _, want := range []string{"=== none ===", "=== rotate=15 ===", "perturbation: rotate=15", "=== robustness summary: model hip-000",
		"\nperturbation        accuracy", "fnf sensitivity", "itf sensitivity", "ECE", "\nhalfres+noise=0.05  "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Model   string
		Watched []string
		Runs    []map[string]json.RawMessage
		Summary []struct {
			Perturbation string
			Accuracy     Estimate
			Sensitivity  map[string]Estimate
			ECE          Estimate
		}
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Model != "hip-000" || len(got.Runs) != runs || len(got.Summary) != runs || string(got.Runs[1]["perturbation"]) != `"rotate=15"` ||
		got.Runs[0]["ece"] == nil || string(got.Runs[2]["rewritten"]) != strings.TrimSpace(jsonInt(mono2)) {
		t.Fatalf("JSON %s", js.String())
	}
	if s := got.Summary[0]; s.Perturbation != "none" || s.Accuracy.Value != 1 || len(s.Sensitivity) != 2 || math.IsNaN(s.ECE.Value) {
		t.Errorf("summary row %+v", s)
	}
	dir := t.TempDir()
	if err := r.WritePlots(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"none/reliability.png", "rotate=15/roc.png", "halfres+noise=0.05/confusion.png"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
	}
}

func jsonInt(v int) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The logits reach the cases, and the fitted temperature prints with what
// to do with it; the reliability table and ECE print with the report.
func TestHipTemperatureFit(t *testing.T) {
	m := hipManifest(t)
	data, oracle := hipData(t, m, 3)
	for _, outs := range oracle.outputs {
		for k := range outs {
			z := make([]float32, len(m.Labels))
			for j, p := range outs[k].Probabilities {
				z[j] = float32(4 * p)
			}
			outs[k].Logits, outs[k].Probabilities = z, inference.Softmax(z, 1)
		}
	}
	e, err := Hip(t.Context(), HipOptions{Manifest: m, Model: oracle, Data: data, Resamples: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Cases[0].Logits) != len(m.Labels) {
		t.Fatalf("case logits %v", e.Cases[0].Logits)
	}
	if err := e.FitTemperature(); err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	e.Print(&text)
	for _, want := range []string{"ECE        ", "reliability (top-class probability bins with hips)", "temperature fit on 6 hips",
		"fitted temperature", `set "calibration": {"temperature": `} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := e.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(js.Bytes(), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ece", "reliability", "temperatureFit"} {
		if keys[k] == nil {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if keys["perturbation"] != nil {
		t.Errorf("an unperturbed evaluation names a perturbation: %s", keys["perturbation"])
	}
}
