package phantom

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/orthotriage/orthotriage/imaging"
)

// spineLevels are drawn from top to bottom; those wholly inside the field
// are labelled.
var spineLevels = []string{"T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"}

// SpineSubtleShare is the share of vertebral fractures drawn subtle: a wedge
// whose acuity cues are faint; SpineIndeterminateShare of all fractures
// (drawn among the subtle ones) show no acuity cue at all, so that the
// image alone cannot date them (as on real radiographs, where MRI decides).
const (
	SpineSubtleShare        = 0.4
	SpineIndeterminateShare = 0.2
)

// fractureLevelWeight makes the thoracolumbar junction the commonest site.
var fractureLevelWeight = []float64{0, 0.5, 1, 2.2, 2.2, 1.2, 0.8, 0.5, 0}

// Vertebra is one labelled vertebral body.
type Vertebra struct {
	Level      string
	Box        [4]int  // x, y, w, h in pixels of the image
	Fracture   string  // none, acute or chronic
	Difficulty string  // typical, subtle or indeterminate (fractures only)
	Detail     string  // e.g. "wedge-0.34"
	Open       float64 // share of Box inside the collimated field
}

// Clinical is the clinical baseline of a spine case. Acute fractures come
// with shorter symptom duration and more often a recent minor trauma, but
// the distributions overlap, so neither the image nor the clinical data
// alone decides acuity. Acute: symptom days log-normal around 12 (sigma
// 0.9), minor trauma 55%; chronic: around 75 days, trauma 20%; age 74 +- 8
// (chronic 3 years older), 78% women, T-score -2.7 +- 0.7 (0.3 lower with a
// fracture); see phantom/README.md.
type Clinical struct {
	Age         int
	Sex         string // F or M
	SymptomDays int
	Trauma      bool
	TScore      float64
}

// SpineCase is one lateral thoracolumbar radiograph and its truth.
type SpineCase struct {
	ID        string
	Vertebrae []Vertebra
	Clinical  Clinical
	// Acquisition is how the patient was positioned and exposed.
	Acquisition Acquisition
	Image       imaging.Radiograph
}

// SpineHeader is the header of the spine labels.csv: the vertebra, its
// truth and the clinical baseline, the share of its box in the collimated
// field, then the case's acquisition (AcquisitionHeader).
var SpineHeader = append([]string{"file", "level", "x", "y", "w", "h", "fracture", "difficulty", "detail", "age", "sex", "symptom_days", "trauma", "tscore", "open"},
	AcquisitionHeader...)

// Rows are the case's labels.csv rows, one per labelled vertebra.
func (c SpineCase) Rows(file string) [][]string {
	var rows [][]string
	cl := c.Clinical
	acq := c.Acquisition.row()
	for _, v := range c.Vertebrae {
		row := []string{file, v.Level,
			strconv.Itoa(v.Box[0]), strconv.Itoa(v.Box[1]), strconv.Itoa(v.Box[2]), strconv.Itoa(v.Box[3]),
			v.Fracture, v.Difficulty, v.Detail,
			strconv.Itoa(cl.Age), cl.Sex, strconv.Itoa(cl.SymptomDays), strconv.FormatBool(cl.Trauma), strconv.FormatFloat(cl.TScore, 'f', 1, 64),
			strconv.FormatFloat(v.Open, 'f', 3, 64)}
		rows = append(rows, append(row, acq...))
	}
	return rows
}

type vertebraSpec struct {
	centre         vec
	tilt           float64 // radians, from the spine's local tangent
	depth          float64 // anterior-posterior size, mm
	height         float64 // posterior height, mm
	wedge          float64 // anterior height loss, fraction
	fracture       string
	subtle         bool
	indeterminate  bool // no acuity cue at all
	osteophyte     float64
	condensation   float64
	sclerosis      float64
	step           float64
	endplateDefect float64
}

// Spine generates case i of the spine series seeded by seed, with the
// default variation.
func Spine(seed uint64, i int) SpineCase {
	sc, _ := SpineVaried(seed, i, Variation{}) // the zero Variation is valid
	return sc
}

