package evaluate

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// A hand-worked example: positives 0.9, 0.6; negatives 0.7, 0.1. Three of
// four pairs are ordered, AUC 0.75; DeLong's components are V10 = (1, 0.5)
// and V01 = (0.5, 1), each with variance 0.125, so SE = sqrt(0.125/2 +
// 0.125/2).
func TestDeLongByHand(t *testing.T) {
	auc, se := DeLong([]float64{0.9, 0.6}, []float64{0.7, 0.1})
	if !near(auc, 0.75, 1e-12) || !near(se, math.Sqrt(0.125), 1e-12) {
		t.Fatalf("AUC %v SE %v, want 0.75 and %v", auc, se, math.Sqrt(0.125))
	}
	// Ties count half.
	if a := mannWhitney([]float64{0.5}, []float64{0.5}); a != 0.5 {
		t.Fatalf("tied AUC %v", a)
	}
}

func TestEvaluatePerfectAndChance(t *testing.T) {
	labels := []string{"a", "b", "c"}
	var perfect, chance []Case
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		truth := i % 3
		p := []float64{0.1, 0.1, 0.1}
		p[truth] = 0.8
		perfect = append(perfect, Case{Truth: truth, Probabilities: p, Cluster: string(rune('A' + i/2))})
		q := []float64{rng.Float64(), rng.Float64(), rng.Float64()}
		chance = append(chance, Case{Truth: truth, Probabilities: q})
	}
	r := Evaluate(perfect, labels, 200, 1)
	if r.Accuracy.Value != 1 || r.Accuracy.CI95 != [2]float64{1, 1} || r.MacroF1.Value != 1 || r.MacroAUC.Value != 1 {
		t.Fatalf("perfect classifier: %+v %+v %+v", r.Accuracy, r.MacroF1, r.MacroAUC)
	}
	if r.Clusters != 150 || r.Confusion[2][2] != 100 {
		t.Fatalf("clusters %d, confusion %v", r.Clusters, r.Confusion)
	}
	c := Evaluate(chance, labels, 500, 1)
	if !near(c.Accuracy.Value, 1.0/3, 0.08) || !near(c.MacroAUC.Value, 0.5, 0.08) {
		t.Fatalf("chance: accuracy %v, AUC %v", c.Accuracy.Value, c.MacroAUC.Value)
	}
	lo, hi := c.Accuracy.CI95[0], c.Accuracy.CI95[1]
	// The bootstrap interval of a proportion near 1/3 over 300 cases is
	// about +-0.053 (1.96 * sqrt(p(1-p)/n)).
	if !(lo < c.Accuracy.Value && c.Accuracy.Value < hi) || !near(hi-lo, 2*1.96*math.Sqrt(1.0/3*2/3/300), 0.02) {
		t.Fatalf("chance accuracy CI %v around %v", c.Accuracy.CI95, c.Accuracy.Value)
	}
	// Same seed, same intervals.
	if d := Evaluate(chance, labels, 500, 1); d.Accuracy != c.Accuracy {
		t.Fatal("bootstrap not reproducible with the same seed")
	}
}

func TestBinaryDecisionCurve(t *testing.T) {
	cases := []Case{
		{Truth: 1, Probabilities: []float64{0.1, 0.9}},
		{Truth: 1, Probabilities: []float64{0.4, 0.6}},
		{Truth: 0, Probabilities: []float64{0.7, 0.3}},
		{Truth: 0, Probabilities: []float64{0.2, 0.8}},
	}
	r := Evaluate(cases, []string{"no", "yes"}, 100, 1)
	b := r.Binary
	if b == nil || !near(b.AUC.Value, 0.75, 1e-12) || !near(b.AUC.CI95[0], 0.75-1.959964*math.Sqrt(0.125), 1e-9) || b.AUC.CI95[1] != 1 {
		t.Fatalf("binary report %+v", b)
	}
	// At threshold 0.5: TP 2, FP 1 of 4 -> 2/4 - 1/4 * 1 = 0.25; treat all:
	// 0.5 - 0.5 * 1 = 0.
	for _, p := range b.Decision {
		if near(p.Threshold, 0.5, 1e-9) && (!near(p.Model, 0.25, 1e-12) || !near(p.TreatAll, 0, 1e-12)) {
			t.Fatalf("net benefit at 0.5: %+v", p)
		}
	}
}

// DeLong's paired test by hand: score A is the example above (AUC 0.75,
// components with variance 0.125 each); score B orders every pair (AUC 1,
// constant components), so the covariances vanish and the variance of the
// difference is 0.125/2 + 0.125/2: z = -0.25/sqrt(0.125), p = erfc(0.5).
// Identical rankings give p = 1.
func TestDeLongTestByHand(t *testing.T) {
	truth := []bool{true, true, false, false}
	c := DeLongTest(truth, []float64{0.9, 0.6, 0.7, 0.1}, []float64{0.9, 0.8, 0.7, 0.1})
	if !near(c.AUCA, 0.75, 1e-12) || !near(c.AUCB, 1, 1e-12) || !near(c.SE, math.Sqrt(0.125), 1e-12) ||
		!near(c.Z, -0.25/math.Sqrt(0.125), 1e-12) || !near(c.P, math.Erfc(0.5), 1e-12) {
		t.Fatalf("comparison %+v", c)
	}
	same := DeLongTest(truth, []float64{0.9, 0.6, 0.7, 0.1}, []float64{9, 6, 7, 1})
	if same.Diff != 0 || same.P != 1 {
		t.Fatalf("same ranking: %+v", same)
	}
}
