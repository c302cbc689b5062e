package inference

import (
	"math"

	"golang.org/x/image/draw"
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
	tmp            []float64 // dw x sh gray after the horizontal pass
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
		tmp: make([]float64, dw*sh), tmpA: make([]float64, dw)}
}

// resize maps src (sw x sh, row major) to dst (dw x dh).
func (z *kernelResizer) resize(dst, src []uint16) {
	for x, s := range z.horizontal.sources {
		var pa float64
		for _, c := range z.horizontal.contribs[s.i:s.j] {
			pa += float64(float64(0xffff) * c.weight)
		}
		z.tmpA[x] = pa * s.invFFFF
	}
	t := 0
	for y := range z.sh {
		row := src[y*z.sw : (y+1)*z.sw]
		for _, s := range z.horizontal.sources {
			var pr float64
			for _, c := range z.horizontal.contribs[s.i:s.j] {
				pr += float64(float64(row[c.coord]) * c.weight)
			}
			z.tmp[t] = pr * s.invFFFF
			t++
		}
	}
	for dx := range z.dw {
		for dy, s := range z.vertical.sources {
			var pr, pa float64
			for _, c := range z.vertical.contribs[s.i:s.j] {
				pr += float64(z.tmp[c.coord*z.dw+dx] * c.weight)
				pa += float64(z.tmpA[dx] * c.weight)
			}
			if pr > pa {
				pr = pa
			}
			dst[dy*z.dw+dx] = ftou(pr * s.inv)
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
