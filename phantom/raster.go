// Package phantom generates synthetic radiographs whose ground truth is
// known: AP pelvis views with two hips, each one of the eight classes of the
// hip screening model, and lateral thoracolumbar spine views with acute or
// chronic vertebral compression fractures and a clinical baseline.
//
// The images are projections: every structure adds its X-ray path length
// times a density (bone as shells of cortex around trabecular bone, metal
// as near-opaque, soft tissue as a faint body outline) to an attenuation
// map in millimetres of the patient; the detector then adds blur, quantum
// noise, a heel-effect gradient and collimation, and the result is stored
// as a 12-16 bit DICOM radiograph with rescale and VOI tags. Everything
// is drawn from a PCG generator seeded by (seed, case index), so a case is
// the same whatever else is generated. A Variation widens the positioning
// and acquisition (rotation, shift, magnification, exposure, noise,
// collimation, lead markers, burnt-in text) and records them, with where
// each hip lies on the image, as the truth of each case.
package phantom

import (
	"math"
	"math/rand/v2"
)

// vec is a point or direction in millimetres; x to the image's right, y down.
type vec struct{ x, y float64 }

func (a vec) add(b vec) vec        { return vec{a.x + b.x, a.y + b.y} }
func (a vec) sub(b vec) vec        { return vec{a.x - b.x, a.y - b.y} }
func (a vec) mul(k float64) vec    { return vec{a.x * k, a.y * k} }
func (a vec) dot(b vec) float64    { return a.x*b.x + a.y*b.y }
func (a vec) len() float64         { return math.Hypot(a.x, a.y) }
func (a vec) rot(th float64) vec   { s, c := math.Sincos(th); return vec{c*a.x - s*a.y, s*a.x + c*a.y} }
func (a vec) norm() vec            { return a.mul(1 / a.len()) }
func (a vec) perp() vec            { return vec{-a.y, a.x} }
func lerp(a, b vec, t float64) vec { return a.add(b.sub(a).mul(t)) }

// field is one layer of the attenuation map: a value per point, zero outside
// its bounding box (min, max in millimetres).
type field struct {
	min, max vec
	at       func(p vec) float64
}

// canvas is the attenuation map of one image: rows x cols pixels of spacing
// mm; pixel (i, j) sits at phantom point origin + pose(j, i).
type canvas struct {
	rows, cols int
	spacing    float64
	a          []float64
	// pose maps pixel centres to phantom millimetres: a magnification
	// (zoom, the patient appears zoom times larger), rotation about the
	// image centre, then a shift (patient positioning).
	center vec
	theta  float64
	shift  vec
	zoom   float64
}

// pose is how the patient lies on the detector.
type pose struct {
	theta float64 // radians; the anatomy appears turned by -theta
	shift vec     // mm, in the phantom's frame
	zoom  float64 // magnification, 1 by default
}

func newCanvas(rows, cols int, spacing float64, center vec, theta float64, shift vec) *canvas {
	return &canvas{rows: rows, cols: cols, spacing: spacing, a: make([]float64, rows*cols), center: center, theta: theta, shift: shift, zoom: 1}
}

// toPhantom maps pixel coordinates to phantom millimetres.
func (c *canvas) toPhantom(x, y float64) vec {
	p := vec{(x - float64(c.cols)/2) * c.spacing / c.zoom, (y - float64(c.rows)/2) * c.spacing / c.zoom}
	return p.rot(c.theta).add(c.center).add(c.shift)
}

// toPixel maps phantom millimetres to pixel coordinates.
func (c *canvas) toPixel(p vec) vec {
	q := p.sub(c.center).sub(c.shift).rot(-c.theta).mul(c.zoom / c.spacing)
	return vec{q.x + float64(c.cols)/2, q.y + float64(c.rows)/2}
}

// add accumulates f, times k, over the pixels its bounding box covers.
func (c *canvas) add(f field, k float64) {
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, corner := range []vec{f.min, {f.max.x, f.min.y}, f.max, {f.min.x, f.max.y}} {
		q := c.toPixel(corner)
		x0, y0, x1, y1 = min(x0, q.x), min(y0, q.y), max(x1, q.x), max(y1, q.y)
	}
	i0, i1 := max(0, int(y0)-1), min(c.rows-1, int(y1)+1)
	j0, j1 := max(0, int(x0)-1), min(c.cols-1, int(x1)+1)
	for i := i0; i <= i1; i++ {
		for j := j0; j <= j1; j++ {
			p := c.toPhantom(float64(j)+0.5, float64(i)+0.5)
			if p.x < f.min.x || p.y < f.min.y || p.x > f.max.x || p.y > f.max.y {
				continue
			}
			c.a[i*c.cols+j] += k * f.at(p)
		}
	}
}

