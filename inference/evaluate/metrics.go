// Package evaluate computes the evaluation table a hospital runs on its own
// labelled images before go-live: accuracy, macro-F1, macro-AUC (one versus
// rest), per-class sensitivity, specificity and F1, each with a 95%
// bootstrap confidence interval, and the confusion matrix; for binary
// models also the DeLong interval of the AUC and decision-curve net benefit.
//
// Hip and Vertebral run a folder of labelled DICOM files (labels.csv)
// through the service's own decoding and preprocessing and a model the
// caller loaded (behind the small interfaces declared here), and give the
// report `orthotriage eval` prints as tables or JSON.
package evaluate

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
)

// Case is one labelled prediction. Cluster groups cases that are not
// independent (the two hips of one radiograph): the bootstrap resamples
// clusters, not cases.
type Case struct {
	Truth         int
	Probabilities []float64
	// Logits are the model's raw outputs before the temperature and the
	// softmax, when the model gives them (for the temperature fit).
	Logits  []float32
	Cluster string
	Group   string // e.g. difficulty, for the breakdown
}

// Estimate is a value with its 95% confidence interval. An undefined
// value or interval (NaN: a class absent from the data) is written to JSON
// as null, with Reason saying why.
type Estimate struct {
	Value  float64
	CI95   [2]float64
	Reason string
}

// ClassMetrics are one class's one-versus-rest figures.
type ClassMetrics struct {
	Label       string   `json:"label"`
	Support     int      `json:"support"`
	Sensitivity Estimate `json:"sensitivity"`
	Specificity Estimate `json:"specificity"`
	F1          Estimate `json:"f1"`
	AUC         Estimate `json:"auc"`
}

// Report is the evaluation table.
type Report struct {
	N         int      `json:"n"`
	Clusters  int      `json:"clusters"`
	Resamples int      `json:"resamples"`
	Seed      uint64   `json:"seed"`
	Accuracy  Estimate `json:"accuracy"`
	MacroF1   Estimate `json:"macroF1"`
	MacroAUC  Estimate `json:"macroAUC"`
	// ECE is the expected calibration error of the top-class probability
	// over CalibrationBins equal-width bins; Reliability are those bins.
	ECE         Estimate           `json:"ece"`
	Reliability []ReliabilityBin   `json:"reliability"`
	PerClass    []ClassMetrics     `json:"perClass"`
	Labels      []string           `json:"labels"`
	Confusion   [][]int            `json:"confusion"` // [truth][predicted]
	ByGroup     map[string]*Report `json:"byGroup,omitempty"`
	Binary      *BinaryReport      `json:"binary,omitempty"`
}

// point holds the figures of one (re)sample.
type point struct {
	acc, macroF1, macroAUC, ece float64
	sens, spec, f1, auc         []float64
}

func compute(cases []Case, k int) point {
	conf := confusion(cases, k)
	p := point{sens: make([]float64, k), spec: make([]float64, k), f1: make([]float64, k), auc: make([]float64, k)}
	var correct, total int
	for t := range k {
		for q := range k {
			total += conf[t][q]
			if t == q {
				correct += conf[t][q]
			}
		}
	}
	p.acc = ratio(correct, total)
	var f1s, aucs []float64
	for c := range k {
		var tp, fn, fp, tn int
		for t := range k {
			for q := range k {
				switch {
				case t == c && q == c:
					tp += conf[t][q]
				case t == c:
					fn += conf[t][q]
				case q == c:
					fp += conf[t][q]
				default:
					tn += conf[t][q]
				}
			}
		}
		p.sens[c], p.spec[c] = ratio(tp, tp+fn), ratio(tn, tn+fp)
		p.f1[c] = ratio(2*tp, 2*tp+fp+fn)
		p.auc[c] = aucOf(cases, c)
		if tp+fn > 0 { // classes absent from the (re)sample do not count
			f1s = append(f1s, p.f1[c])
			if !math.IsNaN(p.auc[c]) {
				aucs = append(aucs, p.auc[c])
			}
		}
	}
	p.macroF1, p.macroAUC = mean(f1s), mean(aucs)
	p.ece = ECE(cases, CalibrationBins)
	return p
}

func confusion(cases []Case, k int) [][]int {
	conf := make([][]int, k)
	for i := range conf {
		conf[i] = make([]int, k)
	}
	for _, c := range cases {
		conf[c.Truth][argmax(c.Probabilities)]++
	}
	return conf
}

// aucOf is the one-versus-rest AUC of class c (Mann-Whitney, ties count
// half); NaN when the sample lacks positives or negatives.
func aucOf(cases []Case, c int) float64 {
	return mannWhitney(scores(cases, c))
}

// scores splits the probabilities of class c between the cases that are c
// (pos) and those that are not (neg).
func scores(cases []Case, c int) (pos, neg []float64) {
	for _, x := range cases {
		if x.Truth == c {
			pos = append(pos, x.Probabilities[c])
		} else {
			neg = append(neg, x.Probabilities[c])
		}
	}
	return pos, neg
}

