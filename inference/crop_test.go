package inference

import (
	"errors"
	"image"
	"math"
	"testing"
)

func jointPreprocess() Preprocess {
	p := testPreprocess()
	p.Regions = []Region{{Name: "right-hip", Laterality: "right"}, {Name: "left-hip", Laterality: "left", Mirror: true}}
	p.Localiser = &Localiser{File: "l.onnx", Input: "image", Output: "levels", Width: 32, Height: 32, Levels: HipLevels, MinPresence: 0.5}
	p.CropScale, p.Upright = 1.5, true
	p.Resize.Width, p.Resize.Height = 32, 32
	return p
}

// pattern is a smooth asymmetric scene: two "hips" (bright blobs with a
// dark notch up and to the outside) on a gradient.
func pattern(x, y float64) float64 {
	v := 0.2 + 0.001*y
	for _, h := range [][2]float64{{60, 100}, {180, 100}} {
		dx, dy := x-h[0], y-h[1]
		v += 0.5 * math.Exp(-(dx*dx+dy*dy)/(2*12*12))
		v -= 0.3 * math.Exp(-((dx-8)*(dx-8)+(dy+10)*(dy+10))/(2*4*4))
		v += 0.2 * math.Exp(-((dx+5)*(dx+5)+(dy-12)*(dy-12))/(2*3*3))
	}
	return v
}

// render draws pattern rotated by angle about c (clockwise on the display).
func render(rows, cols int, angle float64, c [2]float64) []float32 {
	px := make([]float32, rows*cols)
	cos, sin := math.Cos(angle), math.Sin(angle)
	for y := range rows {
		for x := range cols {
			dx, dy := float64(x)+0.5-c[0], float64(y)+0.5-c[1]
			// Undo the rotation to find the scene point.
			px[y*cols+x] = float32(pattern(c[0]+dx*cos+dy*sin, c[1]-dx*sin+dy*cos))
		}
	}
	return px
}

func boxAt(c [2]float64, side int) image.Rectangle {
	x0, y0 := int(math.Round(c[0]-float64(side)/2)), int(math.Round(c[1]-float64(side)/2))
	return image.Rect(x0, y0, x0+side, y0+side)
}

func correlation(a, b []float32) float64 {
	var sa, sb, saa, sbb, sab float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		sa, sb, saa, sbb, sab = sa+x, sb+y, saa+x*x, sbb+y*y, sab+x*y
	}
	n := float64(len(a))
	return (sab/n - sa/n*sb/n) / math.Sqrt((saa/n-sa/n*sa/n)*(sbb/n-sb/n*sb/n))
}

// Upright crops of a rotated image are the crops of the unrotated one.
func TestJointCropsFollowRotation(t *testing.T) {
	const rows, cols = 200, 240
	p := jointPreprocess()
	c := [2]float64{120, 100}
	plane := 32 * 32
	crops := func(angle float64) ([]float32, []Crop) {
		px := render(rows, cols, angle, c)
		var boxes [2]image.Rectangle
		for k, h := range [][2]float64{{60, 100}, {180, 100}} {
			dx, dy := h[0]-c[0], h[1]-c[1]
			boxes[k] = boxAt([2]float64{c[0] + dx*math.Cos(angle) - dy*math.Sin(angle), c[1] + dx*math.Sin(angle) + dy*math.Cos(angle)}, 40)
		}
		cr, err := p.JointCrops(boxes[0], boxes[1])
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, 2*plane)
		if err := p.PrepareCrops(px, rows, cols, cr, dst); err != nil {
			t.Fatal(err)
		}
		return dst, cr
	}
	flat, fc := crops(0)
	if fc[0].Angle != 0 || fc[0].Side != 60 || fc[1].Centre != [2]float64{180, 100} {
		t.Errorf("unrotated crops %+v", fc)
	}
	for _, deg := range []float64{-15, 12} {
		rot, rc := crops(deg * math.Pi / 180)
		if got := rc[0].Angle * 180 / math.Pi; math.Abs(got-deg) > 1.5 {
			t.Errorf("%v degrees: crop angle %.2f", deg, got)
		}
		for k := range 2 {
			if r := correlation(flat[k*plane:(k+1)*plane], rot[k*plane:(k+1)*plane]); r < 0.99 {
				t.Errorf("%v degrees, crop %d: correlation %.4f with the unrotated crop", deg, k, r)
			}
		}
	}
}

// The left crop is mirrored; an unrotated crop on whole pixels is the one
// CropResize cuts, bit for bit.
func TestJointCropsMirrorAndFixedPath(t *testing.T) {
	const rows, cols = 200, 240
	p := jointPreprocess()
	p.Upright = false
	px := render(rows, cols, 0, [2]float64{120, 100})
	box := image.Rect(40, 80, 80, 120)
	cr, err := p.JointCrops(box, box)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 2*32*32)
	if err := p.PrepareCrops(px, rows, cols, cr, dst); err != nil {
		t.Fatal(err)
	}
	for y := range 32 {
		for x := range 32 {
			if a, b := dst[y*32+x], dst[1024+y*32+31-x]; math.Abs(float64(a-b)) > 1e-5 {
				t.Fatalf("mirror: (%d,%d) %v vs %v", x, y, a, b)
			}
		}
	}
	want := make([]float32, 32*32)
	if err := p.CropResize(px, rows, cols, cr[0].Box, false, 32, 32, want); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if want[i] != dst[i] {
			t.Fatalf("fixed path: value %d %v, CropResize %v", i, dst[i], want[i])
		}
	}
	// Rotated by a hair, the sampling path gives nearly the same crop.
	cr[0].Angle = 1e-9
	if err := p.PrepareCrops(px, rows, cols, cr[:1], dst[:1024]); err != nil {
		t.Fatal(err)
	}
	if r := correlation(want, dst[:1024]); r < 0.9999 {
		t.Errorf("sampling path: correlation %v", r)
	}
}

