package phantom

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Variation is how far a case's positioning and acquisition may depart from
// the default phantom, as they do between radiology departments. Each field
// is the largest departure drawn; a zero field keeps the default draw, so
// the zero Variation gives the default cases unchanged, byte for byte. The
// variation is drawn from a generator of its own, seeded by (seed, index):
// a varied case shows the same patient, hips and detector as the default
// case of that index, and a case is a pure function of (seed, index,
// variation).
type Variation struct {
	// Rotate is the largest in-plane rotation of the patient, degrees,
	// drawn uniformly either way (default: up to 3.4).
	Rotate float64
	// Shift is the largest offset of the patient's centre (mid-pelvis, or
	// the middle of the trunk for the spine) from the image centre, as a
	// fraction of the field's width and, independently, its height
	// (default: up to 12 and 10 mm, about 3%).
	Shift float64
	// Zoom is the largest change of magnification: 0.2 draws 0.8-1.2
	// (default 1).
	Zoom float64
	// Exposure is the largest change of dose, stops (factors of two), drawn
	// uniformly in stops either way (default 0). More dose burns out soft
	// tissue; less compresses the contrast towards white.
	Exposure float64
	// Noise is the largest quantum noise, its standard deviation as a
	// fraction of the detector's full scale (at signal 0.7), drawn
	// log-uniformly from 0.006 (default: 0.006-0.022 uniformly).
	Noise float64
	// Collimation is the largest collimated margin at each image edge, a
	// fraction of the field; each edge is collimated with probability 0.6,
	// small margins commoner than large (default: up to 0.07).
	Collimation float64
	// Markers is the share of cases with lead side markers (R on the
	// patient's right, L on the left) in the field (default none).
	Markers float64
	// Text is the share of cases with text burnt into the pixels: the view
	// and the technique, as modalities print them (default none).
	Text float64
}

// ClinicalVariation is the variation of an ordinary radiology department
// (the preset "clinical"),
// the ranges of issue 15: rotation up to 15 degrees, the patient off centre
// by up to 15% of the field, magnification 0.8-1.2, dose 0.5-2 times,
// quantum noise up to 8% of full scale, collimation up to a quarter of the
// field at an edge (enough to cut part of a hip with the patient off
// centre or magnified), lead markers on 80% and burnt-in text on 60% of
// the images.
func ClinicalVariation() Variation {
	return Variation{Rotate: 15, Shift: 0.15, Zoom: 0.2, Exposure: 1, Noise: 0.08, Collimation: 0.25, Markers: 0.8, Text: 0.6}
}

// VariationPresets are the named variations ParseVariation accepts: none
// (the zero Variation) and clinical.
func VariationPresets() map[string]Variation {
	return map[string]Variation{"none": {}, "clinical": ClinicalVariation()}
}

// variationField is one field of Variation: its name in ParseVariation,
// its bounds and unit.
type variationField struct {
	name     string
	get      func(*Variation) *float64
	min, max float64 // allowed range of a non-zero value
	unit     string
}

var variationFields = []variationField{
	{"rotate", func(v *Variation) *float64 { return &v.Rotate }, 0, 45, "degrees"},
	{"shift", func(v *Variation) *float64 { return &v.Shift }, 0, 0.3, "of the field"},
	{"zoom", func(v *Variation) *float64 { return &v.Zoom }, 0, 0.5, ""},
	{"exposure", func(v *Variation) *float64 { return &v.Exposure }, 0, 3, "stops"},
	{"noise", func(v *Variation) *float64 { return &v.Noise }, minNoise, 0.25, "of full scale"},
	{"collimation", func(v *Variation) *float64 { return &v.Collimation }, minCollimation, 0.4, "of the field"},
	{"markers", func(v *Variation) *float64 { return &v.Markers }, 0, 1, "share of cases"},
	{"text", func(v *Variation) *float64 { return &v.Text }, 0, 1, "share of cases"},
}

