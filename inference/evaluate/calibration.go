package evaluate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/orthotriage/orthotriage/inference"
)

// CalibrationBins is the number of equal-width confidence bins of the
// expected calibration error and the reliability diagram (Guo et al. 2017
// use 15).
const CalibrationBins = 15

// ReliabilityBin is one confidence bin of the reliability diagram: the
// hips whose top-class probability lies in (Lower, Upper], their mean
// top-class probability and the share of them classified correctly (both
// undefined for an empty bin).
type ReliabilityBin struct {
	Lower, Upper         float64
	N                    int
	Confidence, Accuracy float64
}

// MarshalJSON writes an empty bin's confidence and accuracy as null.
func (b ReliabilityBin) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Lower      float64 `json:"lower"`
		Upper      float64 `json:"upper"`
		N          int     `json:"n"`
		Confidence any     `json:"confidence"`
		Accuracy   any     `json:"accuracy"`
	}{b.Lower, b.Upper, b.N, jsonNumber(b.Confidence), jsonNumber(b.Accuracy)})
}

// Reliability sorts the cases into bins equal-width bins of their
// top-class probability (the first bin also holds 0).
func Reliability(cases []Case, bins int) []ReliabilityBin {
	out := make([]ReliabilityBin, bins)
	conf, correct := make([]float64, bins), make([]int, bins)
	for i := range out {
		out[i].Lower, out[i].Upper = float64(i)/float64(bins), float64(i+1)/float64(bins)
	}
	for _, c := range cases {
		top := argmax(c.Probabilities)
		p := c.Probabilities[top]
		b := min(bins-1, max(0, int(math.Ceil(p*float64(bins)))-1))
		out[b].N++
		conf[b] += p
		if top == c.Truth {
			correct[b]++
		}
	}
	for i := range out {
		out[i].Confidence, out[i].Accuracy = math.NaN(), math.NaN()
		if n := out[i].N; n > 0 {
			out[i].Confidence, out[i].Accuracy = conf[i]/float64(n), float64(correct[i])/float64(n)
		}
	}
	return out
}

// ECE is the expected calibration error of the top-class probability over
// bins equal-width bins: the sum over bins of |accuracy - mean confidence|
// weighted by the bin's share of the cases; NaN without cases.
func ECE(cases []Case, bins int) float64 {
	if len(cases) == 0 {
		return math.NaN()
	}
	var e float64
	for _, b := range Reliability(cases, bins) {
		if b.N > 0 {
			e += math.Abs(b.Accuracy-b.Confidence) * float64(b.N) / float64(len(cases))
		}
	}
	return e
}

// The temperatures FitTemperature searches: the manifest requires a
// positive temperature, and one outside this range says the logits are
// not what the evaluation thinks they are.
const (
	MinTemperature = 0.05
	MaxTemperature = 20
)

// TemperatureFit is the softmax temperature that minimises the negative
// log-likelihood of the truth on a labelled set, with the figures it
// changes. Before are the figures with the manifest's temperature.
type TemperatureFit struct {
	N                   int     `json:"n"`
	Temperature         float64 `json:"temperature"`
	ManifestTemperature float64 `json:"manifestTemperature"`
	// AtBound says the fit stopped at MinTemperature or MaxTemperature:
	// the set is too easy (or too hard) to calibrate on.
	AtBound   bool    `json:"atBound,omitempty"`
	NLLBefore float64 `json:"nllBefore"`
	NLLAfter  float64 `json:"nllAfter"`
	ECEBefore float64 `json:"eceBefore"`
	ECEAfter  float64 `json:"eceAfter"`
}

// ErrNoLogits says the model's outputs carry no raw logits, so no
// temperature can be fitted.
var ErrNoLogits = errors.New("evaluate: the model's outputs carry no logits")

// FitTemperature fits the softmax temperature on the cases' raw logits
// (minimising the mean negative log-likelihood of the truth: a grid over
// log T, then a golden-section search around the best grid point; the
// likelihood is convex in 1/T, so it has one minimum) and reports the
// likelihood and the ECE with the manifest's temperature and the fitted one.
func FitTemperature(cases []Case, manifestT float64) (*TemperatureFit, error) {
	if len(cases) == 0 {
		return nil, errors.New("evaluate: no cases to fit a temperature on")
	}
	for i, c := range cases {
		if len(c.Logits) == 0 {
			return nil, ErrNoLogits
		}
		if len(c.Logits) != len(c.Probabilities) {
			return nil, fmt.Errorf("evaluate: case %d has %d logits for %d classes", i, len(c.Logits), len(c.Probabilities))
		}
	}
	nll := func(t float64) float64 { return NLL(cases, t) }
	lo, hi := math.Log(MinTemperature), math.Log(MaxTemperature)
	const grid = 60
	best, bestV := 0, math.Inf(1)
	at := func(i int) float64 { return lo + (hi-lo)*float64(i)/grid }
	for i := 0; i <= grid; i++ {
		if v := nll(math.Exp(at(i))); v < bestV {
			best, bestV = i, v
		}
	}
	a, b := at(max(0, best-1)), at(min(grid, best+1))
	logT := goldenSection(func(x float64) float64 { return nll(math.Exp(x)) }, a, b, 1e-6)
	atBound := false
	// A minimum at a bound, or a likelihood flat up to it (every case
	// right by a margin the floating point cannot tell from certainty).
	for _, bound := range []float64{lo, hi} {
		if math.Abs(logT-bound) < 1e-3 || (math.Abs(logT-bound) <= (hi-lo)/grid && nll(math.Exp(bound)) <= nll(math.Exp(logT))) {
			logT, atBound = bound, true
		}
	}
	t := math.Exp(logT)
	fit := &TemperatureFit{
		N: len(cases), Temperature: t, ManifestTemperature: manifestT, AtBound: atBound,
		NLLBefore: nll(manifestT), NLLAfter: nll(t),
		ECEBefore: ECE(cases, CalibrationBins), ECEAfter: ECE(WithTemperature(cases, t), CalibrationBins),
	}
	return fit, nil
}

// NLL is the mean negative log-likelihood of the truth under the softmax
// of the cases' logits divided by t.
func NLL(cases []Case, t float64) float64 {
	var s float64
	for _, c := range cases {
		s -= logSoftmax(c.Logits, t, c.Truth)
	}
	return s / float64(len(cases))
}

// logSoftmax is log softmax(z/t)[k], computed stably.
func logSoftmax(z []float32, t float64, k int) float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, float64(v)/t)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v)/t - mx)
	}
	return float64(z[k])/t - mx - math.Log(sum)
}

// WithTemperature returns copies of the cases whose probabilities are the
// softmax of their logits divided by t.
func WithTemperature(cases []Case, t float64) []Case {
	out := make([]Case, len(cases))
	for i, c := range cases {
		c.Probabilities = inference.Softmax(c.Logits, t)
		out[i] = c
	}
	return out
}

// goldenSection returns the minimum of f, unimodal on [a, b], to within tol.
func goldenSection(f func(float64) float64, a, b, tol float64) float64 {
	const invPhi = 0.6180339887498949
	c, d := b-invPhi*(b-a), a+invPhi*(b-a)
	fc, fd := f(c), f(d)
	for b-a > tol {
		if fc < fd {
			b, d, fd = d, c, fc
			c = b - invPhi*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, d, fd
			d = a + invPhi*(b-a)
			fd = f(d)
		}
	}
	return (a + b) / 2
}
