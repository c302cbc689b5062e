package evaluate

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/spine"
	"github.com/orthotriage/orthotriage/phantom"
)

// spineCases are spine phantoms of seed 3 with acute and chronic fractures.
var spineCases = []int{0, 1, 6}

// truthReader reads each image's labelled vertebrae with the network's
// answer certain of the truth, plus one box matching nothing.
type truthReader struct {
	t        *testing.T
	readings map[string][]spine.Reading // by SOP Instance UID
	err      error
}

func (r *truthReader) Read(_ context.Context, img *imaging.Image, given []inference.Body, all bool) ([]spine.Reading, error) {
	if given != nil || !all {
		r.t.Errorf("Read(given %v, all %v): evaluation reads with the localiser and every radiomics feature", given, all)
	}
	return r.readings[img.Meta.SOPInstanceUID], r.err
}

func spineModel(t *testing.T) (*inference.Manifest, *spine.Fusion) {
	t.Helper()
	m, err := models.Manifest("spine-000")
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.ReadFile(m.Vertebral.Fusion)
	if err != nil {
		t.Fatal(err)
	}
	f, err := spine.ParseFusion(data)
	if err != nil {
		t.Fatal(err)
	}
	return m, f
}

// truthReading is a vertebra read at its labelled box, the network sure of
// its class; acute and chronic bodies get opposite deep features.
func truthReading(v phantom.Vertebra, f *spine.Fusion) spine.Reading {
	b := v.Box
	r := spine.Reading{Body: inference.Body{Level: v.Level, Presence: 1, Box: image.Rect(b[0], b[1], b[0]+b[2], b[1]+b[3])},
		Deep: make([]float32, 2048), Radiomics: map[string]float64{}}
	r.Probabilities = map[string][]float64{"none": {0.9, 0.05, 0.05}, "acute": {0.05, 0.9, 0.05}, "chronic": {0.05, 0.05, 0.9}}[v.Fracture]
	sign := map[string]float32{"acute": 1, "chronic": -1}[v.Fracture]
	for i := range r.Deep {
		r.Deep[i] = sign * float32(i%7)
	}
	for _, name := range f.Features {
		if n, ok := strings.CutPrefix(name, "radiomics:"); ok {
			r.Radiomics[n] = float64(sign)
		}
	}
	return r
}

