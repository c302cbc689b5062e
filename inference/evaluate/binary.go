package evaluate

import "math"

// BinaryReport adds, for a two-class model, the AUC with DeLong's 95%
// interval and the decision curve.
type BinaryReport struct {
	AUC      Estimate     `json:"auc"` // the interval is DeLong's; null with fewer than two cases of a class
	Decision []NetBenefit `json:"decisionCurve"`
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
	psi := func(x, y float64) float64 {
		switch {
		case x > y:
			return 1
		case x == y:
			return 0.5
		}
		return 0
	}
	v10 := make([]float64, m)
	v01 := make([]float64, n)
	for i, x := range pos {
		for j, y := range neg {
			s := psi(x, y)
			v10[i] += s
			v01[j] += s
		}
	}
	for i := range v10 {
		v10[i] /= float64(n)
		auc += v10[i]
	}
	auc /= float64(m)
	for j := range v01 {
		v01[j] /= float64(m)
	}
	variance := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += (x - auc) * (x - auc)
		}
		return s / float64(len(v)-1)
	}
	return auc, math.Sqrt(variance(v10)/float64(m) + variance(v01)/float64(n))
}
