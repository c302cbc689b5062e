package dataset

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/phantom"
)

// Out-of-distribution images: every kind once, in order, labelled; every
// file decodes with the service's decoder to the image made (within one
// stored step), a 12-bit MONOCHROME2 radiograph tagged exactly as a
// pelvis phantom (Modality DX or CR, PELVIS, AP).
func TestPhantomOOD(t *testing.T) {
	n := len(OODKinds)
	out := t.TempDir()
	vary, _ := phantom.ParseVariation("clinical")
	g := Run{Kind: "ood", N: n, Seed: 9, Out: out, Vary: vary}
	var stdout bytes.Buffer
	if err := g.OOD(t.Context(), &stdout); err != nil {
		t.Fatal(err)
	}
	want := "wrote 12 out-of-distribution images tagged PELVIS/AP to " + out + " (labels.csv): grey 1 black 1 white 1 noise 1 structured 1 spine 1 flipped 1 under 1 over 1 rotated 1 mirrored 1 corner 1\n"
	if stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	rows := readCSV(t, filepath.Join(out, "labels.csv"))
	if d := cmp.Diff(OODHeader, rows[0]); d != "" || len(rows) != 1+n {
		t.Fatalf("labels.csv %v", rows)
	}
	for i, row := range rows[1:] {
		kind := OODKinds[i]
		if row[1] != kind || !strings.HasPrefix(row[0], kind+"-") {
			t.Errorf("row %d %v, want kind %s", i, row, kind)
		}
		b, err := os.ReadFile(filepath.Join(out, row[0]))
		if err != nil {
			t.Fatal(err)
		}
		img, err := imaging.Decode(b, imaging.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", row[0], err)
		}
		m := img.Meta
		if m.BodyPart != "PELVIS" || m.ViewPosition != "AP" || (m.Modality != "DX" && m.Modality != "CR") || m.Photometric != "MONOCHROME2" || m.BitsStored != 12 {
			t.Errorf("%s: body part %q view %q modality %q %s %d bits", row[0], m.BodyPart, m.ViewPosition, m.Modality, m.Photometric, m.BitsStored)
		}
		neg, err := g.negativeOf(kind, i)
		if err != nil {
			t.Fatal(err)
		}
		if m.Rows != neg.rows || m.Columns != neg.cols {
			t.Fatalf("%s: %dx%d, made %dx%d", row[0], m.Columns, m.Rows, neg.cols, neg.rows)
		}
		worst := 0.0
		for k, v := range img.Pixels {
			worst = math.Max(worst, math.Abs(float64(v)-math.Max(0, math.Min(1, float64(neg.pixels[k])))))
		}
		if worst > 0.6/4095 {
			t.Errorf("%s: decoded display values differ from the image made by up to %.5f", row[0], worst)
		}
		if kind == "spine" && m.Rows <= m.Columns {
			t.Errorf("spine %dx%d is not a lateral spine", m.Columns, m.Rows)
		}
	}

	// The kinds made from a pelvis, against the decoded pelvis.
	pelvis := func(i int) ([]float32, int, int) {
		pc, err := phantom.PelvisVaried(9, i, vary)
		if err != nil {
			t.Fatal(err)
		}
		img, err := decodeCase(pc.ID, pc.Image)
		if err != nil {
			t.Fatal(err)
		}
		return img.Pixels, img.Meta.Rows, img.Meta.Columns
	}
	at := func(kind string) (negative, []float32, int, int) {
		i := slices.Index(OODKinds, kind)
		neg, err := g.negativeOf(kind, i)
		if err != nil {
			t.Fatal(err)
		}
		px, r, c := pelvis(i)
		return neg, px, r, c
	}
	if neg, px, r, c := at("rotated"); neg.rows != c || neg.cols != r || slices.Equal(neg.pixels, px) {
		t.Errorf("rotated: %dx%d from %dx%d", neg.cols, neg.rows, c, r)
	} else {
		// A quarter turn either way moves the original's top-left corner to
		// the top-right or the bottom-left.
		if neg.pixels[r-1] != px[0] && neg.pixels[(c-1)*r] != px[0] {
			t.Error("rotated: the top-left pixel is in neither rotated corner")
		}
	}
	if neg, px, _, _ := at("mirrored"); neg.pixels[0] != px[len(px)-1] || neg.pixels[len(px)-1] != px[0] {
		t.Error("mirrored: the first pixel is not the original's bottom-right")
	}
	neg, px, r, c := at("corner")
	same := 0
	for k := range px {
		if neg.pixels[k] == px[k] {
			same++
		}
	}
	if share := float64(same) / float64(r*c); share < 0.24 || share > 0.35 {
		t.Errorf("corner: %.2f of the pelvis kept, want one quadrant", share)
	}
	if unknown, err := g.negativeOf("elbow", 0); err == nil {
		t.Errorf("unknown kind made %s", unknown.id)
	}
}