// spineData writes the spine cases and their labels.csv into a new folder,
// with a reader that reads their truth.
func spineData(t *testing.T, f *spine.Fusion) (string, *truthReader, []phantom.SpineCase) {
	t.Helper()
	dir := t.TempDir()
	var labels bytes.Buffer
	w := csv.NewWriter(&labels)
	w.Write(phantom.SpineHeader)
	reader := &truthReader{t: t, readings: map[string][]spine.Reading{}}
	var cases []phantom.SpineCase
	for _, i := range spineCases {
		sc := phantom.Spine(3, i)
		var dcm bytes.Buffer
		if err := imaging.WriteDICOM(&dcm, sc.Image); err != nil {
			t.Fatal(err)
		}
		name := sc.ID + ".dcm"
		if err := os.WriteFile(filepath.Join(dir, name), dcm.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		w.WriteAll(sc.Rows(name))
		var rs []spine.Reading
		for _, v := range sc.Vertebrae {
			rs = append(rs, truthReading(v, f))
		}
		stray := truthReading(sc.Vertebrae[0], f)
		stray.Body.Box = image.Rect(0, 0, 8, 8)
		reader.readings[sc.Image.SOPInstanceUID] = append(rs, stray)
		cases = append(cases, sc)
	}
	if err := os.WriteFile(filepath.Join(dir, "labels.csv"), labels.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, reader, cases
}

// The counts follow the labels and the matching rule: every labelled
// vertebra found (the stray box of each image is extra), every fracture
// called and its acuity scored; the report prints and encodes.
func TestVertebral(t *testing.T) {
	m, f := spineModel(t)
	data, reader, cases := spineData(t, f)
	var labelled, fractured, acute int
	for _, sc := range cases {
		for _, v := range sc.Vertebrae {
			labelled++
			if v.Fracture != "none" {
				fractured++
			}
			if v.Fracture == "acute" {
				acute++
			}
		}
	}
	if acute == 0 || acute == fractured {
		t.Fatalf("the cases have %d acute of %d fractures: pick cases with both", acute, fractured)
	}
	var progress bytes.Buffer
	e, err := Vertebral(t.Context(), VertebralOptions{Manifest: m, Reader: reader, Fusion: f, Data: data, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	r := e.Report
	l, fr, ac := r.Localisation, r.Fracture, r.Acuity
	if r.Model != "spine-000" || r.Radiographs != len(cases) || l.Labelled != labelled || l.Found != labelled || l.Extra != len(cases) || l.MeanIoU != 1 {
		t.Errorf("localisation %+v of %d radiographs, want %d labelled, all found, %d extra, IoU 1", l, r.Radiographs, labelled, len(cases))
	}
	if fr.N != labelled || fr.Fractured != fractured || fr.Sensitivity != 1 || fr.Specificity != 1 || fr.AUC.Value != 1 {
		t.Errorf("fracture %+v, want %d of %d fractured, all called", fr, fractured, labelled)
	}
	if ac.N != fractured || ac.Acute != acute || ac.DLR == nil || ac.Nomogram == nil || len(ac.ByDifficulty) == 0 {
		t.Errorf("acuity n %d acute %d (want %d, %d), by difficulty %v", ac.N, ac.Acute, fractured, acute, ac.ByDifficulty)
	}
	if !strings.Contains(progress.String(), "eval: 3/3 radiographs") {
		t.Errorf("progress: %s", progress.String())
	}

	var text bytes.Buffer
	e.Print(&text)
	for _, want := range []string{
		"model spine-000 " + m.Version + " on 3 lateral spine radiographs in " + data + "\n",
		"localisation: ", " labelled vertebrae found at their level with IoU >= 0.3 (100.0%), mean IoU 1.000, 3 other boxes",
		"nomogram (DLR + clinical)", "DLR score alone", "DeLong test, nomogram - DLR", "threshold  nomogram",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := e.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var keys struct {
		Model        string
		Localisation map[string]any
		Fracture     map[string]any
		Acuity       map[string]json.RawMessage
	}
	if err := json.Unmarshal(js.Bytes(), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"n", "acute", "dlr", "nomogram", "delongTest", "accuracyDLR", "accuracyNomogram", "byDifficulty"} {
		if _, ok := keys.Acuity[k]; !ok {
			t.Errorf("acuity JSON lacks %q", k)
		}
	}
	if keys.Model != "spine-000" || keys.Localisation["meanIoU"] == nil || keys.Fracture["auc"] == nil {
		t.Errorf("JSON %s", js.String())
	}
}

// Failures name the file (and the vertebra); a reader or fusion model
// missing is refused.
func TestVertebralFailures(t *testing.T) {
	m, f := spineModel(t)
	data, reader, cases := spineData(t, f)
	if _, err := Vertebral(t.Context(), VertebralOptions{Manifest: m, Fusion: f, Data: data}); err == nil {
		t.Error("no reader: no error")
	}
	if _, err := Vertebral(t.Context(), VertebralOptions{Manifest: m, Reader: reader, Data: data}); err == nil {
		t.Error("no fusion model: no error")
	}
	boom := errors.New("localiser gone")
	failing := &truthReader{t: t, err: boom}
	if _, err := Vertebral(t.Context(), VertebralOptions{Manifest: m, Reader: failing, Fusion: f, Data: data}); !errors.Is(err, boom) || !strings.Contains(err.Error(), cases[0].ID+".dcm") {
		t.Errorf("reader failure: %v", err)
	}
	// A fractured body whose deep features were not computed.
	uid := cases[1].Image.SOPInstanceUID
	rs := reader.readings[uid]
	var level string
	for i := range rs {
		if rs[i].Probabilities[0] < 0.5 {
			rs[i].Deep, level = nil, rs[i].Body.Level
			break
		}
	}
	if _, err := Vertebral(t.Context(), VertebralOptions{Manifest: m, Reader: reader, Fusion: f, Data: data}); err == nil ||
		!strings.Contains(err.Error(), cases[1].ID+".dcm "+level+": fusion") {
		t.Errorf("fusion failure: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Vertebral(ctx, VertebralOptions{Manifest: m, Reader: reader, Fusion: f, Data: data}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// Undefined figures of a small evaluation encode as null with a reason,
// not a failure; DeLong's test has camelCase keys.
func TestUndefinedFiguresEncodeAsNull(t *testing.T) {
	nan := math.NaN()
	truth := []bool{true, true, true}
	oneClass := binaryScore(truth, []float64{0.9, 0.2, 0.7}).AUC
	b, err := json.Marshal(struct {
		C Comparison
		G DifficultyAUC
	}{Comparison{AUCA: 0.5, AUCB: nan, SE: nan, Z: nan, P: nan, Diff: nan},
		DifficultyAUC{Difficulty: "subtle", N: 3, Acute: 3, Nomogram: oneClass, DLR: oneClass}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"C":{"aucA":0.5,"aucB":null,"diff":null,"se":null,"z":null,"p":null,"reason":"undefined: the test needs at least two cases of each class"},` +
		`"G":{"difficulty":"subtle","n":3,"acute":3,"chronic":0,` +
		`"nomogramAUC":{"value":null,"ci95":[null,null],"reason":"undefined: one class only"},` +
		`"dlrAUC":{"value":null,"ci95":[null,null],"reason":"undefined: one class only"}}}`
	if string(b) != want {
		t.Errorf("JSON\n%s, want\n%s", b, want)
	}
	// With one case of a class the AUC is defined, its DeLong interval not.
	few := binaryScore([]bool{true, false, false}, []float64{0.9, 0.2, 0.7}).AUC
	if few.Value != 1 || few.Reason != "ci95 undefined: fewer than two cases of a class" {
		t.Errorf("AUC of one positive: %+v", few)
	}
	// No fractured vertebra at all: an empty decision curve, no NaN.
	if _, err := json.Marshal(binaryScore(nil, nil)); err != nil {
		t.Errorf("empty binary report: %v", err)
	}
}

// A spine set whose subtle fractures are all acute (one class) encodes: the
// group's AUCs are null with the reason, the group is labelled and counted.
func TestVertebralOneClassDifficulty(t *testing.T) {
	rep := &VertebralReport{}
	s := &vertebralSamples{
		acuteTruth: []bool{true, false, true, false, true, true},
		dlr:        []float64{0.9, 0.1, 0.8, 0.3, 0.7, 0.6},
		nom:        []float64{0.95, 0.05, 0.85, 0.2, 0.75, 0.65},
		difficulty: []string{"typical", "typical", "typical", "typical", "subtle", "subtle"},
	}
	rep.scoreAcuity(s)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var got struct {
		Acuity struct {
			ByDifficulty []map[string]any
			DelongTest   map[string]any
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	by := got.Acuity.ByDifficulty
	if len(by) != 2 || by[0]["difficulty"] != "typical" || by[0]["n"] != 4.0 || by[1]["difficulty"] != "subtle" || by[1]["acute"] != 2.0 {
		t.Fatalf("byDifficulty %v", by)
	}
	sub := by[1]["nomogramAUC"].(map[string]any)
	if sub["value"] != nil || sub["reason"] != "undefined: one class only" {
		t.Errorf("subtle nomogram AUC %v", sub)
	}
	if typ := by[0]["dlrAUC"].(map[string]any); typ["value"] != 1.0 || typ["reason"] != nil {
		t.Errorf("typical DLR AUC %v", typ)
	}
	for _, k := range []string{"aucA", "aucB", "diff", "se", "z", "p"} {
		if _, ok := got.Acuity.DelongTest[k]; !ok {
			t.Errorf("delongTest lacks %q: %v", k, got.Acuity.DelongTest)
		}
	}
	var text bytes.Buffer
	(&VertebralEvaluation{Manifest: &inference.Manifest{}, Report: *rep}).Print(&text)
	if !strings.Contains(text.String(), "vertebrae by difficulty: typical 4 (2 acute), subtle 2 (2 acute)") {
		t.Errorf("printed report:\n%s", text.String())
	}
}
