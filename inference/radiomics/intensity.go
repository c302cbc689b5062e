package radiomics

import (
	"math"
	"slices"
)

// moments returns mean, variance (biased, as IBSI), skewness and excess
// kurtosis of v.
func moments(v []float64) (mu, variance, skew, kurt float64) {
	n := float64(len(v))
	for _, x := range v {
		mu += x
	}
	mu /= n
	var m2, m3, m4 float64
	for _, x := range v {
		d := x - mu
		m2 += d * d
		m3 += d * d * d
		m4 += d * d * d * d
	}
	m2, m3, m4 = m2/n, m3/n, m4/n
	if m2 > 0 {
		skew = m3 / math.Pow(m2, 1.5)
		kurt = m4/(m2*m2) - 3
	}
	return mu, m2, skew, kurt
}

// percentile is the p-th percentile (0..100) of sorted values, linearly
// interpolated between closest ranks (the common definition, R type 7).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	h := (float64(len(sorted)) - 1) * p / 100
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-lo)*(sorted[i+1]-sorted[i])
}

// dispersion are the shared location and spread features of intensity
// statistics and of the discretised histogram, under the given names.
func dispersion(v []float64, names [16]string) Features {
	s := slices.Sorted(slices.Values(v))
	mu, variance, skew, kurt := moments(v)
	p10, p25, p50, p75, p90 := percentile(s, 10), percentile(s, 25), percentile(s, 50), percentile(s, 75), percentile(s, 90)
	var mad, rmad, medad float64
	var nr int
	for _, x := range v {
		mad += math.Abs(x - mu)
		medad += math.Abs(x - p50)
	}
	var rmu float64
	for _, x := range v {
		if x >= p10 && x <= p90 {
			rmu += x
			nr++
		}
	}
	if nr > 0 { // none when two values straddle the interpolated percentiles
		rmu /= float64(nr)
		for _, x := range v {
			if x >= p10 && x <= p90 {
				rmad += math.Abs(x - rmu)
			}
		}
		rmad /= float64(nr)
	}
	n := float64(len(v))
	f := Features{
		names[0]: mu, names[1]: variance, names[2]: skew, names[3]: kurt,
		names[4]: p50, names[5]: s[0], names[6]: p10, names[7]: p90, names[8]: s[len(s)-1],
		names[9]: p75 - p25, names[10]: s[len(s)-1] - s[0],
		names[11]: mad / n, names[12]: rmad, names[13]: medad / n,
	}
	if mu != 0 {
		f[names[14]] = math.Sqrt(variance) / mu
	}
	if p75+p25 != 0 {
		f[names[15]] = (p75 - p25) / (p75 + p25)
	}
	return f
}

var intensityNames = [16]string{
	"Mean intensity", "Intensity variance", "Intensity skewness", "(Excess) intensity kurtosis",
	"Median intensity", "Minimum intensity", "10th intensity percentile", "90th intensity percentile", "Maximum intensity",
	"Intensity interquartile range", "Intensity range",
	"Intensity-based mean absolute deviation", "Intensity-based robust mean absolute deviation", "Intensity-based median absolute deviation",
	"Intensity-based coefficient of variation", "Intensity-based quartile coefficient of dispersion",
}

// Intensity returns the IBSI intensity-based statistical features of the
// ROI over the given slices (they do not depend on where pixels are).
func Intensity(slices ...Slice) (Features, error) {
	v, err := roiValues(slices)
	if err != nil {
		return nil, err
	}
	f := dispersion(v, intensityNames)
	var energy float64
	for _, x := range v {
		energy += x * x
	}
	f["Intensity-based energy"] = energy
	f["Root mean square intensity"] = math.Sqrt(energy / float64(len(v)))
	return f, nil
}

var histogramNames = [16]string{
	"Mean discretised intensity", "Discretised intensity variance", "Discretised intensity skewness", "(Excess) discretised intensity kurtosis",
	"Median discretised intensity", "Minimum discretised intensity", "10th discretised intensity percentile", "90th discretised intensity percentile", "Maximum discretised intensity",
	"Discretised intensity interquartile range", "Discretised intensity range",
	"Intensity histogram mean absolute deviation", "Intensity histogram robust mean absolute deviation", "Intensity histogram median absolute deviation",
	"Intensity histogram coefficient of variation", "Intensity histogram quartile coefficient of dispersion",
}

// Histogram returns the IBSI intensity histogram features of discretised
// slices (grey levels 1..Ng, Ng the largest Levels).
func Histogram(ds ...Discrete) (Features, error) {
	var v []float64
	ng := 0
	for _, d := range ds {
		if err := d.check(); err != nil {
			return nil, err
		}
		ng = max(ng, d.Levels)
		for _, g := range d.Grey {
			if g > 0 {
				v = append(v, float64(g))
			}
		}
	}
	if len(v) == 0 {
		return nil, ErrEmptyROI
	}
	f := dispersion(v, histogramNames)
	h := make([]float64, ng+2) // h[1..ng]
	for _, x := range v {
		h[int(x)]++
	}
	n := float64(len(v))
	mu := f[histogramNames[0]]
	var entropy, uniformity float64
	mode := 1
	for i := 1; i <= ng; i++ {
		p := h[i] / n
		entropy -= plog2p(p)
		uniformity += p * p
		// IBSI: among equally high bins, the one nearest the mean; of two
		// equally near, the lower.
		if h[i] > h[mode] || (h[i] == h[mode] && math.Abs(float64(i)-mu) < math.Abs(float64(mode)-mu)) {
			mode = i
		}
	}
	f["Intensity histogram mode"] = float64(mode)
	f["Discretised intensity entropy"] = entropy
	f["Discretised intensity uniformity"] = uniformity
	// Gradient: one-sided at the ends, central inside.
	grad := func(i int) float64 {
		switch {
		case ng == 1:
			return 0
		case i == 1:
			return h[2] - h[1]
		case i == ng:
			return h[ng] - h[ng-1]
		}
		return (h[i+1] - h[i-1]) / 2
	}
	maxI, minI := 1, 1
	for i := 1; i <= ng; i++ {
		if grad(i) > grad(maxI) {
			maxI = i
		}
		if grad(i) < grad(minI) {
			minI = i
		}
	}
	f["Maximum histogram gradient"], f["Maximum histogram gradient intensity"] = grad(maxI), float64(maxI)
	f["Minimum histogram gradient"], f["Minimum histogram gradient intensity"] = grad(minI), float64(minI)
	return f, nil
}
