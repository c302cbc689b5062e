package evaluate

import (
	"encoding/json"
	"math"
)

// BinaryReport adds, for a two-class model, the AUC with DeLong's 95%
// interval and the decision curve.
type BinaryReport struct {
	AUC      Estimate     `json:"auc"`                     // the interval is DeLong's: null, with the reason, with fewer than two cases of a class
	Decision []NetBenefit `json:"decisionCurve,omitempty"` // none without cases
}

// NetBenefit is one point of a decision curve: at threshold probability
// Threshold, the model's net benefit and that of treating everyone.
type NetBenefit struct {
	Threshold float64 `json:"threshold"`
	Model     float64 `json:"model"`
	TreatAll  float64 `json:"treatAll"`
}

// Binary computes the binary figures for the positive class.
func Binary(cases []Case, positive int) *BinaryReport {
	pos, neg := scores(cases, positive)
	auc, se := DeLong(pos, neg)
	r := &BinaryReport{AUC: Estimate{Value: auc, CI95: [2]float64{math.Max(0, auc-1.959964*se), math.Min(1, auc+1.959964*se)}}}
	switch {
	case len(pos) == 0 || len(neg) == 0:
		r.AUC.Reason = undefinedOneClass
	case len(pos) < 2 || len(neg) < 2:
		r.AUC.Reason = "ci95 undefined: fewer than two cases of a class"
	}
	if len(cases) == 0 {
		return r
	}
	n := float64(len(cases))
	prev := float64(len(pos)) / n
	for t := 1; t <= 19; t++ {
		pt := float64(t) / 20
		var tp, fp float64
		for _, v := range pos {
			if v >= pt {
				tp++
			}
		}
		for _, v := range neg {
			if v >= pt {
				fp++
			}
		}
		odds := pt / (1 - pt)
		r.Decision = append(r.Decision, NetBenefit{Threshold: pt, Model: tp/n - fp/n*odds, TreatAll: prev - (1-prev)*odds})
	}
	return r
}

// DeLong returns the AUC of scores of positives against negatives and its
// standard error by DeLong, DeLong and Clarke-Pearson (1988): the variance
// is S10/m + S01/n from the structural components of each case.
func DeLong(pos, neg []float64) (auc, se float64) {
	m, n := len(pos), len(neg)
	if m < 2 || n < 2 {
		return mannWhitney(pos, neg), math.NaN()
	}
	v10, v01, auc := components(pos, neg)
	return auc, math.Sqrt(covariance(v10, v10)/float64(m) + covariance(v01, v01)/float64(n))
}

// components are DeLong's structural components: for each positive the
// share of negatives it outscores (ties half), for each negative the share
// of positives that outscore it, and the AUC, their mean.
func components(pos, neg []float64) (v10, v01 []float64, auc float64) {
	m, n := len(pos), len(neg)
	v10, v01 = make([]float64, m), make([]float64, n)
	for i, x := range pos {
		for j, y := range neg {
			var s float64
			switch {
			case x > y:
				s = 1
			case x == y:
				s = 0.5
			}
			v10[i] += s
			v01[j] += s
		}
	}
	for i := range v10 {
		v10[i] /= float64(n)
		auc += v10[i]
	}
	for j := range v01 {
		v01[j] /= float64(m)
	}
	return v10, v01, auc / float64(m)
}

// covariance is the sample covariance of two equally long series.
func covariance(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma, mb = ma/float64(len(a)), mb/float64(len(b))
	var s float64
	for i := range a {
		s += (a[i] - ma) * (b[i] - mb)
	}
	return s / float64(len(a)-1)
}

// Comparison is DeLong's test of two correlated AUCs (two scores of the
// same cases).
type Comparison struct {
	AUCA, AUCB float64
	Diff       float64 // AUCA - AUCB
	SE         float64 // of the difference
	Z, P       float64 // two-sided p; 1 when the scores rank the cases alike
}

// MarshalJSON writes the camelCase keys aucA, aucB, diff, se, z and p;
// undefined figures (NaN: fewer than two positives or negatives) are null,
// with the reason.
func (c Comparison) MarshalJSON() ([]byte, error) {
	var reason string
	for _, v := range []float64{c.AUCA, c.AUCB, c.Diff, c.SE, c.Z, c.P} {
		if !finite(v) {
			reason = "undefined: the test needs at least two cases of each class"
		}
	}
	return json.Marshal(struct {
		AUCA   any    `json:"aucA"`
		AUCB   any    `json:"aucB"`
		Diff   any    `json:"diff"`
		SE     any    `json:"se"`
		Z      any    `json:"z"`
		P      any    `json:"p"`
		Reason string `json:"reason,omitempty"`
	}{jsonNumber(c.AUCA), jsonNumber(c.AUCB), jsonNumber(c.Diff), jsonNumber(c.SE), jsonNumber(c.Z), jsonNumber(c.P), reason})
}

// DeLongTest compares the AUCs of scores a and b of the same cases
// (truth[i] positive or not) by DeLong, DeLong and Clarke-Pearson (1988):
// the variance of the difference comes from the covariance of the two
// scores' structural components.
func DeLongTest(truth []bool, a, b []float64) Comparison {
	var pa, na, pb, nb []float64
	for i, t := range truth {
		if t {
			pa, pb = append(pa, a[i]), append(pb, b[i])
		} else {
			na, nb = append(na, a[i]), append(nb, b[i])
		}
	}
	m, n := len(pa), len(na)
	if m < 2 || n < 2 {
		c := Comparison{AUCA: mannWhitney(pa, na), AUCB: mannWhitney(pb, nb), SE: math.NaN(), Z: math.NaN(), P: math.NaN()}
		c.Diff = c.AUCA - c.AUCB
		return c
	}
	a10, a01, aucA := components(pa, na)
	b10, b01, aucB := components(pb, nb)
	v := (covariance(a10, a10)+covariance(b10, b10)-2*covariance(a10, b10))/float64(m) +
		(covariance(a01, a01)+covariance(b01, b01)-2*covariance(a01, b01))/float64(n)
	c := Comparison{AUCA: aucA, AUCB: aucB, Diff: aucA - aucB, SE: math.Sqrt(math.Max(v, 0)), P: 1}
	if c.SE > 0 {
		c.Z = c.Diff / c.SE
		c.P = math.Erfc(math.Abs(c.Z) / math.Sqrt2)
	}
	return c
}