// chord is the path length through a body of radius r at distance d from
// its axis or centre: 2*sqrt(r^2-d^2).
func chord(r, d float64) float64 {
	d = math.Abs(d)
	if d >= r || r <= 0 {
		return 0
	}
	return 2 * math.Sqrt(r*r-d*d)
}

// shell is the projection of a bone of outer radius r with a cortex of
// thickness t: cortex counts cort per mm, the marrow space trab per mm.
func shell(r, t, d, cort, trab float64) float64 {
	outer, inner := chord(r, d), chord(r-t, d)
	return cort*(outer-inner) + trab*inner
}

// ellipsoid is a bone ellipsoid (radii rx, ry in the image plane, depth
// scaled like the smaller one) rotated by th, with a cortex t thick.
func ellipsoid(c vec, rx, ry, th, t, cort, trab float64) field {
	r := max(rx, ry)
	return field{min: vec{c.x - r, c.y - r}, max: vec{c.x + r, c.y + r}, at: func(p vec) float64 {
		q := p.sub(c).rot(-th)
		k := math.Hypot(q.x/rx, q.y/ry)
		m := min(rx, ry)
		return shell(m, t, k*m, cort, trab)
	}}
}

// capsule is a tapered cylinder of bone from a (radius ra) to b (radius rb).
func capsule(a, b vec, ra, rb, t, cort, trab float64) field {
	r := max(ra, rb)
	ab := b.sub(a)
	l2 := ab.dot(ab)
	return field{
		min: vec{min(a.x, b.x) - r, min(a.y, b.y) - r},
		max: vec{max(a.x, b.x) + r, max(a.y, b.y) + r},
		at: func(p vec) float64 {
			s := 0.0
			if l2 > 0 {
				s = math.Max(0, math.Min(1, p.sub(a).dot(ab)/l2))
			}
			d := p.sub(lerp(a, b, s)).len()
			return shell(ra+(rb-ra)*s, t, d, cort, trab)
		},
	}
}

// segmentDist is the distance from p to the segment a-b.
func segmentDist(p, a, b vec) float64 {
	ab := b.sub(a)
	l2 := ab.dot(ab)
	s := 0.0
	if l2 > 0 {
		s = math.Max(0, math.Min(1, p.sub(a).dot(ab)/l2))
	}
	return p.sub(lerp(a, b, s)).len()
}

// polygonSDF is the signed distance to a closed polygon (negative inside).
func polygonSDF(p vec, poly []vec) float64 {
	d := math.Inf(1)
	inside := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[j], poly[i]
		d = math.Min(d, segmentDist(p, a, b))
		if (a.y > p.y) != (b.y > p.y) && p.x < (b.x-a.x)*(p.y-a.y)/(b.y-a.y)+a.x {
			inside = !inside
		}
	}
	if inside {
		return -d
	}
	return d
}

// plate is a flat bone seen face on (iliac wing, sacrum, pubic rami): the
// plate's own thickness inside the polygon, tapering over taper mm, plus a
// bright rim where the cortex is seen edge on.
func plate(poly []vec, thick, taper, rim, cort, trab float64) field {
	lo, hi := poly[0], poly[0]
	for _, p := range poly {
		lo, hi = vec{min(lo.x, p.x), min(lo.y, p.y)}, vec{max(hi.x, p.x), max(hi.y, p.y)}
	}
	pad := vec{2 * rim, 2 * rim}
	return field{min: lo.sub(pad), max: hi.add(pad), at: func(p vec) float64 {
		s := polygonSDF(p, poly)
		if s > 2*rim {
			return 0
		}
		body := trab * thick * smoothstep(0, taper, -s)
		edge := cort * rim * math.Exp(-(s*s)/(rim*rim))
		return body + edge
	}}
}

