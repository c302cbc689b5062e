package dataset

import (
	"bytes"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/phantom"
)

// hipLocaliserManifest is hip-000 with a hip localiser stage.
func hipLocaliserManifest(t *testing.T) *inference.Manifest {
	t.Helper()
	m := manifest(t, "hip-000")
	m.Preprocess.Localiser = &inference.Localiser{File: "localiser.onnx", Input: "image", Output: "levels",
		Width: 192, Height: 160, Levels: inference.HipLevels, MinPresence: 0.5}
	m.Preprocess.CropScale, m.Preprocess.Upright = 1.1, true
	for k := range m.Preprocess.Regions {
		r := &m.Preprocess.Regions[k]
		r.Cx, r.Cy, r.Size = 0, 0, 0
	}
	return m
}

// truthFinder is a stand-in hip localiser: it finds each case's recorded
// joints and pelvis, except on the cases in miss, where it finds nothing.
// FindHips gets no identifier, so cases are keyed by a pixel and the size
// (pixelKey).
type truthFinder struct {
	joints map[int]inference.HipJoints
	miss   map[int]bool
}

func pixelKey(pixels []float32, rows, cols int) int {
	return int(math.Float32bits(pixels[len(pixels)/2+cols/3])) ^ rows<<20 ^ cols
}

func (f truthFinder) FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error) {
	k := pixelKey(pixels, rows, cols)
	if f.miss[k] {
		return inference.HipJoints{Right: inference.Body{Level: "right"}, Left: inference.Body{Level: "left"}, Pelvis: inference.Body{Level: "pelvis"}}, nil
	}
	return f.joints[k], nil
}

func newTruthFinder(t *testing.T, seed uint64, n int, vary phantom.Variation, miss func(i int) bool) truthFinder {
	t.Helper()
	f := truthFinder{joints: map[int]inference.HipJoints{}, miss: map[int]bool{}}
	for i := range n {
		pc, err := phantom.PelvisVaried(seed, i, vary)
		if err != nil {
			t.Fatal(err)
		}
		img, err := decodeCase(pc.ID, pc.Image)
		if err != nil {
			t.Fatal(err)
		}
		k := pixelKey(img.Pixels, img.Meta.Rows, img.Meta.Columns)
		if _, dup := f.joints[k]; dup {
			t.Fatalf("case %d: pixel key not unique", i)
		}
		f.joints[k] = inference.HipJoints{
			Right:  inference.Body{Level: "right", Presence: 0.9, Box: jointRect(pc.Right.Joint)},
			Left:   inference.Body{Level: "left", Presence: 0.9, Box: jointRect(pc.Left.Joint)},
			Pelvis: inference.Body{Level: "pelvis", Presence: 0.9, Box: jointRect(pc.Right.Joint).Union(jointRect(pc.Left.Joint))},
		}
		f.miss[k] = miss(i)
	}
	return f
}

// The localiser's targets are the recorded joints: on varied cases each
// present joint's centre is the labelled box's centre within a pixel, the
// pelvis spans both boxes; without the localiser no crop is written.
func TestPhantomHipLocaliserTargets(t *testing.T) {
	m := hipLocaliserManifest(t)
	l := m.Preprocess.Localiser
	vary, _ := phantom.ParseVariation("clinical")
	const n, seed = 4, 3
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := (Run{Kind: "pelvis", N: n, Seed: seed, Out: out, Vary: vary}).HipLocaliserData(t.Context(), HipModel{Manifest: m}, &stdout); err != nil {
		t.Fatal(err)
	}
	if want := "wrote 4 pelvis cases (localiser inputs) to " + out + "\n"; stdout.String() != want {
		t.Errorf("stdout %q", stdout.String())
	}
	header, values := readNPY(t, filepath.Join(out, "localiser.npy"))
	if !strings.Contains(header, "'shape': (4, 1, 160, 192)") || len(values) != n*l.Width*l.Height {
		t.Fatalf("localiser.npy %q with %d values", header, len(values))
	}
	rows := readCSV(t, filepath.Join(out, "localiser.csv"))
	if d := cmp.Diff(localiserHeader, rows[0]); d != "" || len(rows) != 1+3*n {
		t.Fatalf("localiser.csv: %d rows, header %s", len(rows), d)
	}
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := range n {
		pc, _ := phantom.PelvisVaried(seed, i, vary)
		cols, rws := float64(pc.Image.Columns), float64(pc.Image.Rows)
		for k, level := range []string{"right", "left", "pelvis"} {
			row := rows[1+3*i+k]
			if row[0] != itoa(i) || row[1] != pc.ID || row[2] != level {
				t.Fatalf("row %v", row)
			}
			var box [4]float64
			switch level {
			case "right":
				box = pc.Right.Joint.Box
			case "left":
				box = pc.Left.Joint.Box
			default:
				r, lb := pc.Right.Joint.Box, pc.Left.Joint.Box
				x0, y0 := min(r[0], lb[0]), min(r[1], lb[1])
				box = [4]float64{x0, y0, max(r[0]+r[2], lb[0]+lb[2]) - x0, max(r[1]+r[3], lb[1]+lb[3]) - y0}
			}
			if row[3] == "0" {
				continue
			}
			cx, cy := num(row[4])*cols, num(row[5])*rws
			if math.Abs(cx-(box[0]+box[2]/2)) > 1 || math.Abs(cy-(box[1]+box[3]/2)) > 1 ||
				math.Abs(num(row[6])*cols-box[2]) > 1 || math.Abs(num(row[7])*rws-box[3]) > 1 {
				t.Errorf("case %d %s: csv box centre (%.1f, %.1f) size %s x %s, recorded %v", i, level, cx, cy, row[6], row[7], box)
			}
		}
	}
	if files, _ := filepath.Glob(filepath.Join(out, "crops.*")); len(files) != 0 {
		t.Errorf("written without a localiser: %v", files)
	}
}

