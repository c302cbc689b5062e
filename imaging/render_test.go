package imaging

import "testing"

// TestGrayScalesDownByWholeFactors: the rendered image keeps the pixels'
// grey levels, averages blocks when scaled down so the longer side fits,
// and an empty or inconsistent image renders empty.
func TestGrayScalesDownByWholeFactors(t *testing.T) {
	img := &Image{Meta: Metadata{Rows: 3, Columns: 5}, Pixels: []float32{
		0, 1, 0.5, 0.5, 2,
		0, 1, 0.5, 0.5, -1,
		1, 1, 1, 1, 1,
	}}
	full := img.Gray(0)
	if b := full.Bounds(); b.Dx() != 5 || b.Dy() != 3 {
		t.Fatalf("unscaled bounds %v", b)
	}
	if got := []uint8{full.Pix[0], full.Pix[1], full.Pix[2], full.Pix[4], full.Pix[full.Stride+4]}; got[0] != 0 || got[1] != 255 || got[2] != 128 || got[3] != 255 || got[4] != 0 {
		t.Errorf("grey levels %v, want 0 255 128 255 0 (out-of-range pixels clamped)", got)
	}
	half := img.Gray(3)
	if b := half.Bounds(); b.Dx() != 3 || b.Dy() != 2 {
		t.Fatalf("scaled to fit 3: bounds %v, want 3x2", b)
	}
	if half.Pix[0] != 128 || half.Pix[half.Stride] != 255 {
		t.Errorf("block averages %d and %d, want 128 and 255", half.Pix[0], half.Pix[half.Stride])
	}
	for _, bad := range []*Image{{}, {Meta: Metadata{Rows: 2, Columns: 2}, Pixels: []float32{1}}} {
		if b := bad.Gray(100).Bounds(); !b.Empty() {
			t.Errorf("inconsistent image rendered %v", b)
		}
	}
}
