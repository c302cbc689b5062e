package phantom

import (
	"math"
	"math/rand/v2"
)

// HipClasses are the eight per-hip classes of the hip screening model, in
// the model's output order.
var HipClasses = []string{"normal", "oa", "onfh", "fnf", "itf", "ddh", "tha", "fixation"}

// hipPrevalence is the class mix of the generated population: normal and
// osteoarthritis common, fractures rarer, as in a clinical pelvis series.
var hipPrevalence = []float64{0.34, 0.20, 0.08, 0.09, 0.08, 0.07, 0.07, 0.07}

// SubtleShare is the share of abnormal hips drawn as subtle presentations
// (undisplaced fractures, early osteoarthritis, crescent-only necrosis, mild
// dysplasia, small screws). Arthroplasties are never subtle.
const SubtleShare = 0.25

// Hip is one hip's ground truth.
type Hip struct {
	Class      string // one of HipClasses
	Difficulty string // "typical" or "subtle"; normal hips are "typical"
	Detail     string // the presentation drawn, e.g. "garden-3", "dhs"
	Joint      HipJoint
}

// HipJoint is where a hip lies on the image, the truth a hip localiser
// learns: pixel coordinates from the image's top-left corner (a pixel's
// centre at +0.5), after the patient's rotation, shift and magnification.
type HipJoint struct {
	// Centre is the femoral head's centre (the prosthetic head's after an
	// arthroplasty, the displaced head's after a fracture), x and y.
	Centre [2]float64
	// Radius is the femoral head's radius.
	Radius float64
	// Box (x, y, w, h) bounds the acetabulum, the femoral head and neck and
	// both trochanters: the region the hip's classes show in.
	Box [4]float64
	// Open is the share of Box inside the image and its collimated field.
	Open float64
}

// hipSpec is the drawn anatomy of one hip in a frame where lateral is +x
// (the patient's left hip, on the image's right); the patient's right hip
// is drawn the same and mirrored.
type hipSpec struct {
	socket     vec     // acetabular centre
	head       vec     // femoral head centre
	r          float64 // head radius
	js         float64 // joint space (socket radius - head radius)
	ce         float64 // lateral roof edge: angle from the vertical, degrees
	neckEnd    vec     // where the neck meets the shaft axis
	shaftTop   vec
	shaftEnd   vec
	greater    vec // greater trochanter
	lesser     vec // lesser trochanter
	trab, cort float64

	sourcil     float64 // roof sclerosis factor (1 normal)
	osteophyte  float64 // spur size, mm
	cysts       bool
	flatten     float64 // mm of the dome clipped (necrosis)
	crescent    float64 // subchondral lucency strength, 0-1
	sclerosis   float64 // head sclerosis strength, 0-1
	fracture    *fracture
	tha         *arthroplasty
	fixation    string // screws, small-screws, dhs, nail
	screwRadius float64
}

type fracture struct {
	a, b  vec     // the fracture line
	gap   float64 // mm of lucency between fragments
	pivot vec
	rot   float64 // proximal fragment rotation, radians
	shift vec     // proximal fragment translation, mm
}

type arthroplasty struct {
	cupR, inclination, headR float64
	cemented                 bool
	cupScrews                int
}

func newHipSpec(rng *rand.Rand, scale float64) hipSpec {
	s := scale
	r := uniform(rng, 22, 26) * s
	socket := vec{uniform(rng, 92, 98) * s, uniform(rng, 2, 8)}
	nsa := uniform(rng, 125, 138) * math.Pi / 180 // neck-shaft angle
	shaftDir := vec{-0.05, 1}.norm().rot(uniform(rng, -0.04, 0.04))
	neckLen := uniform(rng, 45, 52) * s
	// The neck leaves the head inferolaterally at the neck-shaft angle to
	// the shaft axis.
	neckDir := shaftDir.mul(-1).rot(-(math.Pi - nsa))
	neckEnd := socket.add(neckDir.mul(-neckLen))
	shaftTop := neckEnd.add(shaftDir.mul(12 * s))
	return hipSpec{
		socket: socket, head: socket, r: r, js: uniform(rng, 4, 5.5),
		ce: uniform(rng, 28, 40), neckEnd: neckEnd, shaftTop: shaftTop,
		shaftEnd: shaftTop.add(shaftDir.mul(220)),
		greater:  neckEnd.add(vec{uniform(rng, 8, 12), uniform(rng, -8, -2)}.mul(s)),
		lesser:   neckEnd.add(vec{uniform(rng, -16, -12), uniform(rng, 28, 36)}.mul(s)),
		trab:     uniform(rng, 0.22, 0.32), cort: uniform(rng, 0.9, 1.1),
		sourcil: 1,
	}
}