// The smallest non-zero Noise and Collimation: the low ends of their draws.
const (
	minNoise       = 0.006
	minCollimation = 0.01
)

// Validate reports each field outside its range: rotate 0-45 degrees, shift
// 0-0.3, zoom 0-0.5, exposure 0-3 stops, noise 0 or 0.006-0.25, collimation
// 0 or 0.01-0.4, markers and text 0-1.
func (v Variation) Validate() error {
	var bad []string
	for _, f := range variationFields {
		x := *f.get(&v)
		if x == 0 {
			continue
		}
		if math.IsNaN(x) || x < f.min || x > f.max {
			bad = append(bad, fmt.Sprintf("%s %v outside %v-%v%s", f.name, x, f.min, f.max, unitSuffix(f.unit)))
		}
	}
	if len(bad) > 0 {
		return errors.New("variation: " + strings.Join(bad, "; "))
	}
	return nil
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

// ParseVariation reads a variation: a preset name (none, clinical), a list
// of field=value pairs (rotate=15,shift=0.1), or a preset followed by pairs
// that override it (clinical,noise=0.1).
func ParseVariation(s string) (Variation, error) {
	var v Variation
	presets := VariationPresets()
	for k, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, value, pair := strings.Cut(part, "=")
		if !pair {
			p, ok := presets[part]
			switch {
			case !ok:
				return Variation{}, fmt.Errorf("variation %q: %q is neither a preset (%s) nor a field=value pair", s, part, strings.Join(slices.Sorted(maps.Keys(presets)), ", "))
			case k > 0:
				return Variation{}, fmt.Errorf("variation %q: the preset %q must come first", s, part)
			}
			v = p
			continue
		}
		i := slices.IndexFunc(variationFields, func(f variationField) bool { return f.name == strings.TrimSpace(name) })
		if i < 0 {
			var names []string
			for _, f := range variationFields {
				names = append(names, f.name)
			}
			return Variation{}, fmt.Errorf("variation %q: unknown field %q (%s)", s, name, strings.Join(names, ", "))
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return Variation{}, fmt.Errorf("variation %q: %s %q is not a number", s, name, value)
		}
		*variationFields[i].get(&v) = x
	}
	return v, v.Validate()
}

// String writes v as ParseVariation reads it: its preset's name, or its
// non-zero fields.
func (v Variation) String() string {
	for name, p := range VariationPresets() {
		if p == v {
			return name
		}
	}
	var parts []string
	for _, f := range variationFields {
		if x := *f.get(&v); x != 0 {
			parts = append(parts, f.name+"="+strconv.FormatFloat(x, 'g', -1, 64))
		}
	}
	return strings.Join(parts, ",")
}

// Acquisition is how one case was positioned and exposed: the truth of its
// variation, recorded in labels.csv.
type Acquisition struct {
	// Rotation is how far the patient appears turned on the displayed
	// image, degrees, clockwise positive: the angle of the line from the
	// image's left to its right hip.
	Rotation float64
	// ShiftX and ShiftY are the patient centre's offset from the image
	// centre, as fractions of the image's width and height, positive to the
	// right and down.
	ShiftX, ShiftY float64
	// Zoom is the magnification relative to the default phantom.
	Zoom float64
	// Exposure is the dose relative to the default, stops.
	Exposure float64
	// Noise is the quantum noise, standard deviation as a fraction of full
	// scale at signal 0.7.
	Noise float64
	// Collimation is the collimated margin at the image's left, right, top
	// and bottom edges, fractions of the width or height; nothing of the
	// patient shows there.
	Collimation [4]float64
	// Markers are the lead side markers in the image: "R", "L", "R L" or "".
	Markers string
	// Text is the text burnt into the pixels, its lines separated by "; ",
	// or "".
	Text string

	// marks are where markers and text were drawn, pixels.
	marks []mark
}

