package inference

import (
	"math"
	"runtime"
	"sync"

	"golang.org/x/image/draw"

	"github.com/orthotriage/orthotriage/internal/parallel"
)

// kernelResizer resizes one-channel 16-bit images with a draw.Kernel and
// gives exactly what draw.Kernel.Scale gives for an *image.Gray16 source and
// destination (same weights, same float64 operations in the same order, same
// rounding; TestResizeMatchesXImageDraw checks it bit for bit), without the
// per-pixel interface calls of x/image/draw's generic path, which made the
// crops the slowest stage after decoding.
type kernelResizer struct {
	dw, dh, sw, sh int
	horizontal     distribution
	vertical       distribution
	tmp            []float64 // dw x sh gray after the horizontal pass, during resizeRows
	tmpA           []float64 // the alpha of each tmp column (the source is opaque)
}

type kernelSource struct {
	i, j         int
	inv, invFFFF float64
}

type kernelContrib struct {
	coord  int
	weight float64
}

type distribution struct {
	sources  []kernelSource
	contribs []kernelContrib
}

// newDistribution follows x/image/draw's newDistrib.
func newDistribution(q *draw.Kernel, dw, sw int) distribution {
	scale := float64(sw) / float64(dw)
	halfWidth, kernelArgScale := q.Support, 1.0
	if scale > 1 {
		halfWidth *= scale
		kernelArgScale = 1 / scale
	}
	type span struct {
		i, j   int
		center float64
	}
	spans := make([]span, dw)
	for x := range spans {
		center := float64((float64(x)+0.5)*scale) - 0.5
		i := int(math.Floor(center - halfWidth))
		if i < 0 {
			i = 0
		}
		j := int(math.Ceil(center + halfWidth))
		if j > sw {
			j = sw
			if j < i {
				j = i
			}
		}
		spans[x] = span{i, j, center}
	}
	d := distribution{sources: make([]kernelSource, dw)}
	for k, b := range spans {
		totalWeight := 0.0
		l := len(d.contribs)
		for coord := b.i; coord < b.j; coord++ {
			t := (b.center - float64(coord)) * kernelArgScale
			if t < 0 {
				t = -t
			}
			if t >= q.Support {
				continue
			}
			weight := q.At(t)
			if weight == 0 {
				continue
			}
			totalWeight += weight
			d.contribs = append(d.contribs, kernelContrib{coord, weight})
		}
		totalWeight = 1 / totalWeight
		d.sources[k] = kernelSource{i: l, j: len(d.contribs), inv: totalWeight, invFFFF: totalWeight / 0xffff}
	}
	return d
}

func newKernelResizer(q *draw.Kernel, dw, dh, sw, sh int) *kernelResizer {
	return &kernelResizer{dw: dw, dh: dh, sw: sw, sh: sh,
		horizontal: newDistribution(q, dw, sw), vertical: newDistribution(q, dh, sh),
		tmpA: make([]float64, dw)}
}

// rowLoader writes source row y (sw 16-bit values, as float64) into row.
// It is called from several goroutines at once, for different rows.
type rowLoader func(y int, row []float64)

// resizeRows maps the sw x sh source that load reads to dst (dw x dh). A
// large image (a whole radiograph into a localiser's input) is shared out
// by rows among up to GOMAXPROCS goroutines; every pixel is computed as it
// would be alone, so the result does not depend on how it was shared.
func (z *kernelResizer) resizeRows(dst []uint16, load rowLoader) {
	// The horizontal pass writes every value of tmp, so a reused buffer
	// needs no clearing.
	buf := passBuffers.get(z.dw * z.sh)
	defer passBuffers.put(buf)
	z.tmp = *buf
	for x, s := range z.horizontal.sources {
		var pa float64
		for _, c := range z.horizontal.contribs[s.i:s.j] {
			pa += float64(float64(0xffff) * c.weight)
		}
		z.tmpA[x] = pa * s.invFFFF
	}
	work := len(z.horizontal.contribs)*z.sh + len(z.vertical.contribs)*z.dw
	parts := min(runtime.GOMAXPROCS(0), max(1, work/resizeWorkPerPart))
	inParts(z.sh, parts, func(y0, y1 int) { z.horizontalRows(load, y0, y1) })
	inParts(z.dh, parts, func(y0, y1 int) { z.verticalRows(dst, y0, y1) })
}

// passBuffers keeps the buffers between the two passes: a whole
// radiograph's is megabytes, and every image read makes one or more.
var passBuffers floatBuffers

// floatBuffers is a pool of float64 buffers.
type floatBuffers struct{ p sync.Pool }