// applyClass draws the signs of class on h. subtle picks the mild form.
func (h *hipSpec) applyClass(rng *rand.Rand, class string, subtle bool) string {
	neck := h.neckEnd.sub(h.head).norm()
	switch class {
	case "oa":
		if subtle {
			h.js = uniform(rng, 2.0, 2.8)
			h.osteophyte = uniform(rng, 2, 3.5)
			h.sourcil = uniform(rng, 1.4, 1.7)
			return "early"
		}
		h.js = uniform(rng, 0.6, 2.0)
		h.osteophyte = uniform(rng, 3.5, 7)
		h.sourcil = uniform(rng, 1.8, 2.6)
		h.cysts = rng.Float64() < 0.5
		h.head = h.head.add(vec{uniform(rng, 0, 2), uniform(rng, -2, 0)})
		return "advanced"
	case "onfh":
		h.crescent = uniform(rng, 0.7, 0.9)
		if subtle {
			h.crescent = uniform(rng, 0.55, 0.7)
			h.sclerosis = uniform(rng, 0.5, 0.7)
			h.flatten = uniform(rng, 0, 1.5)
			return "crescent"
		}
		h.sclerosis = uniform(rng, 0.7, 1)
		h.flatten = uniform(rng, 3, 6)
		return "collapse"
	case "fnf":
		t := uniform(rng, 0.3, 0.55)
		c := h.head.add(neck.mul(h.r + t*18))
		across := neck.perp().rot(uniform(rng, -0.35, 0.35))
		f := &fracture{a: c.add(across.mul(-22)), b: c.add(across.mul(22)), pivot: c.add(across.mul(-14))}
		if subtle {
			// Garden I-II: an undisplaced line, slight valgus impaction and a
			// small cortical step.
			f.gap = uniform(rng, 1.3, 1.8)
			f.rot = -uniform(rng, 0.03, 0.06)
			f.shift = across.mul(uniform(rng, 0.6, 1.2))
			h.fracture = f
			return "garden-1-2"
		}
		f.gap = uniform(rng, 1.5, 3)
		f.rot = uniform(rng, 0.15, 0.4)
		f.shift = vec{uniform(rng, 1, 5), uniform(rng, -6, -1)}
		h.fracture = f
		return "garden-3-4"
	case "itf":
		a := h.greater.add(vec{2, -10})
		b := h.lesser.add(vec{-4, 6})
		f := &fracture{a: a.add(b.sub(a).mul(-0.15)), b: b.add(b.sub(a).mul(0.15)), pivot: b}
		if subtle {
			f.gap = uniform(rng, 1.2, 1.6)
			h.fracture = f
			return "undisplaced"
		}
		f.gap = uniform(rng, 1.5, 3)
		f.rot = uniform(rng, 0.10, 0.30)
		f.shift = vec{uniform(rng, -3, 1), uniform(rng, -2, 4)}
		h.fracture = f
		return "displaced"
	case "ddh":
		if subtle {
			h.ce = uniform(rng, 8, 16)
			h.head = h.head.add(vec{uniform(rng, 3, 5), uniform(rng, -3, -1)})
			return "mild"
		}
		h.ce = uniform(rng, -5, 10)
		h.head = h.head.add(vec{uniform(rng, 5, 12), uniform(rng, -12, -4)})
		h.socket = h.socket.add(vec{uniform(rng, 0, 3), uniform(rng, -4, 0)})
		return "subluxed"
	case "tha":
		h.tha = &arthroplasty{
			cupR: h.r + uniform(rng, 2, 5), inclination: uniform(rng, 35, 52), headR: pickOf(rng, 14, 16, 18),
			cemented: rng.Float64() < 0.4, cupScrews: rng.IntN(3),
		}
		return "tha"
	case "fixation":
		if subtle {
			h.fixation, h.screwRadius = "screws", uniform(rng, 1.8, 2.4)
			return "small-screws"
		}
		h.fixation = []string{"screws", "dhs", "nail"}[rng.IntN(3)]
		h.screwRadius = uniform(rng, 3.2, 4)
		return h.fixation
	}
	return "normal"
}

