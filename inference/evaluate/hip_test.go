package evaluate

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/phantom"
)

// scriptedClassifier answers the i-th call with outputs[i], checking the
// crops it is given.
type scriptedClassifier struct {
	t       *testing.T
	crop    int // values per crop
	outputs [][]inference.Output
	calls   int
	err     error
}

func (c *scriptedClassifier) Classify(_ context.Context, crops []float32, n int) ([]inference.Output, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.calls >= len(c.outputs) {
		c.t.Fatalf("call %d: only %d scripted", c.calls+1, len(c.outputs))
	}
	out := c.outputs[c.calls]
	c.calls++
	if len(crops) != n*c.crop || n != len(out) {
		c.t.Fatalf("call %d: %d crops of %d values, want %d crops of %d", c.calls, n, len(crops)/max(n, 1), len(out), c.crop)
	}
	return out, nil
}

// oneHot is an output certain of class k of n.
func oneHot(k, n int) inference.Output {
	p := make([]float64, n)
	p[k] = 1
	return inference.Output{Probabilities: p}
}

// hipData writes n pelvis phantoms and their labels.csv into a new folder,
// and a classifier that answers each radiograph's crops with its truth.
func hipData(t *testing.T, m *inference.Manifest, n int) (string, *scriptedClassifier) {
	t.Helper()
	dir := t.TempDir()
	var labels bytes.Buffer
	w := csv.NewWriter(&labels)
	w.Write([]string{"file", "left", "right", "left_difficulty", "right_difficulty"})
	pre := m.Preprocess
	oracle := &scriptedClassifier{t: t, crop: pre.Resize.Width * pre.Resize.Height}
	for i := range n {
		pc := phantom.Pelvis(7, i)
		var dcm bytes.Buffer
		if err := imaging.WriteDICOM(&dcm, pc.Image); err != nil {
			t.Fatal(err)
		}
		name := pc.ID + ".dcm"
		if err := os.WriteFile(filepath.Join(dir, name), dcm.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		w.Write([]string{name, pc.Left.Class, pc.Right.Class, pc.Left.Difficulty, pc.Right.Difficulty})
		var outs []inference.Output
		for _, r := range pre.Regions {
			hip := map[string]phantom.Hip{"left": pc.Left, "right": pc.Right}[r.Laterality]
			outs = append(outs, oneHot(m.LabelIndex(hip.Class), len(m.Labels)))
		}
		oracle.outputs = append(oracle.outputs, outs)
	}
	w.Flush()
	if err := os.WriteFile(filepath.Join(dir, "labels.csv"), labels.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, oracle
}

// A model that gives every hip its truth scores 1 on every figure; the
// report prints as the tables and as JSON with the model's id, and the
// plots are PNG files.
func TestHip(t *testing.T) {
	m := hipManifest(t)
	data, oracle := hipData(t, m, 3)
	var progress bytes.Buffer
	e, err := Hip(t.Context(), HipOptions{Manifest: m, Model: oracle, Data: data, Resamples: 100, Seed: 3, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	r := e.Report
	if r.N != 6 || r.Clusters != 3 || len(e.Cases) != 6 || r.Accuracy.Value != 1 || r.MacroF1.Value != 1 || r.Resamples != 100 || r.Seed != 3 {
		t.Errorf("report N %d clusters %d cases %d accuracy %v macro-F1 %v", r.N, r.Clusters, len(e.Cases), r.Accuracy, r.MacroF1)
	}
	for i, row := range r.Confusion {
		for j, v := range row {
			if i != j && v != 0 {
				t.Errorf("confusion[%s][%s] = %d off the diagonal", r.Labels[i], r.Labels[j], v)
			}
		}
	}
	if !strings.Contains(progress.String(), "eval: 3/3 radiographs") || !strings.Contains(progress.String(), "ms per radiograph") {
		t.Errorf("progress:\n%s", progress.String())
	}

	var text bytes.Buffer
	e.Print(&text)
	for _, want := range []string{
		fmt.Sprintf("model hip-000 %s on 6 hips of 3 radiographs in %s\n", m.Version, data),
		"(" + m.Warning + ")",
		"95% CIs: percentile bootstrap, 100 resamples of radiographs (seed 3)",
		"accuracy   1.0000 (1.0000-1.0000)",
		"class", "sensitivity", "confusion matrix (rows: truth, columns: predicted)", "by difficulty",
	} {
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
	for _, k := range []string{"model", "version", "n", "clusters", "accuracy", "macroF1", "macroAUC", "perClass", "labels", "confusion", "byGroup"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, js.String())
		}
	}
	if string(keys["model"]) != `"hip-000"` {
		t.Errorf("model %s", keys["model"])
	}

	plots := filepath.Join(t.TempDir(), "new", "plots")
	if err := e.WritePlots(plots); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"confusion.png", "roc.png"} {
		f, err := os.Open(filepath.Join(plots, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		f.Close()
	}
}

// Failures name the file; a cancelled context stops the run.
func TestHipFailures(t *testing.T) {
	m := hipManifest(t)
	data, oracle := hipData(t, m, 1)
	boom := errors.New("session gone")
	if _, err := Hip(t.Context(), HipOptions{Manifest: m, Model: &scriptedClassifier{t: t, err: boom}, Data: data, Resamples: 100}); !errors.Is(err, boom) || !strings.Contains(err.Error(), "pelvis-7-00000.dcm") {
		t.Errorf("model failure: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Hip(ctx, HipOptions{Manifest: m, Model: oracle, Data: data, Resamples: 100}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	os.WriteFile(filepath.Join(data, "pelvis-7-00000.dcm"), []byte("not dicom"), 0o600)
	if _, err := Hip(t.Context(), HipOptions{Manifest: m, Model: oracle, Data: data, Resamples: 100}); err == nil || !strings.Contains(err.Error(), "pelvis-7-00000.dcm: ") {
		t.Errorf("undecodable file: %v", err)
	}
	os.Remove(filepath.Join(data, "pelvis-7-00000.dcm"))
	if _, err := Hip(t.Context(), HipOptions{Manifest: m, Model: oracle, Data: data, Resamples: 100}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// eval reads through the service's gate and review threshold: a blank
// image tagged PELVIS / AP is recorded as not read and left out of the
// table; a folder of nothing readable is an error saying so.
func TestHipGate(t *testing.T) {
	m := hipManifest(t)
	data, oracle := hipData(t, m, 4)
	blank := phantom.Pelvis(7, 0).Image
	for i := range blank.Stored {
		blank.Stored[i] = 1000
	}
	blank.WindowCenter, blank.WindowWidth = nil, nil
	if blank.BodyPartExamined != "PELVIS" || blank.ViewPosition != "AP" {
		t.Fatalf("phantom tags %s %s", blank.BodyPartExamined, blank.ViewPosition)
	}
	var dcm bytes.Buffer
	if err := imaging.WriteDICOM(&dcm, blank); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(data, "blank.dcm"), dcm.Bytes(), 0o600)
	labels, _ := os.ReadFile(filepath.Join(data, "labels.csv"))
	os.WriteFile(filepath.Join(data, "labels.csv"), append(labels, "blank.dcm,normal,normal,,\n"...), 0o600)
	// One hip below the review threshold.
	oracle.outputs[0][0].Probabilities = []float64{0.55, 0.45, 0, 0, 0, 0, 0, 0}
	var progress, out bytes.Buffer
	e, err := Hip(t.Context(), HipOptions{Manifest: m, Model: oracle, Data: data, Resamples: 100, Progress: &progress, Policy: analysis.Policy{ReviewBelow: 0.6}})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.NotRead) != 1 || e.NotRead[0].File != "blank.dcm" || e.NotRead[0].Reason != analysis.ReasonBlank || e.Report.Clusters != 4 || e.Review != 1 {
		t.Errorf("not read %+v, %d radiographs in the table, %d below review", e.NotRead, e.Report.Clusters, e.Review)
	}
	e.Print(&out)
	if !strings.Contains(out.String(), "not read by the image gate: 1 radiographs (blank 1)") || !strings.Contains(progress.String(), "1 of 5 radiographs not read") {
		t.Errorf("report:\n%s\nprogress:\n%s", out.String(), progress.String())
	}
	only := t.TempDir()
	os.WriteFile(filepath.Join(only, "blank.dcm"), dcm.Bytes(), 0o600)
	os.WriteFile(filepath.Join(only, "labels.csv"), []byte("file,left,right\nblank.dcm,normal,normal\n"), 0o600)
	if _, err := Hip(t.Context(), HipOptions{Manifest: m, Model: oracle, Data: only, Resamples: 100}); err == nil || !strings.Contains(err.Error(), "no radiograph was read") {
		t.Errorf("only a blank image: %v", err)
	}
}
