// Package perturb applies the ordinary variations of a radiology
// department to decoded radiographs, so that a site can stress-test a
// model before go-live (`orthotriage eval --perturb`): rotation about the
// image centre, a shift of the patient in the field, magnification,
// quantum noise, half the resolution, and the same image written as
// MONOCHROME1. Every transform is pure Go, deterministic given its seed,
// and bounded: absurd values are refused when parsed.
package perturb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/orthotriage/orthotriage/imaging"
)

// Bounds of the values a perturbation may take.
const (
	MaxRotate = 180 // degrees either way
	MaxShift  = 0.5 // fraction of the field either way
	MinZoom   = 0.5 // magnification, at least
	MaxZoom   = 2.0 // magnification, at most
	MaxNoise  = 0.5 // sigma, fraction of the display range
	MaxList   = 32  // perturbations in one list
)

const (
	minSide = 16   // pixels of an image's side; half resolution needs twice this
	nearInt = 1e-9 // sampling positions this close to a pixel centre are that centre
)

// Perturbation is one stress test: the transforms it names, applied
// together in a fixed order: the DICOM rewrite (Mono1), then one resampling
// for the geometry (zoom and rotation about the image centre, then the
// shift), then HalfRes, then Noise.
type Perturbation struct {
	// Name is the perturbation as given, e.g. "rotate=15+noise=0.1".
	Name string
	// Rotate is in degrees, counter-clockwise as displayed.
	Rotate float64
	// ShiftX and ShiftY move the image content right and down by these
	// fractions of the image's width and height.
	ShiftX, ShiftY float64
	// Zoom magnifies about the image centre (1: none; 0 is read as 1).
	Zoom float64
	// Noise adds Gaussian noise of this sigma (a fraction of the display
	// range [0,1]), then clamps to the range.
	Noise float64
	// HalfRes averages 2x2 pixel blocks: the image has half the rows and
	// columns, and the pipeline resamples it as it does any other.
	HalfRes bool
	// Mono1 rewrites a MONOCHROME2 file as the MONOCHROME1 file that
	// displays the same (imaging.AsMonochrome1), before decoding.
	Mono1 bool
}

// Parse reads a comma-separated list of perturbations, each one transform
// or several joined by '+': rotate=DEG, shiftx=F, shifty=F, shift=F (both),
// zoom=F, noise=SIGMA, halfres, mono1. Values outside the bounds, unknown
// names, and a transform named twice in one perturbation are refused.
func Parse(list string) ([]Perturbation, error) {
	var out []Perturbation
	seen := map[string]bool{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("perturb %q: empty perturbation", list)
		}
		p, err := ParseOne(item)
		if err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("perturb %q: %s given twice", list, p.Name)
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	if len(out) > MaxList {
		return nil, fmt.Errorf("perturb: %d perturbations, at most %d", len(out), MaxList)
	}
	return out, nil
}

// ParseOne reads one perturbation: transforms joined by '+'.
func ParseOne(spec string) (Perturbation, error) {
	p := Perturbation{Name: spec, Zoom: 1}
	set := map[string]bool{}
	for _, part := range strings.Split(spec, "+") {
		name, value, hasValue := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		for _, n := range covers(name) {
			if set[n] {
				return p, fmt.Errorf("perturb %q: %s given twice", spec, n)
			}
			set[n] = true
		}
		if name == "halfres" || name == "mono1" {
			if hasValue {
				return p, fmt.Errorf("perturb %q: %s takes no value", spec, name)
			}
			p.HalfRes, p.Mono1 = p.HalfRes || name == "halfres", p.Mono1 || name == "mono1"
			continue
		}
		if !hasValue {
			if name == "" {
				return p, fmt.Errorf("perturb %q: empty transform", spec)
			}
			return p, fmt.Errorf("perturb %q: %s needs a value (%s)", spec, name, usage)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return p, fmt.Errorf("perturb %q: %s value %q is not a number", spec, name, value)
		}
		if err := p.set(name, v); err != nil {
			return p, fmt.Errorf("perturb %q: %w", spec, err)
		}
	}
	return p, nil
}

const usage = "rotate=DEG, shiftx=F, shifty=F, shift=F, zoom=F, noise=SIGMA, halfres, mono1"

// covers are the transforms a name sets.
func covers(name string) []string {
	if name == "shift" {
		return []string{"shiftx", "shifty"}
	}
	return []string{name}
}

// set sets the named transform to v, within its bounds.
func (p *Perturbation) set(name string, v float64) error {
	switch name {
	case "rotate":
		if math.Abs(v) > MaxRotate {
			return fmt.Errorf("rotate=%g outside -%d-%d degrees", v, MaxRotate, MaxRotate)
		}
		p.Rotate = v
	case "shiftx", "shifty", "shift":
		if math.Abs(v) > MaxShift {
			return fmt.Errorf("%s=%g outside -%g-%g of the field", name, v, MaxShift, MaxShift)
		}
		if name != "shifty" {
			p.ShiftX = v
		}
		if name != "shiftx" {
			p.ShiftY = v
		}
	case "zoom":
		if v < MinZoom || v > MaxZoom {
			return fmt.Errorf("zoom=%g outside %g-%g", v, MinZoom, MaxZoom)
		}
		p.Zoom = v
	case "noise":
		if v < 0 || v > MaxNoise {
			return fmt.Errorf("noise=%g outside 0-%g of the display range", v, MaxNoise)
		}
		p.Noise = v
	default:
		return fmt.Errorf("unknown transform %q (%s)", name, usage)
	}
	return nil
}

// Geometric says whether p resamples the image's geometry.
func (p Perturbation) Geometric() bool {
	return p.Rotate != 0 || p.ShiftX != 0 || p.ShiftY != 0 || (p.Zoom != 0 && p.Zoom != 1)
}