func pickOf(rng *rand.Rand, v ...float64) float64 { return v[rng.IntN(len(v))] }

// fields returns the hip's bone and metal layers in the lateral-positive
// frame.
func (h *hipSpec) fields(rng *rand.Rand) (bone, metalParts []field) {
	// Acetabular roof (sourcil): a dense arc over the head from the
	// medial wall to the lateral edge, the centre-edge angle from vertical.
	sr := h.r + h.js
	lateral := (-90 + h.ce) * math.Pi / 180
	roof := 3.2 * h.sourcil
	bone = append(bone, arc(h.socket, sr+roof/2, roof, -math.Pi*0.98, lateral, 1.2*h.cort*min(h.sourcil, 1.8)))
	// Posterior and anterior walls: fainter arcs on round the head.
	bone = append(bone, arc(h.socket, sr+1, 1.6, lateral, lateral+1.9, 0.55*h.cort))
	bone = append(bone, arc(h.socket, sr-3, 1.4, lateral+0.2, lateral+1.5, 0.35*h.cort))
	// Teardrop.
	td := h.socket.add(vec{-sr - 6, sr * 0.55})
	bone = append(bone, arc(td, 5, 1.8, -math.Pi*0.1, math.Pi*1.1, 0.8*h.cort))
	if h.osteophyte > 0 {
		o := h.osteophyte
		edge := h.socket.add(vec{math.Cos(lateral), math.Sin(lateral)}.mul(sr + 1))
		bone = append(bone, plate([]vec{edge.add(vec{-2, -2}), edge.add(vec{o, o * 0.2}), edge.add(vec{-1, 3})}, 5, 0.8, 0.6, h.cort, h.trab*1.5))
		neck := h.neckEnd.sub(h.head).norm()
		junction := h.head.add(neck.rot(0.9).mul(h.r * 0.9))
		bone = append(bone, plate([]vec{junction.add(neck.mul(-3)), junction.add(neck.perp().mul(-o * 0.8)), junction.add(neck.mul(5))}, 5, 0.8, 0.6, h.cort, h.trab*1.5))
	}
	if h.cysts {
		for k := range 2 {
			ang := lateral - 0.4 - 0.5*float64(k)
			c := h.socket.add(vec{math.Cos(ang), math.Sin(ang)}.mul(sr + roof + 2.5))
			bone = append(bone, ellipsoid(c, uniform(rng, 1.5, 3), uniform(rng, 1.5, 2.5), 0, 0.3, -0.3, -0.45))
		}
	}

	femur := h.femur()
	switch {
	case h.fracture != nil:
		f := h.fracture
		dir := f.b.sub(f.a).norm()
		n := dir.perp()
		if n.dot(h.head.sub(f.a)) < 0 {
			n = n.mul(-1)
		}
		half := f.gap / 2
		side := func(p vec) float64 { return p.sub(f.a).dot(n) }
		prox := moved(masked(femur, func(p vec) float64 { return smoothstep(half-0.3, half+0.3, side(p)) }), f.pivot, f.rot, f.shift)
		dist := masked(femur, func(p vec) float64 { return smoothstep(half-0.3, half+0.3, -side(p)) })
		bone = append(bone, prox, dist)
	case h.tha != nil:
		// The neck is cut a finger's breadth above the lesser trochanter.
		neck := h.neckEnd.sub(h.head).norm()
		cut := h.head.add(neck.mul(h.r + 16))
		bone = append(bone, masked(femur, func(p vec) float64 { return smoothstep(-0.5, 0.5, p.sub(cut).dot(neck)) }))
		metalParts = append(metalParts, h.prosthesis(rng, cut, neck)...)
	default:
		bone = append(bone, femur)
		if h.fixation != "" {
			metalParts = append(metalParts, h.implant(rng)...)
		}
	}
	return bone, metalParts
}

