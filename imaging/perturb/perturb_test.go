package perturb

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/imaging"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		list string
		want []Perturbation
		err  string
	}{
		{name: "each transform", list: "rotate=15,shiftx=0.1,shifty=-0.1,zoom=0.85,noise=0.1,halfres,mono1", want: []Perturbation{
			{Name: "rotate=15", Rotate: 15, Zoom: 1}, {Name: "shiftx=0.1", ShiftX: 0.1, Zoom: 1}, {Name: "shifty=-0.1", ShiftY: -0.1, Zoom: 1},
			{Name: "zoom=0.85", Zoom: 0.85}, {Name: "noise=0.1", Noise: 0.1, Zoom: 1}, {Name: "halfres", HalfRes: true, Zoom: 1},
			{Name: "mono1", Mono1: true, Zoom: 1},
		}},
		{name: "shift sets both", list: "shift=0.1", want: []Perturbation{{Name: "shift=0.1", ShiftX: 0.1, ShiftY: 0.1, Zoom: 1}}},
		{name: "a combination", list: "rotate=-10+zoom=1.15+noise=0.05+mono1", want: []Perturbation{
			{Name: "rotate=-10+zoom=1.15+noise=0.05+mono1", Rotate: -10, Zoom: 1.15, Noise: 0.05, Mono1: true}}},
		{name: "spaces and case", list: " Rotate = 5 , HALFRES ", want: []Perturbation{
			{Name: "Rotate = 5", Rotate: 5, Zoom: 1}, {Name: "HALFRES", HalfRes: true, Zoom: 1}}},
		{name: "rotation too large", list: "rotate=200", err: "outside -180-180"},
		{name: "shift too large", list: "shiftx=0.7", err: "outside -0.5-0.5"},
		{name: "zoom too small", list: "zoom=0.2", err: "outside 0.5-2"},
		{name: "zoom zero", list: "zoom=0", err: "outside 0.5-2"},
		{name: "negative noise", list: "noise=-0.1", err: "outside 0-0.5"},
		{name: "not a number", list: "rotate=NaN", err: "not a number"},
		{name: "no value", list: "rotate", err: "needs a value"},
		{name: "a value where none is taken", list: "halfres=2", err: "takes no value"},
		{name: "unknown", list: "blur=2", err: `unknown transform "blur"`},
		{name: "empty item", list: "rotate=5,,noise=0.1", err: "empty perturbation"},
		{name: "twice in one", list: "shift=0.1+shiftx=0.2", err: "shiftx given twice"},
		{name: "twice in the list", list: "halfres,halfres", err: "halfres given twice"},
		{name: "empty transform", list: "rotate=5+", err: "empty transform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.list)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse(%q) = %v, want error with %q", tt.list, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.list, d)
			}
		})
	}
	long := strings.Repeat("rotate=1,", MaxList) + "rotate=2"
	if _, err := Parse(long); err == nil {
		t.Error("a list over MaxList: no error")
	}
}

// ramp is an image whose pixels are all different.
func ramp(rows, cols int) Gray {
	g := Gray{Pix: make([]float32, rows*cols), Rows: rows, Cols: cols}
	for i := range g.Pix {
		g.Pix[i] = float32(i+1) / float32(len(g.Pix)+1)
	}
	return g
}

// marker is a black image with one white pixel.
func marker(rows, cols, x, y int) Gray {
	g := Gray{Pix: make([]float32, rows*cols), Rows: rows, Cols: cols}
	g.Pix[y*cols+x] = 1
	return g
}

// brightest is the position of the largest pixel.
func brightest(g Gray) (x, y int) {
	best := 0
	for i, v := range g.Pix {
		if v > g.Pix[best] {
			best = i
		}
	}
	return best % g.Cols, best / g.Cols
}