// What a crop overhangs is black; odd geometry is refused, never a panic.
func TestJointCropsOverhangAndLimits(t *testing.T) {
	const rows, cols = 100, 100
	p := jointPreprocess()
	px := make([]float32, rows*cols)
	for i := range px {
		px[i] = 1
	}
	corner := image.Rect(-20, -20, 20, 20) // centred on the corner, rotated
	cr, err := p.JointCrops(corner, image.Rect(60, 40, 100, 80))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 2*32*32)
	if err := p.PrepareCrops(px, rows, cols, cr, dst); err != nil {
		t.Fatal(err)
	}
	black := float32((0 - p.Normalize.Mean) / p.Normalize.Std)
	white := float32((1 - p.Normalize.Mean) / p.Normalize.Std)
	if math.Abs(float64(dst[0]-black)) > 1e-3 || math.Abs(float64(dst[31*32+31]-white)) > 1e-3 {
		t.Errorf("overhang: top-left %v (want black %v), bottom-right %v (want white %v)", dst[0], black, dst[31*32+31], white)
	}
	huge := image.Rect(0, 0, MaxCropSide, MaxCropSide)
	if _, err := p.JointCrops(huge, huge); err == nil {
		t.Error("a crop over MaxCropSide was accepted")
	}
	if _, err := p.JointCrops(image.Rectangle{}, corner); !errors.Is(err, ErrNoJoint) {
		t.Errorf("no right joint: %v", err)
	}
	far := image.Rect(1<<21, 0, 1<<21+10, 10)
	if _, err := p.JointCrops(far, far); err == nil {
		t.Error("a crop far outside was accepted")
	}
	for _, c := range []Crop{{Side: math.NaN()}, {Side: math.Inf(1)}, {Side: 0}, {Side: 5000}} {
		if err := p.PrepareCrops(px, rows, cols, []Crop{c}, dst[:1024]); err == nil {
			t.Errorf("crop %+v accepted", c)
		}
	}
	nan := float32(math.NaN())
	l := *p.Localiser
	for _, out := range [][]float32{
		{nan, nan, nan, nan, nan, 1, nan, 0.5, 0.1, 0.1, float32(math.Inf(1)), 0.5, 0.5, 1e30, 1e30},
		{1, 0.3, 0.5, 0.1, 0.1, 1, 0.7, 0.5, 0.1, 0.1, 1, 0.5, 0.5, 0.8, 0.3},
	} {
		h, err := DecodeHips(l, out, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		if r, lb, _, err := h.Complete(); err == nil {
			if _, err := p.JointCrops(r, lb); err != nil {
				t.Errorf("decoded joints %v %v: %v", r, lb, err)
			}
		}
	}
	if _, err := DecodeHips(l, make([]float32, 10), rows, cols); err == nil {
		t.Error("a short localiser output was accepted")
	}
}

// A joint the localiser missed is the other's mirror image across the
// pelvis; without the pelvis the image cannot be cropped.
func TestHipJointsComplete(t *testing.T) {
	right := Body{Level: "right", Presence: 0.9, Box: image.Rect(20, 40, 50, 70)}
	pelvis := Body{Level: "pelvis", Presence: 0.9, Box: image.Rect(10, 20, 190, 100)}
	h := HipJoints{Right: right, Left: Body{Level: "left", Presence: 0.1}, Pelvis: pelvis}
	r, l, inferred, err := h.Complete()
	if err != nil || r != right.Box || l != image.Rect(150, 40, 180, 70) || inferred != "left" {
		t.Errorf("completed %v %v %q %v", r, l, inferred, err)
	}
	h.Pelvis.Box = image.Rectangle{}
	if _, _, _, err := h.Complete(); !errors.Is(err, ErrNoJoint) {
		t.Errorf("no pelvis: %v", err)
	}
}

// The heat map of a rotated crop is rotated back onto the image.
func TestActivationMapRotated(t *testing.T) {
	m := testManifest()
	cam := make([]float32, 3*2*2)
	cam[4+0] = 5 // class fnf, the crop's top-left cell
	o := Output{Probabilities: []float64{0.1, 0.8, 0.1}, CAM: cam, CAMSize: [2]int{2, 2}}
	c, err := rotatedCrop(Region{Name: "x"}, [2]float64{50, 50}, 40, math.Pi/2)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Interpret(o, c).ActivationMap(o)
	// Rotated a quarter turn clockwise, the crop's top-left lies at the
	// image's top-right of the square.
	at := func(x, y int) float32 { return h.Values[(y-h.Box.Min.Y)*h.Box.Dx()+x-h.Box.Min.X] }
	if !(at(65, 35) > 0.9 && at(35, 35) < 0.1) {
		t.Errorf("rotated heat: top-right %v, top-left %v", at(65, 35), at(35, 35))
	}
}