// joint is where the hip lies on canvas c; mirror draws it as the
// patient's right.
func (h *hipSpec) joint(c *canvas, mirror bool) HipJoint {
	centre, r := h.head, h.r
	switch {
	case h.tha != nil:
		centre, r = h.socket, h.tha.headR
	case h.fracture != nil:
		// The proximal fragment, head included, is displaced (see moved).
		f := h.fracture
		centre = centre.sub(f.pivot).rot(f.rot).add(f.pivot).add(f.shift)
	}
	var outline []vec
	ring := func(c vec, rx, ry, th float64) {
		for k := range 32 {
			s, co := math.Sincos(2 * math.Pi * float64(k) / 32)
			outline = append(outline, vec{rx * co, ry * s}.rot(th).add(c))
		}
	}
	roof := h.r + h.js + 3.2*h.sourcil
	if h.tha != nil {
		roof = max(roof, h.tha.cupR+2)
	}
	ring(h.socket, roof, roof, 0)
	ring(centre, r, r, 0)
	ring(h.greater, 12, 18, 0.2)
	ring(h.lesser, 7, 9, -0.4)
	// The shaft a little below the lesser trochanter.
	shaft := h.shaftEnd.sub(h.shaftTop).norm()
	below := h.shaftTop.add(shaft.mul((h.lesser.y + 12 - h.shaftTop.y) / shaft.y))
	outline = append(outline, below.add(shaft.perp().mul(16)), below.add(shaft.perp().mul(-16)))
	toPixel := func(p vec) vec {
		if mirror {
			p.x = -p.x
		}
		return c.toPixel(p)
	}
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range outline {
		q := toPixel(p)
		x0, y0, x1, y1 = min(x0, q.x), min(y0, q.y), max(x1, q.x), max(y1, q.y)
	}
	q := toPixel(centre)
	return HipJoint{Centre: [2]float64{q.x, q.y}, Radius: r * c.zoom / c.spacing, Box: [4]float64{x0, y0, x1 - x0, y1 - y0}}
}

// femur is the proximal femur: head, neck, trochanters and shaft.
func (h *hipSpec) femur() field {
	neckDir := h.neckEnd.sub(h.head).norm()
	headF := ellipsoid(h.head, h.r, h.r, 0, 1.2, h.cort, h.trab)
	if h.flatten > 0 || h.crescent > 0 || h.sclerosis > 0 {
		base := headF.at
		top := h.head.y - h.r + h.flatten
		headF.at = func(p vec) float64 {
			v := base(p)
			if v == 0 {
				return 0
			}
			q := p.sub(h.head)
			if h.flatten > 0 {
				v *= smoothstep(top-0.6, top+0.6, p.y)
				v += 1.6 * h.cort * math.Exp(-sq((p.y-top)/0.9)) * smoothstep(h.r*0.75, h.r*0.5, math.Abs(q.x))
			}
			d := q.len()
			up := -q.y / (d + 1e-9) // 1 straight up
			if h.crescent > 0 && up > 0.35 {
				v *= 1 - h.crescent*math.Exp(-sq((d-(h.r-3.5))/1.2))*smoothstep(0.35, 0.6, up)
			}
			if h.sclerosis > 0 && up > 0 {
				// Patchy sclerosis under the crescent.
				mottle := 0.6 + 0.4*math.Sin(q.x*0.9+3*math.Sin(q.y*0.7))
				v *= 1 + 0.9*h.sclerosis*mottle*math.Exp(-sq((d-(h.r-8))/4.5))*smoothstep(0, 0.5, up)
			}
			return v
		}
	}
	parts := []field{
		headF,
		capsule(h.head.add(neckDir.mul(h.r*0.5)), h.neckEnd, h.r*0.62, h.r*0.78, 1.4, h.cort, h.trab*0.9),
		ellipsoid(h.greater, 12, 18, 0.2, 1.5, h.cort, h.trab*0.8),
		ellipsoid(h.lesser, 7, 9, -0.4, 1.2, h.cort, h.trab),
		capsule(h.neckEnd, h.shaftTop.add(h.shaftEnd.sub(h.shaftTop).norm().mul(30)), 19, 16, 2, h.cort, h.trab),
		capsule(h.shaftTop, h.shaftEnd, 15.5, 14.5, 5.5, h.cort, 0.05),
	}
	return sum(parts...)
}