// Rotating a square image by 90 degrees counter-clockwise is a transpose
// then a vertical flip: out[i][j] = in[j][n-1-i]; four of them are the
// identity, and no transform is the identity.
func TestRotate90IsTransposeFlip(t *testing.T) {
	const n = 17
	in := ramp(n, n)
	out := in.Affine(90, 1, 0, 0)
	for i := range n {
		for j := range n {
			if got, want := out.Pix[i*n+j], in.Pix[j*n+n-1-i]; math.Abs(float64(got-want)) > 1e-6 {
				t.Fatalf("out[%d][%d] = %v, want in[%d][%d] = %v", i, j, got, j, n-1-i, want)
			}
		}
	}
	back := out.Affine(90, 1, 0, 0).Affine(90, 1, 0, 0).Affine(90, 1, 0, 0)
	if d := cmp.Diff(in.Pix, back.Pix, cmp.Comparer(func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-6 })); d != "" {
		t.Errorf("four quarter turns are not the identity:\n%s", d)
	}
	if d := cmp.Diff(in.Pix, in.Affine(0, 1, 0, 0).Pix); d != "" {
		t.Errorf("no rotation changed the image:\n%s", d)
	}
	// A marker right of the centre goes up (counter-clockwise as shown).
	x, y := brightest(marker(n, n, 12, 8).Affine(90, 1, 0, 0))
	if x != 8 || y != 4 {
		t.Errorf("marker at (12, 8) rotated to (%d, %d), want (8, 4)", x, y)
	}
}

// A shift moves a marker by the fraction of the field; what comes into
// view is black.
func TestShiftMovesMarker(t *testing.T) {
	in := marker(40, 50, 10, 20)
	out := in.Affine(0, 1, 0.1, -0.25)
	if x, y := brightest(out); x != 15 || y != 10 || out.Pix[10*50+15] != 1 {
		t.Errorf("marker at (10, 20) shifted to (%d, %d) value %v, want (15, 10) value 1", x, y, out.Pix[10*50+15])
	}
	full := Gray{Pix: make([]float32, 40*50), Rows: 40, Cols: 50}
	for i := range full.Pix {
		full.Pix[i] = 0.5
	}
	s := full.Affine(0, 1, 0.1, 0)
	if s.Pix[3] != 0 || s.Pix[49] != 0.5 {
		t.Errorf("uncovered pixel %v, covered %v", s.Pix[3], s.Pix[49])
	}
}

// Zoom keeps the centre where it is and moves other points away from it
// by the factor.
func TestZoomKeepsCentre(t *testing.T) {
	const n = 41 // centre pixel 20
	for _, zoom := range []float64{0.5, 0.85, 1.15, 2} {
		if x, y := brightest(marker(n, n, 20, 20).Affine(0, zoom, 0, 0)); x != 20 || y != 20 {
			t.Errorf("zoom %v moved the centre to (%d, %d)", zoom, x, y)
		}
	}
	if x, y := brightest(marker(n, n, 30, 15).Affine(0, 2, 0, 0)); x != 40 || y != 10 {
		t.Errorf("zoom 2 moved (30, 15) to (%d, %d), want (40, 10)", x, y)
	}
}

// The noise's measured sigma is the one asked for; the same seed gives the
// same noise, another seed other noise.
func TestNoiseSigma(t *testing.T) {
	mid := func() Gray {
		g := Gray{Pix: make([]float32, 256*256), Rows: 256, Cols: 256}
		for i := range g.Pix {
			g.Pix[i] = 0.5
		}
		return g
	}
	for _, sigma := range []float64{0.02, 0.1} {
		g := mid()
		g.AddNoise(sigma, rand.New(rand.NewPCG(7, 1)))
		var s, ss float64
		for _, v := range g.Pix {
			s += float64(v) - 0.5
			ss += (float64(v) - 0.5) * (float64(v) - 0.5)
		}
		n := float64(len(g.Pix))
		mean, sd := s/n, math.Sqrt(ss/n-(s/n)*(s/n))
		if math.Abs(mean) > 0.002 || math.Abs(sd-sigma)/sigma > 0.02 {
			t.Errorf("sigma %v: measured mean %v, sd %v", sigma, mean, sd)
		}
	}
	img := func() *imaging.Image {
		g := mid()
		return &imaging.Image{Pixels: g.Pix, Meta: imaging.Metadata{Rows: g.Rows, Columns: g.Cols}}
	}
	p := Perturbation{Name: "noise=0.1", Noise: 0.1, Zoom: 1}
	a, _ := p.Image(img(), 3)
	b, _ := p.Image(img(), 3)
	c, _ := p.Image(img(), 4)
	if !slicesEqual(a.Pixels, b.Pixels) || slicesEqual(a.Pixels, c.Pixels) {
		t.Error("noise is not determined by its seed")
	}
	// Extreme noise stays in the display range.
	g := mid()
	g.AddNoise(MaxNoise, rand.New(rand.NewPCG(1, 1)))
	for _, v := range g.Pix {
		if v < 0 || v > 1 {
			t.Fatalf("pixel %v outside [0,1]", v)
		}
	}
}

