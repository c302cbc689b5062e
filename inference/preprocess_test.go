package inference

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"golang.org/x/image/draw"
)

func testPreprocess() Preprocess {
	return Preprocess{
		Regions: []Region{
			{Name: "right-hip", Laterality: "right", Cx: 0.25, Cy: 0.5, Size: 0.25},
			{Name: "left-hip", Laterality: "left", Cx: 0.75, Cy: 0.5, Size: 0.25, Mirror: true},
		},
		Resize:    Resize{Width: 16, Height: 16, Filter: "catmull-rom"},
		Normalize: Normalize{Mean: 0.5, Std: 0.25},
	}
}

// A left-right symmetric image gives identical planes for a region and its
// mirrored twin; a ramp gives planes that are each other's mirror image.
func TestPrepareMirror(t *testing.T) {
	const rows, cols = 64, 128
	p := testPreprocess()
	sym := make([]float32, rows*cols)
	ramp := make([]float32, rows*cols)
	for y := range rows {
		for x := range cols {
			d := x - cols/2
			if d < 0 {
				d = -d - 1
			}
			sym[y*cols+x] = float32(d*y%17) / 16
			ramp[y*cols+x] = float32(x) / cols
		}
	}
	dst := make([]float32, 2*16*16)
	crops, err := p.Prepare(sym, rows, cols, dst)
	if err != nil {
		t.Fatal(err)
	}
	if crops[0].Box.Dx() != 32 || crops[1].Box.Min.X != 80 {
		t.Fatalf("crop boxes %v %v", crops[0].Box, crops[1].Box)
	}
	for i := range 256 {
		if d := dst[i] - dst[256+i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("symmetric image: planes differ at %d: %v vs %v", i, dst[i], dst[256+i])
		}
	}
	if _, err := p.Prepare(ramp, rows, cols, dst); err != nil {
		t.Fatal(err)
	}
	// Unmirrored plane rises left to right; the mirrored one falls.
	if !(dst[8*16+15] > dst[8*16]) || !(dst[256+8*16+15] < dst[256+8*16]) {
		t.Fatalf("mirroring: right plane %v..%v, left plane %v..%v", dst[8*16], dst[8*16+15], dst[256+8*16], dst[256+8*16+15])
	}
	// Normalisation: a value v becomes (v-0.5)/0.25.
	flat := make([]float32, rows*cols)
	for i := range flat {
		flat[i] = 0.75
	}
	p.Prepare(flat, rows, cols, dst)
	if d := dst[5*16+5] - 1; d > 1e-3 || d < -1e-3 {
		t.Fatalf("normalised 0.75 -> %v, want 1", dst[5*16+5])
	}
}

func TestPrepareEdges(t *testing.T) {
	p := testPreprocess()
	p.Regions[0].Cx = 0 // half the crop lies left of the image
	img := make([]float32, 32*64)
	for i := range img {
		img[i] = 1
	}
	dst := make([]float32, 2*16*16)
	if _, err := p.Prepare(img, 32, 64, dst); err != nil {
		t.Fatal(err)
	}
	if dst[8*16] > -1.9 || dst[8*16+15] < 1.9 {
		t.Fatalf("outside the image should be black (-2), inside white (+2): %v %v", dst[8*16], dst[8*16+15])
	}
	for _, tc := range []struct {
		pixels     []float32
		rows, cols int
		dst        []float32
		want       string
	}{
		{img, 32, 63, dst, "pixels"},
		{img, 32, 64, dst[:10], "destination"},
		{nil, 0, 0, dst, "pixels"},
		{make([]float32, 2*20000), 2, 20000, dst, "limit"},
	} {
		if _, err := p.Prepare(tc.pixels, tc.rows, tc.cols, tc.dst); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Prepare(%d pixels, %dx%d, dst %d) = %v, want an error about %s", len(tc.pixels), tc.cols, tc.rows, len(tc.dst), err, tc.want)
		}
	}
}

func TestSoftmax(t *testing.T) {
	p := Softmax([]float32{1000, 1000, -1000}, 1)
	if p[0] != 0.5 || p[1] != 0.5 || p[2] != 0 {
		t.Fatalf("softmax of large logits %v", p)
	}
	hot, cool := Softmax([]float32{2, 0}, 1), Softmax([]float32{2, 0}, 2)
	if !(cool[0] < hot[0]) {
		t.Fatalf("a higher temperature must soften: %v vs %v", cool, hot)
	}
}