// SpineVaried generates case i of the spine series seeded by seed with
// variation vary: the same patient as Spine(seed, i), positioned and
// exposed as vary draws. It fails only when vary is invalid.
func SpineVaried(seed uint64, i int, vary Variation) (SpineCase, error) {
	if err := vary.Validate(); err != nil {
		return SpineCase{}, err
	}
	rng := caseRNG(seed, "spine", i)
	draws := drawVariation(seed, "spine", i)
	sc := SpineCase{ID: caseID("spine", seed, i)}
	spacing := uniform(rng, 0.62, 0.8)
	width, height := uniform(rng, 190, 220), uniform(rng, 320, 350)
	cols, rows := int(width/spacing), int(height/spacing)
	theta := uniform(rng, -0.05, 0.05)
	shift := vec{uniform(rng, -8, 8), uniform(rng, -12, 12)}
	l := newLayers(rows, cols, spacing, vary.pose(draws, theta, shift, rows, cols, spacing))

	nFrac := pick(rng, []float64{0.25, 0.6, 0.15})
	acute := rng.Float64() < 0.5
	sc.Clinical = spineClinical(rng, nFrac > 0, acute)
	porosis := 1 + 0.12*(sc.Clinical.TScore+2.5) // lower density with lower T-score
	spineSoftTissue(rng, l)
	specs := spineColumn(rng, fractureLevels(rng, nFrac, acute))
	var boxes [][4]int // of the labelled vertebrae
	sc.Vertebrae, boxes = spineBones(rng, l, specs, porosis)

	det := newDetector(rng)
	det.a0 = uniform(rng, 26, 34) // the lateral trunk is thicker
	vary.expose(draws, &det)
	sc.Acquisition = acquisition(l.bone, det)
	sc.Acquisition.Markers, sc.Acquisition.marks = vary.leadMarkers(draws, "spine", l.metal, det.collimation)
	for k, b := range boxes {
		sc.Vertebrae[k].Open = sc.Acquisition.open([4]float64{float64(b[0]), float64(b[1]), float64(b[2]), float64(b[3])}, rows, cols)
	}
	sc.Image = det.expose(rng, l)
	text, marks := vary.burnedText(draws, "spine", &sc.Image)
	sc.Acquisition.Text = text
	sc.Acquisition.marks = append(sc.Acquisition.marks, marks...)
	sc.Image.StudyInstanceUID, sc.Image.SeriesInstanceUID, sc.Image.SOPInstanceUID = caseUIDs(rng, seed, "spine", i, vary)
	sc.Image.PatientID = sc.ID
	sc.Image.BodyPartExamined = "SPINE"
	sc.Image.ViewPosition = "LL"
	return sc, nil
}

// spineClinical draws the patient's clinical data: a fractured spine
// (fractured) lowers the T-score, and an acute fracture brings a shorter
// history and more trauma.
func spineClinical(rng *rand.Rand, fractured, acute bool) Clinical {
	cl := Clinical{Sex: "F"}
	if rng.Float64() > 0.78 {
		cl.Sex = "M"
	}
	age := 74 + 8*rng.NormFloat64()
	cl.TScore = -2.7 + 0.7*rng.NormFloat64()
	if fractured {
		cl.TScore -= 0.3
		median, trauma := 75.0, 0.2
		if acute {
			median, trauma = 12, 0.55
		} else {
			age += 3
		}
		cl.SymptomDays = int(math.Round(math.Max(1, math.Min(720, median*math.Exp(0.9*rng.NormFloat64())))))
		cl.Trauma = rng.Float64() < trauma
	} else {
		cl.SymptomDays = int(math.Round(math.Max(1, math.Min(720, 40*math.Exp(1.1*rng.NormFloat64())))))
		cl.Trauma = rng.Float64() < 0.15
	}
	cl.Age = int(math.Max(50, math.Min(98, math.Round(age))))
	cl.TScore = math.Round(math.Max(-5, math.Min(0.5, cl.TScore))*10) / 10
	return cl
}

// spineSoftTissue draws the trunk seen from the side: lungs above the
// diaphragm and some bowel gas in front of the lumbar spine.
func spineSoftTissue(rng *rand.Rand, l layers) {
	l.soft.add(ellipsoid(vec{-10, 0}, 150, 400, 0, 0, 0, 0.032), 1)
	dome := uniform(rng, -150, -110)
	l.soft.add(field{min: vec{-110, -260}, max: vec{40, dome + 30}, at: func(p vec) float64 {
		d := dome + 0.004*sq(p.x+40)
		return -4.5 * smoothstep(-10, 10, d-p.y) * smoothstep(40, 0, p.x)
	}}, 1)
	for range 2 + rng.IntN(4) {
		c := vec{uniform(rng, -95, -50), uniform(rng, -40, 160)}
		l.soft.add(ellipsoid(c, uniform(rng, 8, 22), uniform(rng, 6, 14), uniform(rng, 0, 3), 0, 0, -0.05), 1)
	}
}

// fractureLevels draws the nFrac fractured levels (indexes of
// spineLevels) and their kinds: the first is acute when acute is.
func fractureLevels(rng *rand.Rand, nFrac int, acute bool) map[int]string {
	fracIdx := map[int]string{}
	for len(fracIdx) < nFrac {
		k := pick(rng, fractureLevelWeight)
		if _, ok := fracIdx[k]; ok {
			continue
		}
		kind := "chronic"
		if len(fracIdx) == 0 && acute {
			kind = "acute"
		}
		fracIdx[k] = kind
	}
	return fracIdx
}

