package inference

import (
	"image"
	"math"
	"testing"
)

func TestBoxIoU(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b image.Rectangle
		want float64
	}{
		{"same", image.Rect(0, 0, 10, 10), image.Rect(0, 0, 10, 10), 1},
		{"half overlap", image.Rect(0, 0, 10, 10), image.Rect(5, 0, 15, 10), 50.0 / 150},
		{"inside", image.Rect(0, 0, 10, 10), image.Rect(0, 0, 5, 10), 0.5},
		{"touching", image.Rect(0, 0, 10, 10), image.Rect(10, 0, 20, 10), 0},
		{"apart", image.Rect(0, 0, 10, 10), image.Rect(30, 30, 40, 40), 0},
		{"empty", image.Rectangle{}, image.Rect(0, 0, 10, 10), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := BoxIoU(tc.a, tc.b); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("BoxIoU(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := BoxIoU(tc.b, tc.a); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("BoxIoU is not symmetric: %v", got)
			}
		})
	}
}

func TestMatchBody(t *testing.T) {
	labelled := map[string]image.Rectangle{"L1": image.Rect(0, 0, 10, 10), "L2": image.Rect(0, 20, 10, 30)}
	for _, tc := range []struct {
		name    string
		body    Body
		wantIoU float64
		wantOK  bool
	}{
		{"same box", Body{Level: "L1", Box: image.Rect(0, 0, 10, 10)}, 1, true},
		{"at the threshold", Body{Level: "L1", Box: image.Rect(0, 0, 3, 10)}, 0.3, true},
		{"below the threshold", Body{Level: "L1", Box: image.Rect(0, 0, 2, 10)}, 0.2, false},
		{"the box of another level", Body{Level: "L1", Box: image.Rect(0, 20, 10, 30)}, 0, false},
		{"a level not labelled", Body{Level: "T9", Box: image.Rect(0, 0, 10, 10)}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iou, ok := MatchBody(tc.body, labelled)
			if math.Abs(iou-tc.wantIoU) > 1e-12 || ok != tc.wantOK {
				t.Errorf("MatchBody = %v, %v; want %v, %v", iou, ok, tc.wantIoU, tc.wantOK)
			}
		})
	}
}
