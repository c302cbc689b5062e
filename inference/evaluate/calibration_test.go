package evaluate

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/orthotriage/orthotriage/inference"
)

// ECE by hand: confidences 0.9 (right), 0.9 (wrong), 0.7 (right) and 0.62
// (right) fall in bins 13, 13, 10 and 9 of 15; ECE = |0.5-0.9| 2/4 +
// |1-0.7| 1/4 + |1-0.62| 1/4 = 0.2 + 0.075 + 0.095 = 0.37. In one bin it
// is |mean accuracy - mean confidence| = |0.75 - 0.78|.
func TestECEByHand(t *testing.T) {
	cases := []Case{
		{Truth: 0, Probabilities: []float64{0.9, 0.1}},
		{Truth: 1, Probabilities: []float64{0.9, 0.1}},
		{Truth: 1, Probabilities: []float64{0.3, 0.7}},
		{Truth: 1, Probabilities: []float64{0.38, 0.62}},
	}
	tests := []struct {
		name  string
		cases []Case
		bins  int
		want  float64
	}{
		{name: "15 bins", cases: cases, bins: 15, want: 0.37},
		{name: "one bin", cases: cases, bins: 1, want: 0.03},
		{name: "calibrated: 8 of 10 right at 0.8", cases: calibrated(10, 8, 0.8), bins: 15, want: 0},
		{name: "overconfident: 5 of 10 right at 0.8", cases: calibrated(10, 5, 0.8), bins: 15, want: 0.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ECE(tt.cases, tt.bins); !near(got, tt.want, 1e-12) {
				t.Errorf("ECE = %v, want %v", got, tt.want)
			}
		})
	}
	if !math.IsNaN(ECE(nil, 15)) {
		t.Error("ECE of no cases is not NaN")
	}
	r := Reliability(cases, 15)
	if len(r) != 15 || r[13].N != 2 || r[13].Accuracy != 0.5 || !near(r[13].Confidence, 0.9, 1e-12) || r[10].N != 1 || r[9].N != 1 || !math.IsNaN(r[0].Accuracy) {
		t.Errorf("reliability bins %+v", r)
	}
	if !near(r[9].Lower, 0.6, 1e-12) || !near(r[9].Upper, 10.0/15, 1e-12) {
		t.Errorf("bin 9 is %v-%v", r[9].Lower, r[9].Upper)
	}
	// Bins are (lower, upper]: 0.5 is in the first of two, 1 in the last.
	edges := Reliability([]Case{{Truth: 0, Probabilities: []float64{0.5, 0.5}}, {Truth: 0, Probabilities: []float64{1, 0}}}, 2)
	if edges[0].N != 1 || edges[1].N != 1 {
		t.Errorf("edges %+v", edges)
	}
	// An empty bin encodes as null, not a failure.
	b, err := json.Marshal(r[0])
	if err != nil || string(b) != `{"lower":0,"upper":0.06666666666666667,"n":0,"confidence":null,"accuracy":null}` {
		t.Errorf("empty bin JSON %s (%v)", b, err)
	}
}

// calibrated is n two-class cases of confidence p, right of them correct.
func calibrated(n, right int, p float64) []Case {
	var cs []Case
	for i := range n {
		truth := 0
		if i >= right {
			truth = 1
		}
		cs = append(cs, Case{Truth: truth, Probabilities: []float64{p, 1 - p}})
	}
	return cs
}

// syntheticLogits draws n cases of k classes whose truth follows the
// softmax of their logits divided by temperature; their probabilities are
// those of temperature 1, as a manifest with temperature 1 gives them.
func syntheticLogits(n, k int, temperature float64, seed uint64) []Case {
	rng := rand.New(rand.NewPCG(seed, 9))
	cases := make([]Case, n)
	for i := range cases {
		z := make([]float32, k)
		for j := range z {
			z[j] = float32(3 * rng.NormFloat64())
		}
		p := inference.Softmax(z, temperature)
		u, truth := rng.Float64(), k-1
		for j, q := range p {
			if u < q {
				truth = j
				break
			}
			u -= q
		}
		cases[i] = Case{Truth: truth, Logits: z, Probabilities: inference.Softmax(z, 1)}
	}
	return cases
}