// A hip cut by collimation (under half its box in the field) is absent;
// the pelvis stays present while the other hip is.
func TestPhantomHipLocaliserCollimated(t *testing.T) {
	vary := phantom.Variation{Collimation: 0.4}
	const seed = 11
	for i := range 40 {
		pc, _ := phantom.PelvisVaried(seed, i, vary)
		rows := hipLocaliserRows(pc, 0, inference.HipLevels)
		for k, hip := range []phantom.Hip{pc.Right, pc.Left} {
			if hip.Joint.Open >= HipPresent {
				if rows[k][3] != "1" {
					t.Errorf("case %d: an open hip (%.2f) is absent: %v", i, hip.Joint.Open, rows[k])
				}
				continue
			}
			if strings.Join(rows[k][3:], ",") != "0,0,0,0,0" {
				t.Errorf("case %d: a cut hip (%.2f) is present: %v", i, hip.Joint.Open, rows[k])
			}
			other := []phantom.Hip{pc.Left, pc.Right}[k]
			if want := map[bool]string{true: "1", false: "0"}[other.Joint.Open >= HipPresent]; rows[2][3] != want {
				t.Errorf("case %d: pelvis present %s with the other hip open %.2f", i, rows[2][3], other.Joint.Open)
			}
			return // one cut hip checked
		}
	}
	t.Fatal("no hip cut by collimation in 40 cases")
}

// With a localiser, crops.npy and crops.csv are cut through it as the
// service cuts them (JointCrops, PrepareCrops); a case where it finds no
// joint gets its crops from the recorded boxes and is counted.
func TestPhantomHipLocaliserCrops(t *testing.T) {
	m := hipLocaliserManifest(t)
	pre := m.Preprocess
	rs := pre.Resize
	vary, _ := phantom.ParseVariation("clinical")
	const n, seed = 4, 5
	f := newTruthFinder(t, seed, n, vary, func(i int) bool { return i%2 == 1 })
	out := t.TempDir()
	var stdout bytes.Buffer
	g := Run{Kind: "pelvis", N: n, Seed: seed, Out: out, Vary: vary}
	if err := g.HipLocaliserData(t.Context(), HipModel{Manifest: m, Localiser: f}, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "localiser found no joint on 2 of 4 cases") {
		t.Errorf("stdout %q", stdout.String())
	}
	header, values := readNPY(t, filepath.Join(out, "crops.npy"))
	crops := n * len(pre.Regions)
	if !strings.Contains(header, "'shape': (8, 1, 128, 128)") || len(values) != crops*rs.Width*rs.Height {
		t.Fatalf("crops.npy %q with %d values", header, len(values))
	}
	rows := readCSV(t, filepath.Join(out, "crops.csv"))
	if d := cmp.Diff(cropsHeader, rows[0]); d != "" || len(rows) != 1+crops {
		t.Fatalf("crops.csv %v", rows)
	}
	plane := rs.Width * rs.Height
	for i := range n {
		pc, _ := phantom.PelvisVaried(seed, i, vary)
		for k, r := range pre.Regions {
			hip := map[string]phantom.Hip{"left": pc.Left, "right": pc.Right}[r.Laterality]
			want := []string{itoa(2*i + k), pc.ID, r.Laterality, hip.Class, hip.Difficulty, hip.Detail}
			if d := cmp.Diff(want, rows[1+2*i+k]); d != "" {
				t.Errorf("crops.csv case %d (-want +got):\n%s", i, d)
			}
		}
		// Found or not, the stand-in's boxes are the truth: the crops
		// are the service's on the recorded joints.
		img, _ := decodeCase(pc.ID, pc.Image)
		cs, err := pre.JointCrops(jointRect(pc.Right.Joint), jointRect(pc.Left.Joint))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, 2*plane)
		if err := pre.PrepareCrops(img.Pixels, img.Meta.Rows, img.Meta.Columns, cs, want); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(want, values[2*i*plane:(2*i+2)*plane]) {
			t.Errorf("case %d: crops differ from JointCrops/PrepareCrops on the joints", i)
		}
	}
}