// CropResize reads a box (overhanging the image, mirrored or not, with
// values outside [0,1] and NaN among the pixels) exactly as x/image/draw
// scales the same box as 16-bit gray, for every filter.
func TestCropResizeMatchesXImageDraw(t *testing.T) {
	const rows, cols = 90, 70
	pixels := make([]float32, rows*cols)
	for i := range pixels {
		pixels[i] = float32(math.Sin(float64(i)*0.37))*0.7 + 0.45 // some below 0, some above 1
	}
	pixels[5*cols+6] = float32(math.NaN())
	for _, filter := range []string{"catmull-rom", "bilinear", "approx-bilinear"} {
		p := testPreprocess()
		p.Resize.Filter = filter
		scaler, _ := resampler(filter)
		for _, box := range []image.Rectangle{image.Rect(0, 0, cols, rows), image.Rect(-12, 40, 50, 101), image.Rect(3, -7, 20, 9), image.Rect(55, 80, 83, 97)} {
			for _, mirror := range []bool{false, true} {
				for _, size := range [][2]int{{16, 16}, {48, 24}} {
					w, h := size[0], size[1]
					got := make([]float32, w*h)
					if err := p.CropResize(pixels, rows, cols, box, mirror, w, h, got); err != nil {
						t.Fatal(err)
					}
					in := image.NewGray16(image.Rect(0, 0, box.Dx(), box.Dy()))
					for y := range box.Dy() {
						for x := range box.Dx() {
							sx, sy := box.Min.X+x, box.Min.Y+y
							if mirror {
								sx = box.Max.X - 1 - x
							}
							if sx >= 0 && sx < cols && sy >= 0 && sy < rows {
								in.SetGray16(x, y, color.Gray16{Y: quantize(pixels[sy*cols+sx])})
							}
						}
					}
					out := image.NewGray16(image.Rect(0, 0, w, h))
					scaler.Scale(out, out.Bounds(), in, in.Bounds(), draw.Src, nil)
					for j := range got {
						want := (float32(out.Gray16At(j%w, j/w).Y)/65535 - 0.5) * 4
						if got[j] != want {
							t.Fatalf("%s, box %v, mirror %v, %dx%d: value %d is %v, x/image/draw gives %v", filter, box, mirror, w, h, j, got[j], want)
						}
					}
				}
			}
		}
	}
	for _, tc := range []struct {
		v    float32
		want uint16
	}{{-0.2, 0}, {0, 0}, {1, 0xffff}, {7, 0xffff}, {0.5, 0x8000}, {float32(math.NaN()), 0}, {float32(math.Inf(1)), 0xffff}, {float32(math.Inf(-1)), 0}} {
		if got := quantize(tc.v); got != tc.want {
			t.Errorf("quantize(%v) = %#x, want %#x", tc.v, got, tc.want)
		}
	}
}

// TestOverflowingSizesAreRefused: sizes whose products overflow, corners
// out of order (whose Dx wraps round to a small width) and negative CAM
// sizes are refused or give nothing; none panics.
func TestOverflowingSizesAreRefused(t *testing.T) {
	p := testPreprocess()
	dst := make([]float32, 16*16)
	pixels := make([]float32, 16)
	backward := image.Rectangle{Min: image.Pt(math.MaxInt, 0), Max: image.Pt(math.MinInt+3, 4)}
	if backward.Dx() != 4 {
		t.Fatalf("the backward box's width is %d, not the wrapped 4 this test is about", backward.Dx())
	}
	if err := p.CropResize(pixels, 4, 4, backward, false, 16, 16, dst); err == nil {
		t.Error("CropResize took a box with its corners out of order")
	}
	huge := 1 << 32
	if err := p.CropResize(nil, huge, huge, image.Rect(0, 0, 4, 4), false, 16, 16, dst); err == nil {
		t.Error("CropResize took no pixels for a 2^32 x 2^32 image")
	}
	if _, err := p.Prepare(nil, huge, huge, make([]float32, 2*16*16)); err == nil {
		t.Error("Prepare took no pixels for a 2^32 x 2^32 image")
	}
	if err := p.PrepareCrops(nil, huge, huge, []Crop{{Centre: [2]float64{2, 2}, Side: 4}}, dst); err == nil {
		t.Error("PrepareCrops took no pixels for a 2^32 x 2^32 image")
	}
	if _, err := MeasureQuality(nil, huge, huge); err == nil {
		t.Error("MeasureQuality took no pixels for a 2^32 x 2^32 image")
	}
	if img := Thumbnail(nil, huge, huge, image.Rect(0, 0, 4, 4), nil, 8); img.Bounds().Dx() != 8 {
		t.Errorf("thumbnail of %v", img.Bounds())
	}
	f := Finding{Box: image.Rect(0, 0, 4, 4), Crop: Crop{Centre: [2]float64{2, 2}, Side: 4}}
	for _, size := range [][2]int{{-2, 3}, {3, -2}, {-2, -3}, {0, 6}, {1 << 32, 1 << 32}, {1 << 62, 4}} {
		if f.HeatAt(Output{CAM: make([]float32, 6), CAMSize: size}) != nil || f.ActivationMap(Output{CAM: make([]float32, 6), CAMSize: size}) != nil {
			t.Errorf("CAM size %v: a heat map from 6 values", size)
		}
	}
}