// The fit finds the temperature the truth was drawn with, lowers the
// likelihood and the ECE, and says when it stops at a bound.
func TestFitTemperature(t *testing.T) {
	for _, want := range []float64{0.5, 2} {
		cases := syntheticLogits(20000, 4, want, uint64(want*10))
		fit, err := FitTemperature(cases, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(fit.Temperature-want)/want > 0.05 || fit.AtBound || fit.N != 20000 || fit.ManifestTemperature != 1 {
			t.Errorf("temperature %v: fitted %+v", want, fit)
		}
		if !(fit.NLLAfter < fit.NLLBefore) || !(fit.ECEAfter < fit.ECEBefore) || fit.ECEAfter > 0.02 {
			t.Errorf("temperature %v: NLL %v -> %v, ECE %v -> %v", want, fit.NLLBefore, fit.NLLAfter, fit.ECEBefore, fit.ECEAfter)
		}
		// The fitted temperature is the likelihood's minimum.
		for _, f := range []float64{0.97, 1.03} {
			if NLL(cases, fit.Temperature*f) < fit.NLLAfter {
				t.Errorf("temperature %v: NLL at %v below the fit's", want, fit.Temperature*f)
			}
		}
	}
	// Every case right by a wide margin: the likelihood keeps falling as
	// the temperature does, and the fit says it stopped at the bound.
	var easy []Case
	for i := range 50 {
		z := []float32{0, 0, 0}
		z[i%3] = 5
		easy = append(easy, Case{Truth: i % 3, Logits: z, Probabilities: inference.Softmax(z, 1)})
	}
	fit, err := FitTemperature(easy, 1)
	if err != nil || !fit.AtBound || !near(fit.Temperature, MinTemperature, 1e-3) {
		t.Errorf("separable set: %+v %v", fit, err)
	}
	if _, err := FitTemperature([]Case{{Truth: 0, Probabilities: []float64{1, 0}}}, 1); !errors.Is(err, ErrNoLogits) {
		t.Errorf("no logits: %v", err)
	}
	if _, err := FitTemperature(nil, 1); err == nil {
		t.Error("no cases: no error")
	}
}

// A difficulty group whose hips are all one class is reported, not a
// failure: its AUCs are null in JSON with the reason.
func TestOneClassGroupEncodes(t *testing.T) {
	labels := []string{"normal", "oa", "fnf"}
	var cases []Case
	for i := range 12 {
		truth := i % 3
		p := []float64{0.1, 0.1, 0.1}
		p[truth] = 0.8
		group := "typical"
		if i%3 == 0 && i < 6 {
			group = "subtle" // subtle: normal hips only
		}
		cases = append(cases, Case{Truth: truth, Probabilities: p, Cluster: string(rune('a' + i/2)), Group: group})
	}
	r := Evaluate(cases, labels, 100, 1)
	sub := r.ByGroup["subtle"]
	if sub == nil || sub.N != 2 || !math.IsNaN(sub.MacroAUC.Value) || sub.MacroAUC.Reason != undefinedOneClass {
		t.Fatalf("subtle group %+v", sub)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var got struct {
		ByGroup map[string]struct {
			MacroAUC Estimate
			PerClass []struct {
				Label       string
				Sensitivity Estimate
				AUC         Estimate
			}
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	s := got.ByGroup["subtle"]
	if !math.IsNaN(s.MacroAUC.Value) || s.MacroAUC.Reason != "undefined: one class only" {
		t.Errorf("subtle macroAUC %+v", s.MacroAUC)
	}
	if oa := s.PerClass[1]; !math.IsNaN(oa.Sensitivity.Value) || oa.Sensitivity.Reason != "undefined: no cases of this class" || oa.AUC.Reason != "undefined: no cases of this class" {
		t.Errorf("subtle oa %+v", oa)
	}
	if n := s.PerClass[0]; n.AUC.Reason != "undefined: no cases of other classes" {
		t.Errorf("subtle normal %+v", n)
	}
	if d := r.PerClass[0].Sensitivity; d.Reason != "" || d.Value != 1 {
		t.Errorf("a defined figure has reason %q", d.Reason)
	}
}
