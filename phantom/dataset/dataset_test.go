package dataset

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/phantom"
)

func manifest(t *testing.T, id string) *inference.Manifest {
	t.Helper()
	m, err := models.Manifest(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readCSV(t *testing.T, path string) [][]string {
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

// Pelvis radiographs: a DICOM file per case that decodes, a PNG preview,
// and one labels.csv row with both hips' truth.
func TestGeneratePelvis(t *testing.T) {
	out := t.TempDir()
	var stdout, progress bytes.Buffer
	g := Run{Kind: "pelvis", N: 1, Seed: 21, Start: 4, Out: out, PNG: true, Progress: &progress}
	if err := g.Generate(t.Context(), &stdout); err != nil {
		t.Fatal(err)
	}
	if want := "wrote 1 pelvis cases to " + out + " (labels.csv)\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if !strings.Contains(progress.String(), "phantom: 1/1 pelvis cases") {
		t.Errorf("progress %q", progress.String())
	}
	rows := readCSV(t, filepath.Join(out, "labels.csv"))
	want := [][]string{phantom.PelvisHeader}
	for i := 4; i < 5; i++ {
		want = append(want, phantom.Pelvis(21, i).Row(phantom.Pelvis(21, i).ID+".dcm"))
	}
	if d := cmp.Diff(want, rows); d != "" {
		t.Errorf("labels.csv (-want +got):\n%s", d)
	}
	// The columns readers knew before the joints and acquisition were
	// recorded come first, as they were.
	pc := phantom.Pelvis(21, 4)
	old := []string{"file", "left", "right", "left_difficulty", "right_difficulty", "left_detail", "right_detail"}
	if d := cmp.Diff([][]string{old, {pc.ID + ".dcm", pc.Left.Class, pc.Right.Class, pc.Left.Difficulty, pc.Right.Difficulty, pc.Left.Detail, pc.Right.Detail}},
		[][]string{rows[0][:len(old)], rows[1][:len(old)]}); d != "" {
		t.Errorf("labels.csv's first columns (-want +got):\n%s", d)
	}
	for _, id := range []string{"pelvis-21-00004"} {
		b, err := os.ReadFile(filepath.Join(out, id+".dcm"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := imaging.Decode(b, imaging.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		f, err := os.Open(filepath.Join(out, id+".png"))
		if err != nil {
			t.Fatal(err)
		}
		prev, err := png.Decode(f)
		f.Close()
		if err != nil || prev.Bounds().Dx() != img.Meta.Columns || prev.Bounds().Dy() != img.Meta.Rows {
			t.Errorf("%s preview: %v", id, err)
		}
	}
}

// A varied run writes the varied cases with their acquisition; an invalid
// variation writes nothing.
func TestGenerateVaried(t *testing.T) {
	out := t.TempDir()
	v := phantom.ClinicalVariation()
	if err := (Run{Kind: "pelvis", N: 2, Seed: 21, Out: out, Vary: v}).Generate(t.Context(), new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	want := [][]string{phantom.PelvisHeader}
	for i := range 2 {
		pc, err := phantom.PelvisVaried(21, i, v)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, pc.Row(pc.ID+".dcm"))
		b, err := os.ReadFile(filepath.Join(out, pc.ID+".dcm"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := imaging.Decode(b, imaging.Limits{})
		if err != nil || img.Meta.SOPInstanceUID != pc.Image.SOPInstanceUID {
			t.Errorf("%s: %v", pc.ID, err)
		}
	}
	if d := cmp.Diff(want, readCSV(t, filepath.Join(out, "labels.csv"))); d != "" {
		t.Errorf("labels.csv (-want +got):\n%s", d)
	}
	bad := t.TempDir()
	for _, kind := range []string{"pelvis", "spine"} {
		err := (Run{Kind: kind, N: 1, Seed: 21, Out: bad, Vary: phantom.Variation{Rotate: 90}}).Generate(t.Context(), new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), "rotate 90 outside") {
			t.Errorf("%s with rotation 90: %v", kind, err)
		}
	}
	if files, _ := os.ReadDir(bad); len(files) != 0 {
		t.Errorf("an invalid variation wrote %d files", len(files))
	}
}

// Spine radiographs are labelled one row per vertebra.
func TestGenerateSpine(t *testing.T) {
	out := t.TempDir()
	if err := (Run{Kind: "spine", N: 1, Seed: 3, Out: out}).Generate(t.Context(), new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	sc := phantom.Spine(3, 0)
	want := append([][]string{phantom.SpineHeader}, sc.Rows(sc.ID+".dcm")...)
	if d := cmp.Diff(want, readCSV(t, filepath.Join(out, "labels.csv"))); d != "" {
		t.Errorf("labels.csv (-want +got):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(out, sc.ID+".dcm")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(out, sc.ID+".png")); !os.IsNotExist(err) {
		t.Errorf("a preview without PNG: %v", err)
	}
}

// Hip crops: crops.npy holds each case's crops as the manifest cuts them,
// crops.csv one row per crop indexing this run's crops.npy (also with a
// start other than 0); no DICOM file is written.
func TestGenerateHipCrops(t *testing.T) {
	m := manifest(t, "hip-000")
	pre := m.Preprocess
	w, h := pre.Resize.Width, pre.Resize.Height
	for _, tc := range []struct {
		name     string
		n, start int
	}{
		{"from the first case", 2, 0},
		{"from case 2", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			var stdout bytes.Buffer
			g := Run{Kind: "pelvis", N: tc.n, Seed: 5, Start: tc.start, Out: out, Crops: &pre}
			if err := g.Generate(t.Context(), &stdout); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(stdout.String(), "(crops.csv)\n") {
				t.Errorf("stdout %q", stdout.String())
			}
			header, values := readNPY(t, filepath.Join(out, "crops.npy"))
			crops := tc.n * len(pre.Regions)
			if !strings.Contains(header, "'shape': ("+itoa(crops)+", 1, "+itoa(h)+", "+itoa(w)+")") || len(values) != crops*w*h {
				t.Fatalf("crops.npy %q with %d values", header, len(values))
			}
			rows := readCSV(t, filepath.Join(out, "crops.csv"))
			if len(rows) != 1+crops || rows[0][2] != "side" {
				t.Fatalf("crops.csv %v", rows)
			}
			cases := map[int]phantom.PelvisCase{}
			for i := tc.start; i < tc.start+tc.n; i++ {
				cases[i] = phantom.Pelvis(5, i)
			}
			for k, row := range rows[1:] {
				pc := cases[tc.start+k/len(pre.Regions)]
				hip := map[string]phantom.Hip{"left": pc.Left, "right": pc.Right}[row[2]]
				want := []string{itoa(k), pc.ID, pre.Regions[k%len(pre.Regions)].Laterality, hip.Class, hip.Difficulty, hip.Detail}
				if d := cmp.Diff(want, row); d != "" {
					t.Errorf("crops.csv row %d (-want +got):\n%s", k+1, d)
				}
			}
			// The first crop is what the service's preprocessing makes.
			var dcm bytes.Buffer
			if err := imaging.WriteDICOM(&dcm, cases[tc.start].Image); err != nil {
				t.Fatal(err)
			}
			img, _ := imaging.Decode(dcm.Bytes(), imaging.Limits{})
			first := make([]float32, len(pre.Regions)*w*h)
			if _, err := pre.Prepare(img.Pixels, img.Meta.Rows, img.Meta.Columns, first); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(first, values[:len(first)]); d != "" {
				t.Errorf("the first case's crops differ from Prepare's")
			}
			if files, _ := filepath.Glob(filepath.Join(out, "*.dcm")); len(files) != 0 {
				t.Errorf("DICOM files written with crops: %v", files)
			}
		})
	}
}

// A case that cannot be written stops the run with its error.
func TestGenerateFails(t *testing.T) {
	out := filepath.Join(t.TempDir(), "missing")
	if err := (Run{Kind: "pelvis", N: 1, Out: out}).Generate(t.Context(), new(bytes.Buffer)); !os.IsNotExist(err) && (err == nil || !strings.Contains(err.Error(), "no such file")) {
		t.Errorf("into a missing folder: %v", err)
	}
}
