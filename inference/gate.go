package inference

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Gate are the thresholds of the image gate: what an image must be before
// a model reads it (analysis.Gate applies them). Absent or zero fields take
// the defaults of DefaultGate.
type Gate struct {
	// Modalities are the DICOM modalities read (an image without the tag
	// is read); default CR, DX, DR, RG.
	Modalities []string `json:"modalities,omitempty"`
	// Views are the View Position values read (an image without the tag is
	// read); default AP, PA for hips and LATERAL, LL, RL, LAT, LLAT, RLAT for
	// spines.
	Views []string `json:"views,omitempty"`
	// MinStd: an image whose display values' standard deviation is below
	// it is blank or has no usable contrast; default 0.06 (held-out
	// clinical-variation phantoms: 0.089 and up; heavily under- or
	// over-exposed pelvis phantoms: 0.048 and below).
	MinStd float64 `json:"minStd,omitempty"`
	// MinRange: an image whose 1st-99th percentile range of display values
	// is below it is blank; default 0.1.
	MinRange float64 `json:"minRange,omitempty"`
	// MaxClipped: an image with more than this share of its pixels black
	// (display value <= 0.02) or more than this share white (>= 0.98) is
	// under- or over-exposed; default 0.8.
	MaxClipped float64 `json:"maxClipped,omitempty"`
	// MinCorrelation: an image whose neighbouring pixels correlate less
	// than this is noise, not a radiograph; default 0.5.
	MinCorrelation float64 `json:"minCorrelation,omitempty"`
	// MinPelvis: with a hip localiser, the pelvis presence an AP pelvis
	// must reach; default the localiser's minPresence.
	MinPelvis float64 `json:"minPelvis,omitempty"`
	// MinLevels: a lateral spine must have at least this many vertebral
	// levels localised; default 1 (a lateral spine with none keeps its info card
	// "no vertebral body could be localised").
	MinLevels int `json:"minLevels,omitempty"`
}

// Default views by task.
var (
	hipViews       = []string{"AP", "PA"}
	vertebralViews = []string{"LATERAL", "LL", "RL", "LAT", "LLAT", "RLAT"}
)

// DefaultGate is the gate of a manifest without a gate block.
func DefaultGate(task string) Gate {
	g := Gate{Modalities: []string{"CR", "DX", "DR", "RG"}, MinStd: 0.06, MinRange: 0.1, MaxClipped: 0.8, MinCorrelation: 0.5, MinLevels: 1}
	if task == TaskVertebral {
		g.Views = vertebralViews
	} else {
		g.Views = hipViews
	}
	return g
}

// GateThresholds is the manifest's gate with the defaults filled in.
func (m *Manifest) GateThresholds() Gate {
	g := DefaultGate(m.Task)
	if o := m.Gate; o != nil {
		if len(o.Modalities) > 0 {
			g.Modalities = o.Modalities
		}
		if len(o.Views) > 0 {
			g.Views = o.Views
		}
		for _, f := range []struct{ dst, src *float64 }{{&g.MinStd, &o.MinStd}, {&g.MinRange, &o.MinRange},
			{&g.MaxClipped, &o.MaxClipped}, {&g.MinCorrelation, &o.MinCorrelation}, {&g.MinPelvis, &o.MinPelvis}} {
			if *f.src != 0 {
				*f.dst = *f.src
			}
		}
		if o.MinLevels != 0 {
			g.MinLevels = o.MinLevels
		}
	}
	if g.MinPelvis == 0 && m.Preprocess.Localiser != nil {
		g.MinPelvis = m.Preprocess.Localiser.MinPresence
	}
	return g
}

