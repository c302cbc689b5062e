package radiomics_test

import (
	"errors"
	"math"
	"testing"

	"github.com/orthotriage/orthotriage/inference/radiomics"
)

// shape is a slice whose ROI is the pixels inside(x, y), value x+y.
func shape(w, h int, inside func(x, y int) bool) radiomics.Slice {
	s := radiomics.Slice{W: w, H: h}
	for y := range h {
		for x := range w {
			s.Values = append(s.Values, float64(x+y))
			s.Mask = append(s.Mask, inside(x, y))
		}
	}
	return s
}

func near(t *testing.T, what string, got, want, rel float64) {
	t.Helper()
	if math.Abs(got-want) > rel*math.Abs(want) {
		t.Errorf("%s = %.4g, want %.4g (within %.1f%%)", what, got, want, 100*rel)
	}
}

func TestMorphologyOfKnownShapes(t *testing.T) {
	// A disc of radius 30 pixels at 0.5 mm spacing.
	const r = 30.0
	disc := shape(80, 80, func(x, y int) bool { return math.Hypot(float64(x)-40, float64(y)-40) <= r })
	f, err := radiomics.Morphology(disc, 0.5, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	rmm := r * 0.5
	near(t, "disc area", f["Area (pixel counting)"], math.Pi*rmm*rmm, 0.01)
	near(t, "disc mesh area", f["Area (mesh)"], math.Pi*rmm*rmm, 0.01)
	// Marching squares on a binary mask draws 0°, 45° and 90° segments only,
	// so a digitised circle's outline is about 6% longer than the circle.
	near(t, "disc perimeter", f["Perimeter (mesh)"], 2*math.Pi*rmm, 0.08)
	near(t, "disc circularity", f["Circularity"], 1, 0.12)
	near(t, "disc major axis", f["Major axis length"], 2*rmm, 0.02)
	near(t, "disc minor axis", f["Minor axis length"], 2*rmm, 0.02)
	near(t, "disc elongation", f["Elongation"], 1, 0.01)
	near(t, "disc diameter", f["Maximum diameter"], 2*rmm, 0.02)

	// A 40 x 10 pixel rectangle: exact answers.
	rect := shape(50, 20, func(x, y int) bool { return x >= 5 && x < 45 && y >= 5 && y < 15 })
	f, err = radiomics.Morphology(rect, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The outline runs through the mid-points between ROI and background
	// pixel centres, with the four corners cut by half-pixel diagonals.
	wantPerimeter := 2*(39+9) + 4*math.Sqrt(0.5)
	near(t, "rectangle area", f["Area (pixel counting)"], 400, 1e-12)
	near(t, "rectangle mesh area", f["Area (mesh)"], 40*10-4*0.125, 1e-12)
	near(t, "rectangle perimeter", f["Perimeter (mesh)"], wantPerimeter, 1e-12)
	// Pixel-centre variance of n consecutive integers: (n^2-1)/12.
	near(t, "rectangle major axis", f["Major axis length"], 4*math.Sqrt((40*40-1)/12.0), 1e-12)
	near(t, "rectangle minor axis", f["Minor axis length"], 4*math.Sqrt((10*10-1)/12.0), 1e-12)
	near(t, "rectangle diameter", f["Maximum diameter"], math.Hypot(39+1, 9), 1e-12)
}

func TestDiscretisation(t *testing.T) {
	s := radiomics.Slice{W: 4, H: 1, Values: []float64{0, 5, 10, 7.5}, Mask: []bool{true, true, true, false}}
	d, err := radiomics.FixedBinNumber(s, 4)
	if err != nil {
		t.Fatal(err)
	}
	// floor(4*(x-0)/10)+1, the maximum in the last bin; outside the ROI 0.
	if want := []int{1, 3, 4, 0}; !equal(d.Grey, want) || d.Levels != 4 {
		t.Errorf("FBN grey %v levels %d, want %v and 4", d.Grey, d.Levels, want)
	}
	d, err = radiomics.FixedBinSize(s, 2.5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 3, 5, 0}; !equal(d.Grey, want) || d.Levels != 5 {
		t.Errorf("FBS grey %v levels %d, want %v and 5", d.Grey, d.Levels, want)
	}
	flat := radiomics.Slice{W: 2, H: 1, Values: []float64{3, 3}, Mask: []bool{true, true}}
	if d, _ := radiomics.FixedBinNumber(flat, 8); !equal(d.Grey, []int{1, 1}) {
		t.Errorf("flat ROI: %v", d.Grey)
	}
}

func TestBadInput(t *testing.T) {
	empty := radiomics.Slice{W: 2, H: 1, Values: []float64{1, 2}, Mask: []bool{false, false}}
	if _, err := radiomics.Intensity(empty); !errors.Is(err, radiomics.ErrEmptyROI) {
		t.Errorf("empty ROI: %v", err)
	}
	if _, err := radiomics.Morphology(radiomics.Slice{W: 3, H: 3, Values: []float64{1}}, 1, 1); !errors.Is(err, radiomics.ErrShape) {
		t.Errorf("short values: %v", err)
	}
	nan := radiomics.Slice{W: 1, H: 1, Values: []float64{math.NaN()}, Mask: []bool{true}}
	if _, err := radiomics.FixedBinNumber(nan, 8); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := radiomics.FixedBinSize(radiomics.Slice{W: 1, H: 1, Values: []float64{-1}, Mask: []bool{true}}, 1, 0); err == nil {
		t.Error("value below the lower bound accepted")
	}
	// A single pixel: every family answers without dividing by zero.
	one := radiomics.Slice{W: 1, H: 1, Values: []float64{5}, Mask: []bool{true}}
	d, _ := radiomics.FixedBinNumber(one, 8)
	if _, err := radiomics.GLCM(radiomics.Averaged, d); !errors.Is(err, radiomics.ErrEmptyROI) {
		t.Errorf("GLCM of one pixel: %v, want no pairs (ErrEmptyROI)", err)
	}
	for name, f := range map[string]func() (radiomics.Features, error){
		"intensity":  func() (radiomics.Features, error) { return radiomics.Intensity(one) },
		"histogram":  func() (radiomics.Features, error) { return radiomics.Histogram(d) },
		"GLRLM":      func() (radiomics.Features, error) { return radiomics.GLRLM(radiomics.SliceMerged, d) },
		"GLSZM":      func() (radiomics.Features, error) { return radiomics.GLSZM(d) },
		"morphology": func() (radiomics.Features, error) { return radiomics.Morphology(one, 1, 1) },
	} {
		fs, err := f()
		if err != nil {
			t.Errorf("%s of one pixel: %v", name, err)
		}
		for k, v := range fs {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s of one pixel: %s = %v", name, k, v)
			}
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTooManyLevelsForTheGLCM(t *testing.T) {
	s := radiomics.Slice{W: 2, H: 1, Values: []float64{0, 5000}, Mask: []bool{true, true}}
	d, err := radiomics.FixedBinSize(s, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := radiomics.GLCM(radiomics.Averaged, d); err == nil {
		t.Error("a 5001-level GLCM was attempted")
	}
}

func TestHistogramModeTieGoesToTheBinNearestTheMean(t *testing.T) {
	// Levels 1,1,4,4,3: bins 1 and 4 tie; the mean is 2.6, nearer to 4.
	d := radiomics.Discrete{W: 5, H: 1, Grey: []int{1, 1, 4, 4, 3}, Levels: 4}
	f, err := radiomics.Histogram(d)
	if err != nil || f["Intensity histogram mode"] != 4 {
		t.Errorf("mode %v (%v), want 4", f["Intensity histogram mode"], err)
	}
}

func TestHugeRangesAndBadLevelsAreRefused(t *testing.T) {
	wide := radiomics.Slice{W: 2, H: 1, Values: []float64{-1e308, 1e308}, Mask: []bool{true, true}}
	if d, err := radiomics.FixedBinNumber(wide, 8); err != nil || d.Grey[0] != 1 || d.Grey[1] != 8 {
		t.Errorf("FBN over the whole float range: %v %v", d.Grey, err)
	}
	if _, err := radiomics.FixedBinSize(wide, 1e-300, -1e308); err == nil {
		t.Error("FBS with 1e608 bins accepted")
	}
	bad := radiomics.Discrete{W: 2, H: 1, Grey: []int{9, 1}, Levels: 2}
	for name, err := range map[string]error{
		"histogram": second(radiomics.Histogram(bad)),
		"GLCM":      second(radiomics.GLCM(radiomics.Averaged, bad)),
		"GLRLM":     second(radiomics.GLRLM(radiomics.Averaged, bad)),
		"GLSZM":     second(radiomics.GLSZM(bad)),
	} {
		if err == nil {
			t.Errorf("%s accepted grey level 9 of 2", name)
		}
	}
}

func TestTextureIsReproducible(t *testing.T) {
	s := shape(40, 40, func(x, y int) bool { return (x*7+y*3)%5 != 0 })
	for i := range s.Values {
		s.Values[i] = float64((i * 37) % 11)
	}
	d, err := radiomics.FixedBinNumber(s, 8)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := radiomics.GLRLM(radiomics.SliceMerged, d)
	for range 20 {
		again, _ := radiomics.GLRLM(radiomics.SliceMerged, d)
		for k, v := range first {
			if again[k] != v {
				t.Fatalf("%s: %v then %v", k, v, again[k])
			}
		}
	}
}

func second(_ radiomics.Features, err error) error { return err }