// prosthesis draws a total hip: a metal cup in the socket, a metal head and
// a stem down the femoral canal, optionally in cement.
func (h *hipSpec) prosthesis(rng *rand.Rand, cut, neck vec) []field {
	t := h.tha
	var out []field
	open := (90 + t.inclination) * math.Pi / 180 // cup opening faces inferolaterally
	out = append(out, arc(h.socket, t.cupR-2, 4, open-math.Pi+0.15, open-0.15, 6))
	for range t.cupScrews {
		a := -math.Pi/2 + uniform(rng, -0.6, 0.2)
		d := vec{math.Cos(a), math.Sin(a)}
		out = append(out, capsule(h.socket.add(d.mul(t.cupR)), h.socket.add(d.mul(t.cupR+uniform(rng, 18, 30))), 3, 2.6, 0, 0, 5))
	}
	out = append(out, ellipsoid(h.socket, t.headR, t.headR, 0, 0, 0, 6))
	shaft := h.shaftEnd.sub(h.shaftTop).norm()
	tip := h.shaftTop.add(shaft.mul(uniform(rng, 110, 150)))
	trunnion := h.socket.add(neck.mul(t.headR * 0.7))
	shoulder := h.shaftTop.add(shaft.mul(15))
	if t.cemented {
		out = append(out, capsule(shoulder, tip, 11, 7, 0, 0, 0.35))
	}
	// Neck of the stem, its shoulder in the metaphysis and the tapered body
	// down the canal.
	out = append(out,
		capsule(trunnion, cut, 5, 8, 0, 0, 4),
		capsule(cut, shoulder, 9, 8, 0, 0, 4),
		capsule(shoulder, tip, 8, 4, 0, 0, 4))
	return out
}

// implant draws internal fixation.
func (h *hipSpec) implant(rng *rand.Rand) []field {
	neck := h.neckEnd.sub(h.head).norm()
	shaft := h.shaftEnd.sub(h.shaftTop).norm()
	headTip := h.head.add(neck.mul(-h.r * 0.55))
	// The lateral cortex point where a screw along the neck axis enters.
	entry := h.neckEnd.add(neck.mul(22))
	var out []field
	switch h.fixation {
	case "screws":
		n := 3
		if h.screwRadius < 2.5 {
			n = 2
		}
		for k := range n {
			off := neck.perp().mul((float64(k) - float64(n-1)/2) * uniform(rng, 8, 11))
			out = append(out, screw(headTip.add(off), entry.add(off).add(shaft.mul(float64(k)*2)), h.screwRadius))
		}
	case "dhs":
		out = append(out, screw(headTip, entry, h.screwRadius*1.6))
		top := entry.add(shaft.mul(-6))
		length := uniform(rng, 70, 120)
		side := shaft.perp().mul(-1)
		if side.x < 0 {
			side = side.mul(-1)
		}
		p := []vec{top, top.add(shaft.mul(length)), top.add(shaft.mul(length)).add(side.mul(5)), top.add(side.mul(5))}
		out = append(out, metal(p, 8))
		for k := 1; float64(k)*18 < length; k++ {
			c := top.add(shaft.mul(float64(k) * 18))
			out = append(out, screw(c.add(side.mul(4)), c.add(side.mul(-36)), 2.2))
		}
	case "nail":
		entryTop := h.greater.add(vec{-3, -18})
		end := h.shaftTop.add(shaft.mul(uniform(rng, 160, 220)))
		out = append(out, capsule(entryTop, end, 6.5, 5, 0, 0, 9))
		out = append(out, screw(headTip, entry.add(neck.mul(6)), h.screwRadius*1.5))
		d := end.add(shaft.mul(-20))
		out = append(out, screw(d.add(vec{24, 0}), d.add(vec{-24, 0}), 2.4))
	}
	return out
}