// spineColumn draws the vertebrae along a curve with thoracic kyphosis
// above the junction and lumbar lordosis below, fractured at fracIdx.
func spineColumn(rng *rand.Rand, fracIdx map[int]string) []vertebraSpec {
	lordosis := uniform(rng, 14, 26)
	y := uniform(rng, -190, -175)
	x0 := uniform(rng, 0, 15)
	curve := func(y float64) float64 { // anterior is -x
		t := y / 150
		return x0 - lordosis*math.Exp(-sq((y-110)/90)) + 10*t*t
	}
	var specs []vertebraSpec
	for k := range spineLevels {
		lumbar := k >= 4
		h := uniform(rng, 22, 25) + 0.9*float64(k)
		disc := 6.5 + 0.6*float64(k)
		if !lumbar {
			disc = 5.5 + 0.3*float64(k)
		}
		cy := y + h/2
		slope := (curve(cy+1) - curve(cy-1)) / 2
		v := vertebraSpec{
			centre: vec{curve(cy), cy}, tilt: -math.Atan(slope),
			depth: 32 + 1.6*float64(k), height: h, wedge: 0.04 + 0.02*rng.Float64(),
		}
		if lumbar {
			v.wedge = -0.03 + 0.05*rng.Float64()
		}
		if kind, ok := fracIdx[k]; ok {
			v.fracture = kind
			u := rng.Float64()
			v.subtle, v.indeterminate = u < SpineSubtleShare, u < SpineIndeterminateShare
			v.applyFracture(rng)
		}
		specs = append(specs, v)
		y += h + disc
	}
	return specs
}

// spineBones draws the vertebrae of specs into the bone layer, with ribs
// across the thoracic levels, and labels those inside the image: their
// truth and their boxes.
func spineBones(rng *rand.Rand, l layers, specs []vertebraSpec, porosis float64) ([]Vertebra, [][4]int) {
	var vertebrae []Vertebra
	var boxes [][4]int
	for k, v := range specs {
		body, post := v.fields(rng, porosis, k < 4)
		l.bone.add(body, 1)
		for _, f := range post {
			l.bone.add(f, 1)
		}
		if k < 4 { // ribs cross the thoracic levels
			c := v.centre.add(vec{uniform(rng, 15, 40), uniform(rng, -6, 6)})
			for _, dx := range []float64{0, uniform(rng, 6, 12)} {
				l.bone.add(arc(c.add(vec{dx, 40}), 60, 5, -math.Pi*0.78, -math.Pi*0.2, 0.25), 1)
			}
		}
		box, inside := v.box(l.bone)
		if !inside {
			continue
		}
		vt := Vertebra{Level: spineLevels[k], Box: box, Fracture: "none"}
		if v.fracture != "" {
			vt.Fracture, vt.Difficulty = v.fracture, "typical"
			if v.indeterminate {
				vt.Difficulty = "indeterminate"
			} else if v.subtle {
				vt.Difficulty = "subtle"
			}
			vt.Detail = fmt.Sprintf("wedge-%.2f", v.wedge)
		}
		vertebrae = append(vertebrae, vt)
		boxes = append(boxes, box)
	}
	return vertebrae, boxes
}

func (v *vertebraSpec) applyFracture(rng *rand.Rand) {
	if v.subtle {
		v.wedge = uniform(rng, 0.12, 0.2)
	} else {
		v.wedge = uniform(rng, 0.22, 0.5)
	}
	switch v.fracture {
	case "acute":
		// A sharp break or step of the anterior cortex, a band of
		// trabecular condensation under the endplate, no remodelling.
		v.step = uniform(rng, 2, 3.5)
		v.condensation = uniform(rng, 0.5, 0.9)
		v.endplateDefect = uniform(rng, 1.5, 3)
		if v.subtle {
			// Barely there: a radiograph often cannot date a fracture.
			v.step = uniform(rng, 0.3, 1)
			v.condensation = uniform(rng, 0.05, 0.2)
			v.endplateDefect = uniform(rng, 0.2, 0.7)
		}
	case "chronic":
		// Smooth wedging with sclerotic margins and osteophytes.
		v.sclerosis = uniform(rng, 0.6, 1.0)
		v.osteophyte = uniform(rng, 3, 6)
		if v.subtle {
			v.sclerosis = uniform(rng, 0.05, 0.25)
			v.osteophyte = 0
		}
	}
	if v.indeterminate {
		// A plain wedge, acute or chronic alike (the draws above are
		// kept so that the rest of the case is drawn the same).
		v.step, v.condensation, v.endplateDefect, v.sclerosis, v.osteophyte = 0, 0, 0, 0, 0
	}
}