func mannWhitney(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	type sv struct {
		v   float64
		pos bool
	}
	all := make([]sv, 0, len(pos)+len(neg))
	for _, v := range pos {
		all = append(all, sv{v, true})
	}
	for _, v := range neg {
		all = append(all, sv{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Sum of the positives' mid-ranks.
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks i+1..j
		for q := i; q < j; q++ {
			if all[q].pos {
				rankSum += mid
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rankSum - np*(np+1)/2) / (np * nn)
}

// Evaluate computes the report with a cluster bootstrap of resamples
// draws from seed (percentile intervals).
func Evaluate(cases []Case, labels []string, resamples int, seed uint64) *Report {
	r := evaluate(cases, labels, resamples, seed)
	groups := map[string][]Case{}
	for _, c := range cases {
		if c.Group != "" {
			groups[c.Group] = append(groups[c.Group], c)
		}
	}
	if len(groups) > 1 {
		r.ByGroup = map[string]*Report{}
		for g, cs := range groups {
			r.ByGroup[g] = evaluate(cs, labels, resamples, seed)
		}
	}
	if len(labels) == 2 {
		r.Binary = Binary(cases, 1)
	}
	return r
}

func evaluate(cases []Case, labels []string, resamples int, seed uint64) *Report {
	k := len(labels)
	full := compute(cases, k)
	clusters := map[string][]int{}
	var order []string
	for i, c := range cases {
		id := c.Cluster
		if id == "" {
			id = "#" + strconv.Itoa(i)
		}
		if _, ok := clusters[id]; !ok {
			order = append(order, id)
		}
		clusters[id] = append(clusters[id], i)
	}
	rng := rand.New(rand.NewPCG(seed, 0x0b007))
	var boots []point
	sample := make([]Case, 0, len(cases))
	for range resamples {
		sample = sample[:0]
		for range order {
			for _, i := range clusters[order[rng.IntN(len(order))]] {
				sample = append(sample, cases[i])
			}
		}
		boots = append(boots, compute(sample, k))
	}
	// est is a figure with its bootstrap interval; why says what makes
	// it undefined when it is.
	est := func(v float64, get func(point) float64, why string) Estimate {
		vals := make([]float64, 0, len(boots))
		for _, b := range boots {
			if x := get(b); !math.IsNaN(x) {
				vals = append(vals, x)
			}
		}
		return explained(Estimate{Value: v, CI95: percentileCI(vals)}, why)
	}
	const noCases = "undefined: no cases"
	r := &Report{
		N: len(cases), Clusters: len(order), Resamples: resamples, Seed: seed, Labels: labels,
		Accuracy:    est(full.acc, func(p point) float64 { return p.acc }, noCases),
		MacroF1:     est(full.macroF1, func(p point) float64 { return p.macroF1 }, noCases),
		MacroAUC:    est(full.macroAUC, func(p point) float64 { return p.macroAUC }, undefinedOneClass),
		ECE:         est(full.ece, func(p point) float64 { return p.ece }, noCases),
		Reliability: Reliability(cases, CalibrationBins),
		Confusion:   confusion(cases, k),
	}
	for c := range k {
		support := 0
		for _, x := range cases {
			if x.Truth == c {
				support++
			}
		}
		aucWhy := undefinedOneClass
		switch {
		case support == 0:
			aucWhy = "undefined: no cases of this class"
		case support == len(cases):
			aucWhy = "undefined: no cases of other classes"
		}
		r.PerClass = append(r.PerClass, ClassMetrics{
			Label: labels[c], Support: support,
			Sensitivity: est(full.sens[c], func(p point) float64 { return p.sens[c] }, "undefined: no cases of this class"),
			Specificity: est(full.spec[c], func(p point) float64 { return p.spec[c] }, "undefined: no cases of other classes"),
			F1:          est(full.f1[c], func(p point) float64 { return p.f1[c] }, "undefined: class neither present nor predicted"),
			AUC:         est(full.auc[c], func(p point) float64 { return p.auc[c] }, aucWhy),
		})
	}
	return r
}

// undefinedOneClass is the reason an AUC is undefined: every case is of
// one class, so no positive can be ranked against a negative.
const undefinedOneClass = "undefined: one class only"

// explained gives e the reason its value (why) or its interval is
// undefined, when it is.
func explained(e Estimate, why string) Estimate {
	switch {
	case !finite(e.Value):
		e.Reason = why
	case !finite(e.CI95[0]) || !finite(e.CI95[1]):
		e.Reason = "ci95 undefined: no resample defines the figure"
	}
	return e
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// percentileCI is the 2.5th and 97.5th percentile (linear interpolation).
func percentileCI(v []float64) [2]float64 {
	if len(v) == 0 {
		return [2]float64{math.NaN(), math.NaN()}
	}
	slices.Sort(v)
	q := func(p float64) float64 {
		x := p * float64(len(v)-1)
		i := int(x)
		if i+1 >= len(v) {
			return v[len(v)-1]
		}
		return v[i] + (x-float64(i))*(v[i+1]-v[i])
	}
	return [2]float64{q(0.025), q(0.975)}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func argmax(p []float64) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}

// MarshalJSON writes undefined figures (NaN: a class absent from the data)
// as null, which JSON can carry, with the reason ("undefined" when none
// was given).
func (e Estimate) MarshalJSON() ([]byte, error) {
	reason := e.Reason
	if reason == "" && (!finite(e.Value) || !finite(e.CI95[0]) || !finite(e.CI95[1])) {
		reason = "undefined"
	}
	return json.Marshal(struct {
		Value  any    `json:"value"`
		CI95   [2]any `json:"ci95"`
		Reason string `json:"reason,omitempty"`
	}{jsonNumber(e.Value), [2]any{jsonNumber(e.CI95[0]), jsonNumber(e.CI95[1])}, reason})
}

// UnmarshalJSON reads what MarshalJSON writes; null is NaN.
func (e *Estimate) UnmarshalJSON(b []byte) error {
	var v struct {
		Value  *float64   `json:"value"`
		CI95   []*float64 `json:"ci95"`
		Reason string     `json:"reason"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	num := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*e = Estimate{Value: num(v.Value), CI95: [2]float64{math.NaN(), math.NaN()}, Reason: v.Reason}
	for i := range min(2, len(v.CI95)) {
		e.CI95[i] = num(v.CI95[i])
	}
	return nil
}

func jsonNumber(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}