// screw is a threaded metal screw from tip to head end of radius r.
func screw(tip, tail vec, r float64) field {
	body := capsule(tip, tail, r, r, 0, 0, 8)
	axis := tail.sub(tip)
	l := axis.len()
	dir := axis.norm()
	at := body.at
	body.at = func(p vec) float64 {
		v := at(p)
		if v == 0 {
			return 0
		}
		s := p.sub(tip).dot(dir)
		if s < 0.35*l { // thread on the leading third
			d := math.Abs(p.sub(tip).dot(dir.perp()))
			if d > r*0.7 && math.Mod(s, 2.5) < 1.2 {
				return v * 0.4
			}
		}
		return v
	}
	return body
}

// arc is a curved band of bone (or metal) of the given width around c at
// radius r from angle a0 to a1 (radians, y down).
func arc(c vec, r, width, a0, a1, density float64) field {
	pad := r + width
	return field{min: c.sub(vec{pad, pad}), max: c.add(vec{pad, pad}), at: func(p vec) float64 {
		q := p.sub(c)
		ang := math.Atan2(q.y, q.x)
		for ang < a0 {
			ang += 2 * math.Pi
		}
		for ang > a0+2*math.Pi {
			ang -= 2 * math.Pi
		}
		// Fade out over 0.08 rad at both ends.
		w := smoothstep(0, 0.08, ang-a0) * smoothstep(0, 0.08, a1-ang)
		if w == 0 {
			return 0
		}
		d := q.len() - r
		return w * density * chord(width/2+0.6, d) * 1.5
	}}
}

// sum adds fields into one.
func sum(parts ...field) field {
	lo, hi := parts[0].min, parts[0].max
	for _, f := range parts[1:] {
		lo = vec{min(lo.x, f.min.x), min(lo.y, f.min.y)}
		hi = vec{max(hi.x, f.max.x), max(hi.y, f.max.y)}
	}
	return field{min: lo, max: hi, at: func(p vec) float64 {
		var v float64
		for _, f := range parts {
			if p.x >= f.min.x && p.y >= f.min.y && p.x <= f.max.x && p.y <= f.max.y {
				v += f.at(p)
			}
		}
		return v
	}}
}

// mirrored reflects f across x = 0.
func mirrored(f field) field {
	at := f.at
	return field{min: vec{-f.max.x, f.min.y}, max: vec{-f.min.x, f.max.y}, at: func(p vec) float64 {
		return at(vec{-p.x, p.y})
	}}
}

func sq(x float64) float64 { return x * x }