// File applies the file-level transform (Mono1) to a DICOM instance; it
// says whether the file changed (one already MONOCHROME1 does not).
func (p Perturbation) File(data []byte, lim imaging.Limits) ([]byte, bool, error) {
	if !p.Mono1 {
		return data, false, nil
	}
	return imaging.AsMonochrome1(data, lim)
}

// Image applies the pixel transforms to a decoded radiograph and returns a
// new image: its display pixels and metadata (rows, columns and pixel
// spacing follow HalfRes); the stored values are not carried over, as they
// no longer describe the pixels. seed drives the noise: the same seed
// gives the same noise.
func (p Perturbation) Image(img *imaging.Image, seed uint64) (*imaging.Image, error) {
	g := Gray{Pix: img.Pixels, Rows: img.Meta.Rows, Cols: img.Meta.Columns}
	if len(g.Pix) != g.Rows*g.Cols || g.Rows < minSide || g.Cols < minSide {
		return nil, fmt.Errorf("perturb %s: a %dx%d image of %d pixels (at least %d on a side)", p.Name, g.Cols, g.Rows, len(g.Pix), minSide)
	}
	if p.Geometric() {
		zoom := p.Zoom
		if zoom == 0 {
			zoom = 1
		}
		g = g.Affine(p.Rotate, zoom, p.ShiftX, p.ShiftY)
	} else {
		g.Pix = slices.Clone(g.Pix)
	}
	meta := img.Meta
	if p.HalfRes {
		if g.Rows < 2*minSide || g.Cols < 2*minSide {
			return nil, fmt.Errorf("perturb %s: a %dx%d image is too small to halve", p.Name, g.Cols, g.Rows)
		}
		g = g.HalfRes()
		meta.PixelSpacing = [2]float64{2 * meta.PixelSpacing[0], 2 * meta.PixelSpacing[1]}
	}
	if p.Noise > 0 {
		g.AddNoise(p.Noise, rand.New(rand.NewPCG(seed, 0x6e6f697365)))
	}
	meta.Rows, meta.Columns = g.Rows, g.Cols
	return &imaging.Image{Pixels: g.Pix, Meta: meta, Stats: img.Stats}, nil
}

// Gray is a display-ready grayscale image: row-major values in [0,1].
type Gray struct {
	Pix        []float32
	Rows, Cols int
}

// At is the pixel at column x, row y, 0 (black, as air) outside the image.
func (g Gray) At(x, y int) float32 {
	if x < 0 || y < 0 || x >= g.Cols || y >= g.Rows {
		return 0
	}
	return g.Pix[y*g.Cols+x]
}

// Affine resamples g (bilinear) with the content zoomed by zoom and
// rotated by deg degrees counter-clockwise (as displayed) about the image
// centre, then moved right by shiftX of the width and down by shiftY of
// the height. What comes into view from outside the image is black (air),
// as the preprocessing treats crops overhanging the image.
func (g Gray) Affine(deg, zoom, shiftX, shiftY float64) Gray {
	out := Gray{Pix: make([]float32, len(g.Pix)), Rows: g.Rows, Cols: g.Cols}
	cx, cy := float64(g.Cols-1)/2, float64(g.Rows-1)/2
	tx, ty := shiftX*float64(g.Cols), shiftY*float64(g.Rows)
	sin, cos := math.Sincos(deg * math.Pi / 180)
	for y := range g.Rows {
		for x := range g.Cols {
			// Undo the shift, the zoom, then the rotation: content at
			// offset (u, v) from the centre was displayed rotated to
			// (u cos + v sin, -u sin + v cos).
			dx, dy := (float64(x)-cx-tx)/zoom, (float64(y)-cy-ty)/zoom
			sx, sy := cx+dx*cos-dy*sin, cy+dx*sin+dy*cos
			out.Pix[y*g.Cols+x] = g.bilinear(sx, sy)
		}
	}
	return out
}

// bilinear samples g at a fractional position.
func (g Gray) bilinear(x, y float64) float32 {
	if r := math.Round(x); math.Abs(x-r) < nearInt {
		x = r
	}
	if r := math.Round(y); math.Abs(y-r) < nearInt {
		y = r
	}
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := float32(x-x0), float32(y-y0)
	ix, iy := int(x0), int(y0)
	if ix < -1 || iy < -1 || ix >= g.Cols || iy >= g.Rows {
		return 0
	}
	top := g.At(ix, iy)*(1-fx) + g.At(ix+1, iy)*fx
	if fy == 0 {
		return top
	}
	bottom := g.At(ix, iy+1)*(1-fx) + g.At(ix+1, iy+1)*fx
	return top*(1-fy) + bottom*fy
}

// HalfRes averages 2x2 blocks: half the rows and columns (an odd last row
// or column is dropped).
func (g Gray) HalfRes() Gray {
	out := Gray{Rows: g.Rows / 2, Cols: g.Cols / 2}
	out.Pix = make([]float32, out.Rows*out.Cols)
	for y := range out.Rows {
		for x := range out.Cols {
			i := 2*y*g.Cols + 2*x
			out.Pix[y*out.Cols+x] = (g.Pix[i] + g.Pix[i+1] + g.Pix[i+g.Cols] + g.Pix[i+g.Cols+1]) / 4
		}
	}
	return out
}

// AddNoise adds Gaussian noise of standard deviation sigma drawn from rng
// to every pixel, clamping to [0,1].
func (g Gray) AddNoise(sigma float64, rng *rand.Rand) {
	for i, v := range g.Pix {
		g.Pix[i] = float32(math.Max(0, math.Min(1, float64(v)+sigma*rng.NormFloat64())))
	}
}
