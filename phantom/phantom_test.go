package phantom

import (
	"bytes"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/orthotriage/orthotriage/imaging"
)

func TestPelvisDeterministic(t *testing.T) {
	a, b := Pelvis(5, 3), Pelvis(5, 3)
	if !slices.Equal(a.Image.Stored, b.Image.Stored) || a.Right != b.Right || a.Left != b.Left || a.Image.SOPInstanceUID != b.Image.SOPInstanceUID {
		t.Fatal("the same (seed, index) gave different cases")
	}
	c := Pelvis(5, 4)
	if slices.Equal(a.Image.Stored, c.Image.Stored) || a.Image.SOPInstanceUID == c.Image.SOPInstanceUID {
		t.Fatal("different indices gave the same image or UID")
	}
	if d := Pelvis(6, 3); slices.Equal(a.Image.Stored, d.Image.Stored) {
		t.Fatal("different seeds gave the same image")
	}
}

// The generated population has the documented class mix and subtle share,
// and every image is a valid radiograph the decoder reads back.
func TestPelvisPopulation(t *testing.T) {
	const n = 80
	count := map[string]int{}
	var abnormal, subtle int
	photometric := map[string]int{}
	bits := map[int]bool{}
	for i := range n {
		pc := Pelvis(11, i)
		for _, h := range []Hip{pc.Right, pc.Left} {
			if !slices.Contains(HipClasses, h.Class) {
				t.Fatalf("case %d: class %q", i, h.Class)
			}
			count[h.Class]++
			if h.Class != "normal" && h.Class != "tha" {
				abnormal++
				if h.Difficulty == "subtle" {
					subtle++
				}
			} else if h.Difficulty != "typical" {
				t.Fatalf("case %d: %s hip marked %s", i, h.Class, h.Difficulty)
			}
		}
		photometric[pc.Image.Photometric]++
		bits[pc.Image.BitsStored] = true
		if i%20 == 0 {
			var buf bytes.Buffer
			if err := imaging.WriteDICOM(&buf, pc.Image); err != nil {
				t.Fatal(err)
			}
			img, err := imaging.Decode(buf.Bytes(), imaging.Limits{})
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			m := img.Meta
			if m.Rows != pc.Image.Rows || m.Columns != pc.Image.Columns || m.PixelSpacing[0] < 0.6 || m.PixelSpacing[0] > 0.8 {
				t.Fatalf("case %d: decoded %dx%d spacing %v", i, m.Columns, m.Rows, m.PixelSpacing)
			}
			if img.Stats.StoredMax <= img.Stats.StoredMin+100 {
				t.Fatalf("case %d: flat image (stored %d-%d)", i, img.Stats.StoredMin, img.Stats.StoredMax)
			}
		}
	}
	t.Logf("classes over %d hips: %v; subtle %d of %d abnormal", 2*n, count, subtle, abnormal)
	for k, c := range HipClasses {
		want := hipPrevalence[k] * 2 * n
		if math.Abs(float64(count[c])-want) > 4*math.Sqrt(want)+5 {
			t.Errorf("%s: %d hips, expected about %.0f", c, count[c], want)
		}
	}
	if share := float64(subtle) / float64(abnormal); math.Abs(share-SubtleShare) > 0.07 {
		t.Errorf("subtle share %.2f, documented %.2f", share, SubtleShare)
	}
	if photometric["MONOCHROME1"] == 0 || photometric["MONOCHROME2"] == 0 || len(bits) < 2 {
		t.Errorf("acquisition variety missing: %v, bits %v", photometric, bits)
	}
}

// Each class draws its own signs: the hip's metal and bone differ from the
// same hip drawn normal in the places the class affects.
func TestHipSigns(t *testing.T) {
	for _, class := range HipClasses[1:] {
		for _, subtle := range []bool{false, true} {
			if class == "tha" && subtle {
				continue
			}
			rng := caseRNG(3, class, 0)
			base := newHipSpec(rng, 1)
			sick := base
			rng2 := caseRNG(3, class, 1)
			sick.applyClass(rng2, class, subtle)
			render := func(h hipSpec) (bone, metalSum float64, all []float64) {
				c := newCanvas(200, 200, 0.8, vec{110, 40}, 0, vec{})
				m := newCanvas(200, 200, 0.8, vec{110, 40}, 0, vec{})
				b, mt := h.fields(caseRNG(3, "fields", 0))
				for _, f := range b {
					c.add(f, 1)
				}
				for _, f := range mt {
					m.add(f, 1)
				}
				for _, v := range m.a {
					metalSum += v
				}
				for i := range c.a {
					c.a[i] += m.a[i]
				}
				return 0, metalSum, c.a
			}
			_, m0, a0 := render(base)
			_, m1, a1 := render(sick)
			var changed int
			for i := range a0 {
				if math.Abs(a0[i]-a1[i]) > 0.5 {
					changed++
				}
			}
			hasMetal := m1 > 0
			if wantMetal := class == "tha" || class == "fixation"; hasMetal != wantMetal || m0 != 0 {
				t.Errorf("%s subtle=%v: metal %v (normal %v)", class, subtle, m1, m0)
			}
			if changed < 20 {
				t.Errorf("%s subtle=%v: only %d pixels differ from the normal hip", class, subtle, changed)
			}
		}
	}
}

func TestSpine(t *testing.T) {
	var acuteDays, chronicDays []int
	fractured := 0
	for i := range 80 {
		sc := Spine(2, i)
		if len(sc.Vertebrae) < 5 {
			t.Fatalf("case %d: %d labelled vertebrae", i, len(sc.Vertebrae))
		}
		kind := ""
		for _, v := range sc.Vertebrae {
			b := v.Box
			if b[0] < 0 || b[1] < 0 || b[0]+b[2] > sc.Image.Columns || b[1]+b[3] > sc.Image.Rows || b[2] < 20 || b[3] < 15 {
				t.Fatalf("case %d %s: box %v outside %dx%d", i, v.Level, b, sc.Image.Columns, sc.Image.Rows)
			}
			if v.Fracture == "acute" {
				kind = "acute"
			} else if v.Fracture == "chronic" && kind == "" {
				kind = "chronic"
			}
		}
		switch kind {
		case "acute":
			acuteDays = append(acuteDays, sc.Clinical.SymptomDays)
			fractured++
		case "chronic":
			chronicDays = append(chronicDays, sc.Clinical.SymptomDays)
			fractured++
		}
		if rows := sc.Rows("x.dcm"); len(rows) != len(sc.Vertebrae) || len(rows[0]) != len(SpineHeader) {
			t.Fatalf("case %d: label rows %v", i, rows)
		}
	}
	med := func(v []int) int { sort.Ints(v); return v[len(v)/2] }
	t.Logf("fractured %d/80; median symptom days acute %d, chronic %d", fractured, med(acuteDays), med(chronicDays))
	if med(acuteDays) >= med(chronicDays) {
		t.Error("acute fractures should come with shorter symptom duration")
	}
	// Overlap: some acute cases have longer histories than some chronic ones.
	if slices.Max(acuteDays) <= slices.Min(chronicDays) {
		t.Error("symptom duration alone separates acuity; the documented overlap is missing")
	}
}
