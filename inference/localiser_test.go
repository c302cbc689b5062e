package inference

import (
	"image"
	"math"
	"testing"
)

// The localiser's output becomes pixel boxes: absent levels, NaN, tiny and
// off-image boxes are dropped, boxes are clipped to the image.
func TestDecodeBodies(t *testing.T) {
	l := Localiser{Levels: []string{"T12", "L1", "L2", "L3", "L4"}, MinPresence: 0.5}
	nan := float32(math.NaN())
	out := []float32{
		0.9, 0.5, 0.25, 0.2, 0.1, // T12: centre (100, 100) of 200x400, 40x40
		0.4, 0.5, 0.5, 0.2, 0.1, // L1: below presence
		0.9, nan, 0.5, 0.2, 0.1, // L2: NaN centre
		0.9, 0.99, 0.99, 0.2, 0.1, // L3: overhangs the corner, clipped
		0.9, 0.5, 0.5, 0.001, 0.001, // L4: under 4 px
	}
	bodies, err := DecodeBodies(l, out, 400, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || bodies[0].Level != "T12" || bodies[0].Box != image.Rect(80, 80, 120, 120) ||
		bodies[1].Level != "L3" || bodies[1].Box != image.Rect(178, 376, 200, 400) {
		t.Fatalf("bodies = %+v", bodies)
	}
	if _, err := DecodeBodies(l, out[:7], 400, 200); err == nil {
		t.Error("a short output was accepted")
	}
	r := ROI{Scale: 1.5, Inset: 0.1}
	if got := r.ROIBox(image.Rect(80, 80, 120, 100)); got != image.Rect(70, 60, 130, 120) {
		t.Errorf("ROIBox = %v", got)
	}
	if got := r.RadiomicsBox(image.Rect(80, 80, 120, 100)); got != image.Rect(84, 82, 116, 98) {
		t.Errorf("RadiomicsBox = %v", got)
	}
}