// open is the share of the pixel box b (x, y, w, h) inside the image and
// its collimated field.
func (a Acquisition) open(b [4]float64, rows, cols int) float64 {
	const n = 24
	c := a.Collimation
	x0, x1 := c[0]*float64(cols), (1-c[1])*float64(cols)
	y0, y1 := c[2]*float64(rows), (1-c[3])*float64(rows)
	in := 0
	for i := range n {
		y := b[1] + b[3]*(float64(i)+0.5)/n
		for j := range n {
			x := b[0] + b[2]*(float64(j)+0.5)/n
			if x >= x0 && x < x1 && y >= y0 && y < y1 {
				in++
			}
		}
	}
	return float64(in) / (n * n)
}

// variationDraws are a case's draws of its variation, made in a fixed order
// whatever the variation, so that changing one field leaves the others'
// draws as they were.
type variationDraws struct {
	rotate, zoom, shiftX, shiftY        float64
	exposure, noise                     float64
	collimated, margin                  [4]float64
	markers, markerSides, text, twoText float64
	place                               markerPlacement
}

func drawVariation(seed uint64, kind string, i int) variationDraws {
	rng := caseRNG(seed, kind+"-variation", i)
	var d variationDraws
	p := &d.place
	draws := []*float64{&d.rotate, &d.zoom, &d.shiftX, &d.shiftY, &d.exposure, &d.noise}
	for k := range 4 {
		draws = append(draws, &d.collimated[k], &d.margin[k])
	}
	draws = append(draws, &d.markers, &d.markerSides, &d.text, &d.twoText)
	for k := range p.side {
		for n := range p.side[k] {
			draws = append(draws, &p.side[k][n])
		}
	}
	draws = append(draws, &p.view, &p.kv, &p.ma, &p.corners[0], &p.corners[1])
	for _, x := range draws {
		*x = rng.Float64()
	}
	return d
}

// pose applies v to the default pose (theta, shift) of a rows x cols image
// of spacing mm.
func (v Variation) pose(d variationDraws, theta float64, shift vec, rows, cols int, spacing float64) pose {
	p := pose{theta: theta, shift: shift, zoom: 1}
	if v.Rotate > 0 {
		p.theta = (2*d.rotate - 1) * v.Rotate * math.Pi / 180
	}
	if v.Zoom > 0 {
		p.zoom = 1 + (2*d.zoom-1)*v.Zoom
	}
	if v.Shift > 0 {
		// The shift that puts the phantom's origin at the drawn fraction of
		// the field from the image centre.
		off := vec{(2*d.shiftX - 1) * v.Shift * float64(cols), (2*d.shiftY - 1) * v.Shift * float64(rows)}
		p.shift = off.mul(-spacing / p.zoom).rot(p.theta)
	}
	return p
}

// expose applies v's exposure, noise and collimation to the detector.
func (v Variation) expose(d variationDraws, det *detector) {
	if v.Exposure > 0 {
		det.dose = math.Exp2((2*d.exposure - 1) * v.Exposure)
	}
	if v.Noise > 0 {
		det.noise = minNoise * math.Pow(v.Noise/minNoise, d.noise)
	}
	if v.Collimation > 0 {
		for k := range det.collimation {
			det.collimation[k] = 0
			if d.collimated[k] < 0.6 {
				det.collimation[k] = minCollimation + (v.Collimation-minCollimation)*sq(d.margin[k])
			}
		}
	}
}

// acquisition records a case's pose and detector.
func acquisition(c *canvas, det detector) Acquisition {
	o := c.toPixel(vec{})
	return Acquisition{
		Rotation:    -c.theta * 180 / math.Pi,
		ShiftX:      (o.x - float64(c.cols)/2) / float64(c.cols),
		ShiftY:      (o.y - float64(c.rows)/2) / float64(c.rows),
		Zoom:        c.zoom,
		Exposure:    math.Log2(det.dose),
		Noise:       det.noise,
		Collimation: det.collimation,
	}
}