// get is a buffer of n values, reused when the pool has one large enough.
func (b *floatBuffers) get(n int) *[]float64 {
	if buf, _ := b.p.Get().(*[]float64); buf != nil && cap(*buf) >= n {
		*buf = (*buf)[:n]
		return buf
	}
	buf := make([]float64, n)
	return &buf
}

func (b *floatBuffers) put(buf *[]float64) { b.p.Put(buf) }

// resizeWorkPerPart is about the multiply-adds worth a goroutine of its
// own (about a millisecond of the horizontal pass on this project's 2-core
// machine, BenchmarkResize).
const resizeWorkPerPart = 1 << 20

// inParts calls f on parts consecutive ranges covering [0, n), each in its
// own goroutine when there is more than one, and waits for them.
func inParts(n, parts int, f func(from, to int)) {
	if parts <= 1 || n < 2*parts {
		f(0, n)
		return
	}
	parallel.Ranges(n, parts, f)
}

// horizontalRows is the horizontal pass over source rows [y0, y1) into tmp.
// Four rows go together: they share each destination pixel's weights, and
// their four sums, each added up in x/image/draw's order, do not wait on
// one another (a single sum is bound by the latency of its additions). The
// four rows are held interleaved, so that one tap reads four neighbouring
// values.
func (z *kernelResizer) horizontalRows(load rowLoader, y0, y1 int) {
	// Each source pixel converted once, not once per use.
	row := make([]float64, z.sw)
	quad := make([]float64, 4*z.sw)
	contribs := z.horizontal.contribs
	y := y0
	for ; y+4 <= y1; y += 4 {
		for k := range 4 {
			load(y+k, row)
			for x, v := range row {
				quad[4*x+k] = v
			}
		}
		o0, o1, o2, o3 := z.tmp[y*z.dw:(y+1)*z.dw], z.tmp[(y+1)*z.dw:(y+2)*z.dw], z.tmp[(y+2)*z.dw:(y+3)*z.dw], z.tmp[(y+3)*z.dw:(y+4)*z.dw]
		o1, o2, o3 = o1[:len(o0)], o2[:len(o0)], o3[:len(o0)]
		for x, s := range z.horizontal.sources[:len(o0)] {
			var p0, p1, p2, p3 float64
			for _, c := range contribs[s.i:s.j] {
				q := quad[4*c.coord : 4*c.coord+4 : 4*c.coord+4]
				p0 += float64(q[0] * c.weight)
				p1 += float64(q[1] * c.weight)
				p2 += float64(q[2] * c.weight)
				p3 += float64(q[3] * c.weight)
			}
			o0[x], o1[x], o2[x], o3[x] = p0*s.invFFFF, p1*s.invFFFF, p2*s.invFFFF, p3*s.invFFFF
		}
	}
	for ; y < y1; y++ {
		load(y, row)
		out := z.tmp[y*z.dw : (y+1)*z.dw]
		for x, s := range z.horizontal.sources[:len(out)] {
			var pr float64
			for _, c := range contribs[s.i:s.j] {
				pr += float64(row[c.coord] * c.weight)
			}
			out[x] = pr * s.invFFFF
		}
	}
}

// verticalRows is the vertical pass into destination rows [y0, y1), a row
// at a time, reading tmp's rows whole rather than down its columns: each
// pixel's sums take the same terms in the same order as x/image/draw's, so
// the result is the same.
func (z *kernelResizer) verticalRows(dst []uint16, y0, y1 int) {
	pr, pa := make([]float64, z.dw), make([]float64, z.dw)
	for dy := y0; dy < y1; dy++ {
		s := z.vertical.sources[dy]
		clear(pr)
		clear(pa)
		for _, c := range z.vertical.contribs[s.i:s.j] {
			row := z.tmp[c.coord*z.dw : (c.coord+1)*z.dw]
			pr, pa, ta := pr[:len(row)], pa[:len(row)], z.tmpA[:len(row)]
			for dx, v := range row {
				pr[dx] += float64(v * c.weight)
				pa[dx] += float64(ta[dx] * c.weight)
			}
		}
		out := dst[dy*z.dw : (dy+1)*z.dw]
		for dx := range out {
			out[dx] = ftou(min(pr[dx], pa[dx]) * s.inv)
		}
	}
}

// ftou follows x/image/draw: [0,1] to [0, 0xffff], rounded and clamped.
func ftou(f float64) uint16 {
	i := int32(float64(0xffff*f) + 0.5)
	if i > 0xffff {
		return 0xffff
	}
	if i > 0 {
		return uint16(i)
	}
	return 0
}