func slicesEqual(a, b []float32) bool {
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

// Half resolution averages 2x2 blocks, drops an odd last row, and the
// image's metadata follows.
func TestHalfRes(t *testing.T) {
	g := Gray{Rows: 3, Cols: 4, Pix: []float32{
		0, 0.2, 0.4, 0.4,
		0.4, 0.2, 0.8, 0,
		1, 1, 1, 1,
	}}
	h := g.HalfRes()
	if h.Rows != 1 || h.Cols != 2 || math.Abs(float64(h.Pix[0]-0.2)) > 1e-6 || math.Abs(float64(h.Pix[1]-0.4)) > 1e-6 {
		t.Errorf("half resolution %+v", h)
	}
	in := ramp(64, 80)
	img := &imaging.Image{Pixels: in.Pix, Meta: imaging.Metadata{Rows: 64, Columns: 80, PixelSpacing: [2]float64{0.2, 0.25}, SOPInstanceUID: "2.25.9"}}
	out, err := Perturbation{Name: "halfres", HalfRes: true, Zoom: 1}.Image(img, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m := out.Meta; m.Rows != 32 || m.Columns != 40 || len(out.Pixels) != 32*40 || m.PixelSpacing != [2]float64{0.4, 0.5} || m.SOPInstanceUID != "2.25.9" {
		t.Errorf("metadata %+v with %d pixels", m, len(out.Pixels))
	}
	if _, err := (Perturbation{Name: "halfres", HalfRes: true}).Image(&imaging.Image{Pixels: make([]float32, 20*20), Meta: imaging.Metadata{Rows: 20, Columns: 20}}, 1); err == nil {
		t.Error("halving a 20x20 image: no error")
	}
}

// Image leaves its input alone; with nothing to do it copies the pixels.
func TestImageDoesNotChangeInput(t *testing.T) {
	in := ramp(32, 32)
	orig := append([]float32(nil), in.Pix...)
	img := &imaging.Image{Pixels: in.Pix, Meta: imaging.Metadata{Rows: 32, Columns: 32}}
	for _, spec := range []string{"rotate=15+shift=0.1+zoom=1.15+noise=0.1", "mono1"} {
		p, err := ParseOne(spec)
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Image(img, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slicesEqual(in.Pix, orig) {
			t.Fatalf("%s changed its input", spec)
		}
		if spec == "mono1" && !slicesEqual(out.Pixels, orig) {
			t.Errorf("mono1 changed the decoded pixels")
		}
	}
	if _, err := (Perturbation{Name: "x"}).Image(&imaging.Image{Pixels: make([]float32, 5), Meta: imaging.Metadata{Rows: 2, Columns: 2}}, 1); err == nil {
		t.Error("pixels and size disagree: no error")
	}
}

// mono1 rewrites the file; its decoded pixels are the original's.
func TestMono1File(t *testing.T) {
	r := imaging.Radiograph{Rows: 16, Columns: 16, BitsStored: 12, Photometric: "MONOCHROME2", Modality: "DX", SOPClassUID: imaging.SOPClassDXPresentation,
		StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2", SOPInstanceUID: "2.25.3", WindowCenter: []float64{2000}, WindowWidth: []float64{3000}}
	for i := range 256 {
		r.Stored = append(r.Stored, i*16)
	}
	var src bytes.Buffer
	if err := imaging.WriteDICOM(&src, r); err != nil {
		t.Fatal(err)
	}
	p, _ := ParseOne("mono1")
	out, changed, err := p.File(src.Bytes(), imaging.Limits{})
	if err != nil || !changed {
		t.Fatalf("mono1: changed %v, %v", changed, err)
	}
	a, _ := imaging.Decode(src.Bytes(), imaging.Limits{})
	b, err := imaging.Decode(out, imaging.Limits{})
	if err != nil || b.Meta.Photometric != "MONOCHROME1" {
		t.Fatalf("rewritten file: %v", err)
	}
	for i := range a.Pixels {
		if math.Abs(float64(a.Pixels[i]-b.Pixels[i])) > 1e-5 {
			t.Fatalf("pixel %d: %v, was %v", i, b.Pixels[i], a.Pixels[i])
		}
	}
	same, changed, err := (Perturbation{Name: "rotate=5", Rotate: 5}).File(src.Bytes(), imaging.Limits{})
	if err != nil || changed || !bytes.Equal(same, src.Bytes()) {
		t.Error("a pixel perturbation changed the file")
	}
}
