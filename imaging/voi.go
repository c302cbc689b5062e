package imaging

import (
	"math"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// displayValues applies the modality rescale and the VOI transform to gray
// stored values and returns display values in [0,1] (1 = white) and which
// VOI was used. The order follows PS3.3 C.11: modality LUT (rescale), then
// VOI LUT Sequence if present, else the first window (WindowCenter/Width
// with VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID), else the image's own
// min-max; finally MONOCHROME1 is inverted. The transform is computed once
// per possible stored value (a lookup table) where the depth is at most 16
// bits, else once per pixel.
func displayValues(st Stored, s Stats, a attrs, m Metadata) ([]float32, string) {
	f, voi := displayTransform(st, s, a, m)
	out := make([]float32, st.Len())
	if lo, size, ok := st.lutRange(); ok && size <= 1<<16 {
		// The table covers the values the frame holds (s is its Stats),
		// not every value its bits could hold: 2^16 entries cost as much
		// as looking up a small radiograph.
		from, to := int64(s.StoredMin)-lo, int64(s.StoredMax)-lo
		if from < 0 || to >= int64(size) || from > to {
			from, to = 0, int64(size)-1
		}
		lut := make([]float32, to-from+1)
		for i := range lut {
			lut[i] = float32(f(lo + from + int64(i)))
		}
		st.applyLUT(lut, uint32(from), out)
		return out, voi
	}
	st.each(func(i int, v int64) { out[i] = float32(f(v)) })
	return out, voi
}

// displayTransform is the function of one stored value that displayValues
// applies.
func displayTransform(st Stored, s Stats, a attrs, m Metadata) (func(int64) float64, string) {
	if !strings.HasPrefix(m.Photometric, "MONOCHROME") {
		maxVal := float64(int64(1)<<st.bits - 1)
		return func(v int64) float64 { return clamp01(float64(v) / maxVal) }, "none"
	}
	slope, intercept := rescale(a)
	mod := func(v int64) float64 { return slope*float64(v) + intercept }
	voiFn, voi := voiLUT(a)
	if voiFn == nil {
		voiFn, voi = window(a)
	}
	if voiFn == nil {
		lo, hi := mod(int64(s.StoredMin)), mod(int64(s.StoredMax))
		lo, hi = math.Min(lo, hi), math.Max(lo, hi)
		voiFn, voi = func(x float64) float64 {
			if hi > lo {
				return (x - lo) / (hi - lo)
			}
			return 0
		}, "min-max"
	}
	invert := m.Photometric == "MONOCHROME1"
	return func(v int64) float64 {
		y := voiFn(mod(v))
		if invert {
			y = 1 - y
		}
		return y
	}, voi
}

// voiLUT returns the first item of the VOI LUT Sequence as a function, or
// nil.
func voiLUT(a attrs) (func(float64) float64, string) {
	items := a.sequenceItems(tag.VOILUTSequence)
	if len(items) == 0 {
		return nil, ""
	}
	desc := items[0].uint16s(tag.LUTDescriptor)
	data := items[0].uint16s(tag.LUTData)
	if len(desc) != 3 || len(data) == 0 {
		return nil, ""
	}
	entries, first, bits := desc[0], desc[1], desc[2]
	if entries == 0 {
		entries = 65536 // PS3.3 C.11.2.1.1: 0 means 2^16
	}
	if first >= 32768 {
		first -= 65536 // the first mapped value may be signed
	}
	if bits < 8 || bits > 16 || len(data) < entries {
		return nil, ""
	}
	top := float64(int(1)<<bits - 1)
	return func(x float64) float64 {
		idx := int(math.Round(x)) - first
		idx = max(0, min(entries-1, idx))
		return clamp01(float64(data[idx]) / top)
	}, "voi-lut"
}

// window returns the first WindowCenter/WindowWidth pair as a function, or
// nil.
func window(a attrs) (func(float64) float64, string) {
	cs, ws := a.floats(tag.WindowCenter), a.floats(tag.WindowWidth)
	if len(cs) == 0 || len(ws) == 0 {
		return nil, ""
	}
	c, w := cs[0], ws[0]
	fn := strings.ToUpper(a.str(tag.VOILUTFunction))
	switch fn {
	case "LINEAR_EXACT", "SIGMOID":
		if !(w > 0) {
			return nil, ""
		}
	default:
		if !(w >= 1) {
			return nil, ""
		}
	}
	return func(x float64) float64 {
		var y float64
		switch fn {
		case "LINEAR_EXACT": // C.11.2.1.3.2
			y = (x-c)/w + 0.5
		case "SIGMOID": // C.11.2.1.3.1
			y = 1 / (1 + math.Exp(-4*(x-c)/w))
		default: // LINEAR, C.11.2.1.2.1
			y = (x-(c-0.5))/(w-1) + 0.5
		}
		return clamp01(y)
	}, "window"
}

func clamp01(v float64) float64 {
	switch {
	case v < 0 || math.IsNaN(v):
		return 0
	case v > 1:
		return 1
	}
	return v
}