// Negatives: every level absent, every kind produced, the exact 8-column
// header, the count per kind on stdout; the exposure kinds are crushed.
func TestPhantomHipNegatives(t *testing.T) {
	m := hipLocaliserManifest(t)
	l := m.Preprocess.Localiser
	n := len(NegativeKinds)
	out := t.TempDir()
	var stdout bytes.Buffer
	vary, _ := phantom.ParseVariation("clinical")
	g := Run{Kind: "pelvis", N: n, Seed: 7, Out: out, Vary: vary}
	if err := g.HipNegatives(t.Context(), m, &stdout); err != nil {
		t.Fatal(err)
	}
	want := "wrote 12 hip localiser negatives to " + out + ": grey 1 black 1 white 1 noise 1 structured 1 spine 1 flipped 1 under 1 over 1 rotated 1 mirrored 1 corner 1\n"
	if stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	checkNegatives(t, out, *l, NegativeKinds)
	for i, kind := range NegativeKinds {
		neg, err := g.negativeImage(i)
		if err != nil || neg.kind != kind || len(neg.pixels) != neg.rows*neg.cols {
			t.Fatalf("negative %d: %v %s", i, err, neg.kind)
		}
		dark, bright := 0, 0
		var lo, hi float32 = 1, 0
		for _, v := range neg.pixels {
			if v < 0.1 {
				dark++
			}
			if v > 0.9 {
				bright++
			}
			lo, hi = min(lo, v), max(hi, v)
		}
		share := func(c int) float64 { return float64(c) / float64(len(neg.pixels)) }
		switch kind {
		case "under":
			if share(dark) < 0.9 {
				t.Errorf("under-exposed: %.2f dark", share(dark))
			}
		case "over":
			if share(bright) < 0.9 {
				t.Errorf("over-exposed: %.2f bright", share(bright))
			}
		case "black", "white", "grey":
			if lo != hi {
				t.Errorf("%s is not uniform: %v-%v", kind, lo, hi)
			}
		case "noise", "structured":
			if hi-lo < 0.3 {
				t.Errorf("%s spans %v-%v", kind, lo, hi)
			}
		case "spine":
			if neg.rows <= neg.cols {
				t.Errorf("spine %dx%d is not a lateral spine", neg.cols, neg.rows)
			}
		case "flipped":
			pc, _ := phantom.PelvisVaried(7, i, vary)
			img, _ := decodeCase(pc.ID, pc.Image)
			if neg.pixels[0] != img.Pixels[(img.Meta.Rows-1)*img.Meta.Columns] {
				t.Error("flipped pelvis: the first pixel is not the original's bottom-left")
			}
		}
	}
	// Deterministic from (seed, index).
	a, _ := g.negativeImage(3)
	b, _ := g.negativeImage(3)
	if !slices.Equal(a.pixels, b.pixels) {
		t.Error("noise negative differs between calls")
	}
}

// checkNegatives checks a localiser's negatives in out, one image of each
// of kinds: the exact header, every level of every image absent, every
// kind there (the file prefix), and the images' values.
func checkNegatives(t *testing.T, out string, l inference.Localiser, kinds []string) {
	t.Helper()
	n := len(kinds)
	rows := readCSV(t, filepath.Join(out, "localiser.csv"))
	if d := cmp.Diff(localiserHeader, rows[0]); d != "" || len(rows) != 1+n*len(l.Levels) {
		t.Fatalf("localiser.csv %v", rows)
	}
	seen := map[string]bool{}
	for _, row := range rows[1:] {
		if strings.Join(row[3:], ",") != "0,0,0,0,0" {
			t.Errorf("row %v is not absent", row)
		}
		seen[strings.SplitN(row[1], "-", 2)[0]] = true
	}
	for _, k := range kinds {
		if !seen[k] {
			t.Errorf("no %s negative: %v", k, seen)
		}
	}
	if _, v := readNPY(t, filepath.Join(out, "localiser.npy")); len(v) != n*l.Width*l.Height {
		t.Errorf("localiser.npy holds %d values", len(v))
	}
}