// smoothstep is 0 below e0, 1 above e1, smooth between.
func smoothstep(e0, e1, x float64) float64 {
	t := math.Max(0, math.Min(1, (x-e0)/(e1-e0)))
	return t * t * (3 - 2*t)
}

// masked multiplies f by m (a cut such as a fracture gap or a clipped dome).
func masked(f field, m func(p vec) float64) field {
	at := f.at
	f.at = func(p vec) float64 {
		v := at(p)
		if v == 0 {
			return 0
		}
		return v * m(p)
	}
	return f
}

// moved evaluates f in a displaced frame: a point p reads f at the point
// that the displacement (rotation th about pivot, then shift) moved to p.
func moved(f field, pivot vec, th float64, shift vec) field {
	at := f.at
	r := math.Hypot(f.max.x-f.min.x, f.max.y-f.min.y)/2 + shift.len()
	c := lerp(f.min, f.max, 0.5).sub(pivot).rot(th).add(pivot).add(shift)
	return field{min: vec{c.x - r, c.y - r}, max: vec{c.x + r, c.y + r}, at: func(p vec) float64 {
		q := p.sub(shift).sub(pivot).rot(-th).add(pivot)
		return at(q)
	}}
}

// metal is an object opaque to the beam: constant path density k inside
// the polygon with a sub-millimetre soft edge.
func metal(poly []vec, k float64) field {
	f := plate(poly, 1, 0.4, 0.1, 0, k)
	return f
}

// noiseField returns smooth Gaussian noise (unit variance) over the canvas,
// correlated over about corr pixels, for trabecular texture and exposure
// inhomogeneity.
func noiseField(rng *rand.Rand, rows, cols int, corr float64) []float64 {
	n := make([]float64, rows*cols)
	for i := range n {
		n[i] = rng.NormFloat64()
	}
	blur(n, rows, cols, corr)
	var s float64
	for _, v := range n {
		s += v * v
	}
	sd := math.Sqrt(s / float64(len(n)))
	if sd > 0 {
		for i := range n {
			n[i] /= sd
		}
	}
	return n
}

// blur approximates a Gaussian of standard deviation sigma pixels by three
// box filters in each direction.
func blur(v []float64, rows, cols int, sigma float64) {
	if sigma <= 0 {
		return
	}
	r := int(math.Round(math.Sqrt(4*sigma*sigma+1)/2 - 0.5))
	if r < 1 {
		// A 3-tap kernel for small sigmas.
		w := sigma * sigma / 2
		kernel3(v, rows, cols, w)
		return
	}
	tmp := make([]float64, max(rows, cols))
	for range 3 {
		for i := range rows {
			boxLine(v[i*cols:(i+1)*cols], 1, cols, r, tmp)
		}
		for j := range cols {
			boxLine(v[j:], cols, rows, r, tmp)
		}
	}
}

func boxLine(v []float64, stride, n, r int, tmp []float64) {
	var s float64
	for k := -r; k <= r; k++ {
		s += v[clampInt(k, 0, n-1)*stride]
	}
	w := 1 / float64(2*r+1)
	for k := range n {
		tmp[k] = s * w
		s += v[clampInt(k+r+1, 0, n-1)*stride] - v[clampInt(k-r, 0, n-1)*stride]
	}
	for k := range n {
		v[k*stride] = tmp[k]
	}
}

func kernel3(v []float64, rows, cols int, w float64) {
	out := make([]float64, len(v))
	for i := range rows {
		for j := range cols {
			c := v[i*cols+j]
			l, r := v[i*cols+clampInt(j-1, 0, cols-1)], v[i*cols+clampInt(j+1, 0, cols-1)]
			out[i*cols+j] = c*(1-2*w) + (l+r)*w
		}
	}
	for i := range rows {
		for j := range cols {
			u, d := out[clampInt(i-1, 0, rows-1)*cols+j], out[clampInt(i+1, 0, rows-1)*cols+j]
			v[i*cols+j] = out[i*cols+j]*(1-2*w) + (u+d)*w
		}
	}
}

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

// uniform draws from [lo, hi).
func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// pick draws an index with the given weights.
func pick(rng *rand.Rand, weights []float64) int {
	var total float64
	for _, w := range weights {
		total += w
	}
	u := rng.Float64() * total
	for i, w := range weights {
		if u < w {
			return i
		}
		u -= w
	}
	return len(weights) - 1
}
