package inference

import (
	"image"
	"testing"
)

func testManifest() *Manifest {
	return &Manifest{
		Labels:     []Label{{Key: "normal", Display: "Normal"}, {Key: "fnf", Display: "Neck fracture"}, {Key: "oa", Display: "OA"}},
		Thresholds: map[string]float64{"fnf": 0.3, "oa": 0.6},
		Triage: []TriageRule{
			{Classes: []string{"fnf"}, MinProbability: 0.2, Priority: "stat"},
			{Classes: []string{"oa"}, MinProbability: 0.5, Priority: "routine"},
		},
	}
}

func TestInterpretAndPriority(t *testing.T) {
	m := testManifest()
	c := Crop{Region: Region{Name: "right-hip", Laterality: "right"}, Box: image.Rect(0, 0, 4, 4)}
	for _, tc := range []struct {
		probs    []float64
		class    string
		reported bool
		priority string
	}{
		{[]float64{0.7, 0.25, 0.05}, "normal", true, "stat"}, // a 25% fracture still triages stat
		{[]float64{0.1, 0.1, 0.8}, "oa", true, "routine"},
		{[]float64{0.45, 0.0, 0.55}, "oa", false, "routine"}, // below oa's 0.6 threshold
		{[]float64{0.9, 0.05, 0.05}, "normal", true, ""},
	} {
		f := m.Interpret(Output{Probabilities: tc.probs}, c)
		if f.Class != tc.class || f.Reported != tc.reported || f.Priority != tc.priority || f.Laterality != "right" {
			t.Errorf("%v: got %s reported=%v priority=%q", tc.probs, f.Class, f.Reported, f.Priority)
		}
	}
}

// The activation map lands on the crop's pixels, hottest where the map is,
// and a mirrored region is mirrored back.
func TestActivationMapMirror(t *testing.T) {
	m := testManifest()
	cam := make([]float32, 3*2*2)
	cam[4+0] = 5 // class fnf (index 1), top-left cell
	o := Output{Probabilities: []float64{0.1, 0.8, 0.1}, CAM: cam, CAMSize: [2]int{2, 2}}
	for _, mirror := range []bool{false, true} {
		c := Crop{Region: Region{Name: "x", Mirror: mirror}, Box: image.Rect(10, 20, 18, 28)}
		h := m.Interpret(o, c).ActivationMap(o)
		if h == nil || h.Box != c.Box || len(h.Values) != 64 {
			t.Fatalf("heat %+v", h)
		}
		left, right := h.Values[0], h.Values[7]
		if mirror {
			left, right = right, left
		}
		if !(left > 0.9 && right < 0.1) {
			t.Errorf("mirror=%v: corner values %v %v", mirror, h.Values[0], h.Values[7])
		}
	}
	img := Overlay(make([]float32, 40*40), 40, 40, []*Heat{m.Interpret(o, Crop{Box: image.Rect(10, 20, 18, 28)}).ActivationMap(o)})
	if r, _, b, _ := img.At(10, 20).RGBA(); r <= b {
		t.Errorf("hot pixel should be red: %v", img.At(10, 20))
	}
	if r, g, b, _ := img.At(0, 0).RGBA(); r != 0 || g != 0 || b != 0 {
		t.Errorf("outside the heat the image is unchanged: %v", img.At(0, 0))
	}
}