func (g *Gate) validate(bad badFunc) {
	for i, v := range append(slices.Clone(g.Modalities), g.Views...) {
		if v == "" || v != strings.ToUpper(strings.TrimSpace(v)) {
			bad("gate", "modality or view %d %q must be an upper-case DICOM code", i, v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"minStd", g.MinStd}, {"minRange", g.MinRange}, {"maxClipped", g.MaxClipped}, {"minCorrelation", g.MinCorrelation}, {"minPelvis", g.MinPelvis}} {
		if !(f.v >= 0 && f.v <= 1) {
			bad("gate."+f.name, "%v outside [0,1] (0: the default)", f.v)
		}
	}
	if g.MinLevels < 0 || g.MinLevels > 64 {
		bad("gate.minLevels", "%d outside 0-64 (0: the default)", g.MinLevels)
	}
}

// Quality are the cheap image statistics the gate reads, on the display
// values in [0,1] (NaN counts as 0) of a grid of at most about 512 x 512
// of the image's pixels.
type Quality struct {
	Std    float64 `json:"std"`    // standard deviation
	Range  float64 `json:"range"`  // 99th minus 1st percentile
	Dark   float64 `json:"dark"`   // share <= 0.02
	Bright float64 `json:"bright"` // share >= 0.98
	// Correlation is that of each sampled pixel with its right and lower
	// neighbours (1 for a smooth image, about 0 for independent noise;
	// 0 for a uniform image).
	Correlation float64 `json:"correlation"`
}

// MeasureQuality computes an image's Quality.
func MeasureQuality(pixels []float32, rows, cols int) (Quality, error) {
	if !holds(pixels, rows, cols) {
		return Quality{}, fmt.Errorf("inference: %d pixels for %dx%d", len(pixels), cols, rows)
	}
	step := max(1, max(rows, cols)/512)
	var hist [256]int
	var n, dark, bright int
	var sum, sum2, pairs, sa, sb, saa, sbb, sab float64
	for y := 0; y < rows; y += step {
		row := pixels[y*cols : (y+1)*cols]
		var below []float32 // the next row, for the lower neighbours
		if y+1 < rows {
			below = pixels[(y+1)*cols : (y+2)*cols]
		}
		for x := 0; x < cols; x += step {
			v := unit(row[x])
			n++
			sum += v
			sum2 += v * v
			hist[min(255, int(v*256))]++
			if v <= 0.02 {
				dark++
			}
			if v >= 0.98 {
				bright++
			}
			// The same pairs in the same order as ever: right, then lower.
			if x+1 < cols {
				w := unit(row[x+1])
				pairs++
				sa, sb, saa, sbb, sab = sa+v, sb+w, saa+v*v, sbb+w*w, sab+v*w
			}
			if below != nil {
				w := unit(below[x])
				pairs++
				sa, sb, saa, sbb, sab = sa+v, sb+w, saa+v*v, sbb+w*w, sab+v*w
			}
		}
	}
	q := Quality{Dark: float64(dark) / float64(n), Bright: float64(bright) / float64(n)}
	mean := sum / float64(n)
	q.Std = math.Sqrt(math.Max(0, sum2/float64(n)-mean*mean))
	q.Range = percentile(hist[:], n, 0.99) - percentile(hist[:], n, 0.01)
	if pairs > 0 {
		cov := sab/pairs - sa/pairs*sb/pairs
		va, vb := saa/pairs-sa/pairs*sa/pairs, sbb/pairs-sb/pairs*sb/pairs
		if va > 1e-12 && vb > 1e-12 {
			q.Correlation = cov / math.Sqrt(va*vb)
		}
	}
	return q, nil
}

// unit is a display value clamped to [0,1], NaN as 0, for every sampled
// pixel of the gate and the rotated crops. Plain comparisons: math.Min,
// with its NaN and signed-zero cases, took about 8% of reading a pelvis.
func unit(p float32) float64 {
	v := float64(p)
	if !(v > 0) {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// percentile is the lower edge of the histogram bin holding quantile p.
func percentile(hist []int, n int, p float64) float64 {
	want := int(math.Ceil(p * float64(n)))
	seen := 0
	for i, c := range hist {
		if seen += c; seen >= max(1, want) {
			return float64(i) / float64(len(hist))
		}
	}
	return 1
}
