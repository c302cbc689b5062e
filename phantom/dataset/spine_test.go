package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
	"github.com/orthotriage/orthotriage/phantom"
)

// truthReader localises each case's labelled vertebrae at their boxes,
// plus one box matching nothing, with a network answer when network is set.
type truthReader struct {
	readings map[string][]spine.Reading // by SOP Instance UID
}

func (r truthReader) Read(_ context.Context, img *imaging.Image, given []inference.Body, all bool) ([]spine.Reading, error) {
	if given != nil || !all {
		panic("training data is read with the localiser and every radiomics feature")
	}
	return r.readings[img.Meta.SOPInstanceUID], nil
}

func newTruthReader(m *inference.Manifest, seed uint64, n int, network bool) truthReader {
	rs := m.Preprocess.Resize
	r := truthReader{readings: map[string][]spine.Reading{}}
	for i := range n {
		sc := phantom.Spine(seed, i)
		var out []spine.Reading
		for _, v := range sc.Vertebrae {
			b := v.Box
			rd := spine.Reading{Body: inference.Body{Level: v.Level, Presence: 0.9, Box: image.Rect(b[0], b[1], b[0]+b[2], b[1]+b[3])},
				ROI: make([]float32, rs.Width*rs.Height), Radiomics: map[string]float64{"b": 2, "a": 1}}
			if network {
				rd.Probabilities = map[bool][]float64{true: {0.1, 0.8, 0.1}, false: {0.9, 0.05, 0.05}}[v.Fracture != "none"]
				rd.Deep = make([]float32, 2048)
			}
			out = append(out, rd)
		}
		stray := out[0]
		stray.Body.Box = image.Rect(0, 0, 8, 8)
		r.readings[sc.Image.SOPInstanceUID] = append(out, stray)
	}
	return r
}

// spineTruth counts the cases' labelled and fractured vertebrae.
func spineTruth(seed uint64, n int) (labelled, fractured int) {
	for i := range n {
		for _, v := range phantom.Spine(seed, i).Vertebrae {
			labelled++
			if v.Fracture != "none" {
				fractured++
			}
		}
	}
	return labelled, fractured
}

// Before the localiser is trained, only its inputs and targets are
// written: one row per case and level, the box as fractions of the image.
func TestSpineCropsLocaliserOnly(t *testing.T) {
	m := manifest(t, "spine-000")
	l := m.Vertebral.Localiser
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := (Run{Kind: "spine", N: 2, Seed: 5, Out: out}).SpineCrops(t.Context(), SpineModel{Manifest: m}, &stdout); err != nil {
		t.Fatal(err)
	}
	if want := "wrote 2 spine cases (0 regions of interest) to " + out + "\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if _, v := readNPY(t, filepath.Join(out, "localiser.npy")); len(v) != 2*l.Width*l.Height {
		t.Errorf("localiser.npy holds %d values", len(v))
	}
	rows := readCSV(t, filepath.Join(out, "localiser.csv"))
	if len(rows) != 1+2*len(l.Levels) {
		t.Fatalf("localiser.csv has %d rows, want 1 + 2 cases x %d levels", len(rows), len(l.Levels))
	}
	present := 0
	for _, row := range rows[1:] {
		if row[3] == "1" {
			present++
			if row[4] == "0" || !strings.HasPrefix(row[4], "0.") {
				t.Errorf("row %v: the centre is not a fraction", row)
			}
		}
	}
	if labelled, _ := spineTruth(5, 2); present != labelled {
		t.Errorf("%d levels present, %d labelled", present, labelled)
	}
	for _, name := range []string{"rois.npy", "rois.csv", "radiomics.csv", "deep.npy", "localiser-stats.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); !os.IsNotExist(err) {
			t.Errorf("%s written before the localiser is trained (%v)", name, err)
		}
	}
}

