package phantom

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"

	"github.com/orthotriage/orthotriage/imaging"
)

// SOP classes of the generated images.
const (
	sopDX = "1.2.840.10008.5.1.4.1.1.1.1" // Digital X-Ray Image Storage - For Presentation
	sopCR = "1.2.840.10008.5.1.4.1.1.1"   // Computed Radiography Image Storage
)

// layers are the attenuation maps of one image before the detector.
type layers struct {
	soft, bone, metal *canvas
}

func newLayers(rows, cols int, spacing float64, p pose) layers {
	mk := func() *canvas {
		c := newCanvas(rows, cols, spacing, vec{}, p.theta, p.shift)
		c.zoom = p.zoom
		return c
	}
	return layers{soft: mk(), bone: mk(), metal: mk()}
}

// detector holds the acquisition settings drawn for one image.
type detector struct {
	bits        int
	mono1       bool
	modality    string
	slope       float64
	intercept   float64
	window      bool
	noise       float64    // quantum noise, fraction of full scale
	gamma       float64    // contrast
	a0          float64    // attenuation at which the response reaches 63%
	heel        float64    // exposure gradient across the image
	blur        float64    // detector blur, pixels
	texture     float64    // trabecular texture strength
	collimation [4]float64 // margins at the left, right, top and bottom edges, fractions of the field
	dose        float64    // relative to the default exposure (1)
}

func newDetector(rng *rand.Rand) detector {
	d := detector{
		bits:     []int{12, 14, 16}[rng.IntN(3)],
		mono1:    rng.Float64() < 0.4,
		modality: "DX",
		slope:    1, intercept: 0,
		window:  rng.Float64() < 0.85,
		noise:   uniform(rng, 0.006, 0.022),
		gamma:   uniform(rng, 0.8, 1.25),
		a0:      uniform(rng, 18, 26),
		heel:    uniform(rng, -0.08, 0.08),
		blur:    uniform(rng, 0.5, 1.1),
		texture: uniform(rng, 0.08, 0.16),
		dose:    1,
	}
	if rng.Float64() < 0.35 {
		d.modality = "CR"
	}
	switch rng.IntN(3) {
	case 1:
		d.slope, d.intercept = 0.5, -512
	case 2:
		d.slope, d.intercept = 2, 100
	}
	for k := range d.collimation {
		if rng.Float64() < 0.6 {
			d.collimation[k] = uniform(rng, 0.01, 0.07)
		}
	}
	return d
}

// expose turns the attenuation layers into stored detector values.
func (d detector) expose(rng *rand.Rand, l layers) imaging.Radiograph {
	rows, cols := l.soft.rows, l.soft.cols
	tex := noiseField(rng, rows, cols, 1.3/l.soft.spacing)
	a := make([]float64, rows*cols)
	for i := range a {
		a[i] = l.soft.a[i] + l.bone.a[i]*(1+d.texture*tex[i]) + l.metal.a[i]
	}
	blur(a, rows, cols, d.blur)
	maxV := float64(int(1)<<d.bits - 1)
	stored := make([]int, rows*cols)
	c := d.collimation
	for i := range rows {
		fy := (float64(i) + 0.5) / float64(rows)
		for j := range cols {
			fx := (float64(j) + 0.5) / float64(cols)
			k := i*cols + j
			s := 1 - math.Exp(-a[k]/d.a0)
			if d.dose != 1 {
				// A different dose scales the transmitted beam: more burns
				// out soft tissue, less compresses contrast towards white.
				s = 1 - math.Min(1, d.dose*math.Exp(-a[k]/d.a0))
			}
			s = math.Pow(math.Max(s, 0), d.gamma) * (1 + d.heel*(fy-0.5))
			// Outside the collimator the detector sees almost no beam, which
			// displays as bright as dense bone.
			open := smoothstep(c[0]-0.004, c[0]+0.004, fx) * smoothstep(c[1]-0.004, c[1]+0.004, 1-fx) *
				smoothstep(c[2]-0.004, c[2]+0.004, fy) * smoothstep(c[3]-0.004, c[3]+0.004, 1-fy)
			s = open*s + (1-open)*0.9
			s += d.noise * math.Sqrt(0.3+s) * rng.NormFloat64()
			v := 0.04 + 0.92*math.Max(0, math.Min(1, s))
			q := math.Round(v * maxV)
			if d.mono1 {
				q = maxV - q
			}
			stored[k] = int(q)
		}
	}
	r := imaging.Radiograph{
		Rows: rows, Columns: cols, Stored: stored, BitsStored: d.bits,
		Photometric: "MONOCHROME2", RescaleSlope: d.slope, RescaleIntercept: d.intercept,
		PixelSpacing: [2]float64{l.soft.spacing, l.soft.spacing}, Modality: d.modality, SOPClassUID: sopDX,
	}
	if d.mono1 {
		r.Photometric = "MONOCHROME1"
	}
	if d.modality == "CR" {
		r.SOPClassUID = sopCR
	} else {
		r.ImagerPixelSpacing = rng.Float64() < 0.5
	}
	if d.window {
		// The window a modality would set: the 1st to 99th percentile of the
		// exposed field, in rescaled units.
		sorted := slices.Clone(stored)
		slices.Sort(sorted)
		lo := float64(sorted[len(sorted)/100])*d.slope + d.intercept
		hi := float64(sorted[len(sorted)*99/100])*d.slope + d.intercept
		r.WindowCenter = []float64{math.Round((lo + hi) / 2)}
		r.WindowWidth = []float64{math.Max(2, math.Round((hi-lo)*1.1))}
		if rng.Float64() < 0.3 {
			// A second, narrower bone window as many modalities add.
			r.WindowCenter = append(r.WindowCenter, r.WindowCenter[0])
			r.WindowWidth = append(r.WindowWidth, math.Max(2, math.Round(r.WindowWidth[0]*0.7)))
		}
		if rng.Float64() < 0.2 {
			r.VOILUTFunction = "SIGMOID"
		}
	}
	return r
}

// uid derives a DICOM UID under the 2.25 root (a UUID as a decimal
// integer) from the generator, so reruns give the same UIDs.
func uid(rng *rand.Rand) string {
	hi, lo := rng.Uint64(), rng.Uint64()
	hi = hi&^(0xf<<12) | 4<<12 // UUID version 4 layout
	lo = lo&^(3<<62) | 2<<62
	n := new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
	n.Or(n, new(big.Int).SetUint64(lo))
	return "2.25." + n.String()
}

// caseRNG is the generator of case i of a run seeded by seed.
func caseRNG(seed uint64, kind string, i int) *rand.Rand {
	k := uint64(0x9e3779b97f4a7c15)
	for _, b := range []byte(kind) {
		k = (k ^ uint64(b)) * 0x100000001b3
	}
	return rand.New(rand.NewPCG(seed^k, uint64(i)))
}

func caseID(kind string, seed uint64, i int) string {
	return fmt.Sprintf("%s-%d-%05d", kind, seed, i)
}