// outline is the vertebral body's outline (anterior is -x), before tilt.
func (v *vertebraSpec) outline() []vec {
	d, hp := v.depth/2, v.height/2
	ha := hp * (1 - v.wedge)
	pts := []vec{{d, -hp}, {d, hp}, {-d, ha}}
	if v.step > 0 {
		// The anterior wall buckles: a step out near the upper corner.
		pts = append(pts, vec{-d - v.step, -ha * 0.25}, vec{-d + 0.5, -ha * 0.35})
	}
	pts = append(pts, vec{-d, -ha})
	if v.endplateDefect > 0 {
		pts = append(pts, vec{-d * 0.2, -ha + v.endplateDefect}, vec{d * 0.3, -hp + v.endplateDefect*0.6})
	}
	return pts
}

func (v *vertebraSpec) place(pts []vec) []vec {
	out := make([]vec, len(pts))
	for i, p := range pts {
		out[i] = p.rot(v.tilt).add(v.centre)
	}
	return out
}

// fields are the body and the posterior elements.
func (v *vertebraSpec) fields(rng *rand.Rand, porosis float64, thoracic bool) (field, []field) {
	cort, trab := 1.5, 0.22*porosis
	rim := 1.4 + 1.2*v.sclerosis
	body := plate(v.place(v.outline()), 30, 3, rim, 3*cort*(1+0.6*v.sclerosis), trab)
	if v.condensation > 0 {
		hp := v.height / 2
		band := v.place([]vec{{-v.depth / 2, -hp*(1-v.wedge) + 1}, {v.depth / 2, -hp + 1}, {v.depth / 2, -hp + 6}, {-v.depth / 2, -hp*(1-v.wedge) + 6}})
		body = sum(body, masked(plate(band, 30, 2, 0.1, 0, trab*v.condensation), func(p vec) float64 {
			return smoothstep(0.5, 3, -polygonSDF(p, v.place(v.outline())))
		}))
		// The fracture line through the anterior cortex.
		a := v.place([]vec{{-v.depth/2 - 1, -hp * 0.3}})[0]
		b := v.place([]vec{{-v.depth/2 + 9, -hp * 0.45}})[0]
		body = masked(body, func(p vec) float64 { return 1 - 0.6*math.Exp(-sq(segmentDist(p, a, b)/0.5)) })
	}
	var post []field
	d, h := v.depth/2, v.height/2
	if v.osteophyte > 0 {
		o := v.osteophyte
		ha := h * (1 - v.wedge)
		post = append(post,
			plate(v.place([]vec{{-d + 1, -ha}, {-d - o, -ha - o*0.5}, {-d + 1, -ha + 4}}), 12, 1, 0.8, cort, trab*1.5),
			plate(v.place([]vec{{-d + 1, ha}, {-d - o, ha + o*0.5}, {-d + 1, ha - 4}}), 12, 1, 0.8, cort, trab*1.5))
	}
	// Pedicle, lamina and spinous process, facets.
	post = append(post,
		plate(v.place([]vec{{d - 1, -h * 0.7}, {d + 16, -h * 0.6}, {d + 16, h * 0.05}, {d - 1, -h * 0.1}}), 12, 2, 1, cort*0.8, trab),
		plate(v.place([]vec{{d + 14, -h * 0.7}, {d + 26, -h * 0.5}, {d + 48, h * 0.5}, {d + 40, h * 0.8}, {d + 16, h * 0.3}}), 8, 3, 1.2, cort*0.7, trab),
		ellipsoid(v.place([]vec{{d + 18, -h * 0.75}})[0], 4, 6, v.tilt, 1, cort*0.5, trab),
		ellipsoid(v.place([]vec{{d + 20, h * 0.55}})[0], 4, 5, v.tilt, 1, cort*0.5, trab))
	if thoracic {
		post = append(post, capsule(v.place([]vec{{d + 8, -h * 0.2}})[0], v.place([]vec{{d + 30, -h*0.1 + uniform(rng, -3, 3)}})[0], 4, 4, 1, cort*0.5, trab))
	}
	return body, post
}

// box is the body's bounding box in pixels, and whether it lies wholly
// inside the image.
func (v *vertebraSpec) box(c *canvas) ([4]int, bool) {
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range v.place(v.outline()) {
		q := c.toPixel(p)
		x0, y0, x1, y1 = min(x0, q.x), min(y0, q.y), max(x1, q.x), max(y1, q.y)
	}
	b := [4]int{int(math.Floor(x0)), int(math.Floor(y0)), int(math.Ceil(x1 - x0)), int(math.Ceil(y1 - y0))}
	return b, x0 >= 0 && y0 >= 0 && x1 < float64(c.cols) && y1 < float64(c.rows)
}