// With the localiser and the network trained, every localised body
// matched to its label gets a rois.csv row, its region of interest, its
// radiomics and its deep features; the stray box is counted extra.
func TestSpineCropsAllStages(t *testing.T) {
	m := manifest(t, "spine-000")
	rs := m.Preprocess.Resize
	out := t.TempDir()
	var stdout, progress bytes.Buffer
	s := SpineModel{Manifest: m, Reader: newTruthReader(m, 5, 2, true), Network: true}
	if err := (Run{Kind: "spine", N: 2, Seed: 5, Out: out, Progress: &progress}).SpineCrops(t.Context(), s, &stdout); err != nil {
		t.Fatal(err)
	}
	labelled, fractured := spineTruth(5, 2)
	rois, radio := readCSV(t, filepath.Join(out, "rois.csv")), readCSV(t, filepath.Join(out, "radiomics.csv"))
	if len(rois) != 1+labelled || len(radio) != 1+labelled || strings.Join(radio[0], ",") != "index,a,b" || radio[1][1] != "1" {
		t.Fatalf("%d rois rows, %d radiomics rows (header %v), want %d", len(rois)-1, len(radio)-1, radio[0], labelled)
	}
	if r := rois[1]; r[0] != "0" || r[5] != "1.00000" || r[6] != "0.90000" || r[7] == "" {
		t.Errorf("rois.csv row %v: want index 0, IoU 1, presence 0.9 and the probabilities", r)
	}
	if h, v := readNPY(t, filepath.Join(out, "rois.npy")); len(v) != labelled*rs.Width*rs.Height || !strings.Contains(h, "("+itoa(labelled)+", 1, ") {
		t.Errorf("rois.npy %q holds %d values", h, len(v))
	}
	if h, v := readNPY(t, filepath.Join(out, "deep.npy")); len(v) != labelled*2048 || !strings.Contains(h, "("+itoa(labelled)+", 2048)") {
		t.Errorf("deep.npy %q holds %d values", h, len(v))
	}
	var stats localiserStats
	b, err := os.ReadFile(filepath.Join(out, "localiser-stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &stats); err != nil {
		t.Fatal(err)
	}
	want := localiserStats{Labelled: labelled, Found: labelled, Extra: 2, SumIoU: float64(labelled), Fractured: fractured, FracFound: fractured,
		FracCalled: fractured, NormalFound: labelled - fractured}
	if stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
	if !strings.Contains(progress.String(), "phantom: localised "+itoa(labelled)+" of "+itoa(labelled)+" labelled vertebrae (100.0%), mean IoU 1.000, 2 extra") {
		t.Errorf("progress:\n%s", progress.String())
	}
	if !strings.Contains(stdout.String(), "("+itoa(labelled)+" regions of interest)") {
		t.Errorf("stdout %q", stdout.String())
	}
}

// With the localiser but not the network, the regions of interest are
// written without probabilities and there is no deep.npy.
func TestSpineCropsBeforeTheNetwork(t *testing.T) {
	m := manifest(t, "spine-000")
	out := t.TempDir()
	s := SpineModel{Manifest: m, Reader: newTruthReader(m, 5, 1, false)}
	if err := (Run{Kind: "spine", N: 1, Seed: 5, Out: out}).SpineCrops(t.Context(), s, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	if rois := readCSV(t, filepath.Join(out, "rois.csv")); len(rois) < 2 || rois[1][7] != "" || rois[1][6] != "0.90000" {
		t.Errorf("rois.csv %v", rois)
	}
	if _, err := os.Stat(filepath.Join(out, "deep.npy")); !os.IsNotExist(err) {
		t.Errorf("deep.npy written without the network (%v)", err)
	}
}

// Pelvis phantoms as localiser negatives: every level absent.
func TestLocaliserNegatives(t *testing.T) {
	m := manifest(t, "spine-000")
	l := m.Vertebral.Localiser
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := (Run{Kind: "pelvis", N: 2, Seed: 6, Out: out}).LocaliserNegatives(t.Context(), m, &stdout); err != nil {
		t.Fatal(err)
	}
	if want := "wrote 2 localiser negatives (pelvis) to " + out + "\n"; stdout.String() != want {
		t.Errorf("stdout %q", stdout.String())
	}
	rows := readCSV(t, filepath.Join(out, "localiser.csv"))
	if len(rows) != 1+2*len(l.Levels) || rows[len(rows)-1][0] != "1" || rows[1][1] != phantom.Pelvis(6, 0).ID {
		t.Fatalf("localiser.csv %v", rows)
	}
	for _, row := range rows[1:] {
		if strings.Join(row[3:], ",") != "0,0,0,0,0" {
			t.Errorf("row %v is not absent", row)
		}
	}
	if _, v := readNPY(t, filepath.Join(out, "localiser.npy")); len(v) != 2*l.Width*l.Height {
		t.Errorf("localiser.npy holds %d values", len(v))
	}
}

// Vertebral negatives: every kind but the lateral spine, every level
// absent, the count per kind on stdout.
func TestVertebralNegatives(t *testing.T) {
	m := manifest(t, "spine-000")
	n := len(SpineNegativeKinds)
	if slices.Contains(SpineNegativeKinds, "spine") || n != len(NegativeKinds)-1 {
		t.Fatalf("SpineNegativeKinds %v", SpineNegativeKinds)
	}
	out := t.TempDir()
	var stdout bytes.Buffer
	vary, _ := phantom.ParseVariation("clinical")
	if err := (Run{Kind: "pelvis", N: n, Seed: 7, Out: out, Vary: vary}).VertebralNegatives(t.Context(), m, &stdout); err != nil {
		t.Fatal(err)
	}
	want := "wrote 11 vertebral localiser negatives to " + out + ": grey 1 black 1 white 1 noise 1 structured 1 flipped 1 under 1 over 1 rotated 1 mirrored 1 corner 1\n"
	if stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	checkNegatives(t, out, m.Vertebral.Localiser, SpineNegativeKinds)
	if err := (Run{Kind: "pelvis", N: 1, Out: out}).VertebralNegatives(t.Context(), manifest(t, "hip-000"), &stdout); err == nil {
		t.Error("a hip model's vertebral negatives: no error")
	}
}
