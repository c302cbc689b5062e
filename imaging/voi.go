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
// min-max; finally MONOCHROME1 is inverted.
func displayValues(gray []int32, a attrs, m Metadata) ([]float32, string) {
	slope, intercept := 1.0, 0.0
	if m.SamplesPerPixel == 1 && strings.HasPrefix(m.Photometric, "MONOCHROME") {
		if s := a.floats(tag.RescaleSlope); len(s) > 0 && s[0] != 0 && !math.IsNaN(s[0]) && !math.IsInf(s[0], 0) {
			slope = s[0]
		}
		if i := a.floats(tag.RescaleIntercept); len(i) > 0 && !math.IsNaN(i[0]) && !math.IsInf(i[0], 0) {
			intercept = i[0]
		}
	}
	mod := make([]float64, len(gray))
	for i, v := range gray {
		mod[i] = slope*float64(v) + intercept
	}
	out := make([]float32, len(gray))
	voi := "min-max"
	switch {
	case !strings.HasPrefix(m.Photometric, "MONOCHROME"):
		voi = "none"
		maxVal := float64(int(1)<<m.BitsStored - 1)
		for i, v := range mod {
			out[i] = float32(clamp01(v / maxVal))
		}
	case applyVOILUT(a, mod, out):
		voi = "voi-lut"
	case applyWindow(a, mod, out):
		voi = "window"
	default:
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range mod {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		for i, v := range mod {
			if hi > lo {
				out[i] = float32((v - lo) / (hi - lo))
			}
		}
	}
	if m.Photometric == "MONOCHROME1" {
		for i, v := range out {
			out[i] = 1 - v
		}
	}
	return out, voi
}

// applyVOILUT applies the first item of the VOI LUT Sequence.
func applyVOILUT(a attrs, mod []float64, out []float32) bool {
	items := a.sequenceItems(tag.VOILUTSequence)
	if len(items) == 0 {
		return false
	}
	desc := items[0].uint16s(tag.LUTDescriptor)
	data := items[0].uint16s(tag.LUTData)
	if len(desc) != 3 || len(data) == 0 {
		return false
	}
	entries, first, bits := desc[0], desc[1], desc[2]
	if entries == 0 {
		entries = 65536 // PS3.3 C.11.2.1.1: 0 means 2^16
	}
	if first >= 32768 {
		first -= 65536 // the first mapped value may be signed
	}
	if bits < 8 || bits > 16 || len(data) < entries {
		return false
	}
	top := float64(int(1)<<bits - 1)
	for i, v := range mod {
		idx := int(math.Round(v)) - first
		idx = max(0, min(entries-1, idx))
		out[i] = float32(clamp01(float64(data[idx]) / top))
	}
	return true
}

// applyWindow applies the first WindowCenter/WindowWidth pair.
func applyWindow(a attrs, mod []float64, out []float32) bool {
	cs, ws := a.floats(tag.WindowCenter), a.floats(tag.WindowWidth)
	if len(cs) == 0 || len(ws) == 0 {
		return false
	}
	c, w := cs[0], ws[0]
	fn := strings.ToUpper(a.str(tag.VOILUTFunction))
	switch fn {
	case "LINEAR_EXACT", "SIGMOID":
		if !(w > 0) {
			return false
		}
	default:
		if !(w >= 1) {
			return false
		}
	}
	for i, x := range mod {
		var y float64
		switch fn {
		case "LINEAR_EXACT": // C.11.2.1.3.2
			y = (x-c)/w + 0.5
		case "SIGMOID": // C.11.2.1.3.1
			y = 1 / (1 + math.Exp(-4*(x-c)/w))
		default: // LINEAR, C.11.2.1.2.1
			y = (x-(c-0.5))/(w-1) + 0.5
		}
		out[i] = float32(clamp01(y))
	}
	return true
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