// pelvisBones are the pelvic bones in the lateral-positive frame (mirrored
// for the other side): iliac wing with the roof region, pubis and ischium
// around the obturator foramen.
func pelvisBones(rng *rand.Rand, s float64, h hipSpec) []field {
	sc := func(pts ...vec) []vec {
		for i := range pts {
			pts[i] = pts[i].mul(s)
		}
		return pts
	}
	wing := sc(vec{42, -60}, vec{48, -100}, vec{72, -128}, vec{112, -132}, vec{146, -114},
		vec{160, -86}, vec{150, -62}, vec{130, -42}, vec{122, -22}, vec{110, -10},
		vec{80, 4}, vec{64, 18}, vec{55, 0}, vec{50, -30})
	out := []field{plate(wing, uniform(rng, 16, 22), 10, 1.8, h.cort, h.trab)}
	// The ilium thickens above and behind the acetabulum.
	out = append(out, plate(sc(vec{60, -40}, vec{125, -40}, vec{122, -22}, vec{110, -10}, vec{80, 4}, vec{64, 18}, vec{55, 0}), 14, 14, 0.5, 0, h.trab))
	ring := sc(vec{6, 40}, vec{40, 20}, vec{72, 16}, vec{104, 30}, vec{108, 60}, vec{96, 92},
		vec{82, 110}, vec{58, 106}, vec{30, 96}, vec{6, 80})
	hole := vec{62, 64}.mul(s)
	out = append(out, obturatorRing(ring, hole, 22*s, 28*s, -0.5, h))
	return out
}

// obturatorRing is the pubic and ischial bone with the obturator foramen.
func obturatorRing(outer []vec, c vec, rx, ry, th float64, h hipSpec) field {
	f := plate(outer, 18, 6, 1.6, h.cort, h.trab)
	at := f.at
	f.at = func(p vec) float64 {
		q := p.sub(c).rot(-th)
		k := math.Hypot(q.x/rx, q.y/ry)
		d := (k - 1) * min(rx, ry)
		v := at(p) * smoothstep(0, 6, d)
		return v + 1.4*h.cort*1.2*math.Exp(-sq(d/1.2))
	}
	return f
}

// upperLumbar draws L4 to L2 above the fifth lumbar vertebra of sacrum, for
// fields that reach above the default one.
func upperLumbar(s float64, cort, trab float64) []field {
	var out []field
	for k := 1; k <= 3; k++ {
		bottom, w, tp := -162-48*float64(k-1), 30-float64(k), 40+3*float64(k)
		body := []vec{{-w, bottom - 42}, {w, bottom - 42}, {w + 1, bottom}, {-w - 1, bottom}}
		process := []vec{{-tp, bottom - 10}, {tp, bottom - 10}, {tp - 2, bottom - 2}, {2 - tp, bottom - 2}}
		for n := range body {
			body[n] = body[n].mul(s)
			process[n] = process[n].mul(s)
		}
		out = append(out, plate(body, 18, 6, 1.6, cort, trab), plate(process, 8, 2, 1, cort, trab*0.6),
			ellipsoid(vec{0, (bottom - 24) * s}, 8, 10, 0, 1.5, cort, trab))
	}
	return out
}

// sacrum draws the sacrum, the fifth lumbar vertebra and the coccyx on the
// midline.
func sacrum(rng *rand.Rand, s float64, cort, trab float64) []field {
	sc := func(pts ...vec) []vec {
		for i := range pts {
			pts[i] = pts[i].mul(s)
		}
		return pts
	}
	out := []field{plate(sc(vec{-52, -100}, vec{52, -100}, vec{44, -60}, vec{22, -8}, vec{8, 12}, vec{-8, 12}, vec{-22, -8}, vec{-44, -60}), 10, 12, 1.5, cort*0.8, trab*0.8)}
	for k := range 4 {
		y := (-86 + float64(k)*20) * s
		for _, x := range []float64{-20, 20} {
			out = append(out, ellipsoid(vec{x * s * (1 - 0.12*float64(k)), y}, 5, 4, 0, 0.5, -0.4, -0.2))
		}
	}
	l5 := sc(vec{-30, -156}, vec{30, -156}, vec{31, -114}, vec{-31, -114})
	out = append(out, plate(l5, 18, 6, 1.6, cort, trab))
	out = append(out, plate(sc(vec{-40, -124}, vec{40, -124}, vec{38, -116}, vec{-38, -116}), 8, 2, 1, cort, trab*0.6))
	out = append(out, ellipsoid(vec{0, (-138 + uniform(rng, -3, 3)) * s}, 8, 10, 0, 1.5, cort, trab))
	return out
}
