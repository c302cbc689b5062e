package spine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// FusionSchema is the fusion file schema this build reads.
const FusionSchema = "orthotriage.fusion/v1"

// Fusion is the trained fusion model of fusion.json, written by the
// training script (inference/models/spine-000/train.py):
//
//   - Features are the features the L1-penalised (LASSO) logistic model
//     kept, out of the 2048 deep and every radiomics feature, with the mean
//     and standard deviation they are standardised with;
//   - Trees are scikit-learn gradient-boosted trees on those standardised
//     features: log-odds = Init + LearningRate x the sum of the leaves
//     reached; its probability is the deep-learning-radiomics (DLR) score;
//   - Nomogram is a logistic model on the DLR score's log-odds and the
//     clinical variables, with points per variable.
//
// The trees are evaluated here rather than through ONNX Runtime's ML
// operators: they are a few hundred nodes, the format is four arrays per
// tree as scikit-learn keeps them, and Debian ships no skl2onnx to export
// them; TestFusionGolden checks that the Go evaluation gives scikit-learn's
// own probabilities for the golden rows the training script stores.
type Fusion struct {
	Schema   string    `json:"schema"`
	Features []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
	Trees    Boosted   `json:"trees"`
	Nomogram Nomogram  `json:"nomogram"`
	// Golden are rows with their expected scores, checked in tests.
	Golden []Golden `json:"golden,omitempty"`
}

// Boosted is a binary gradient-boosted tree ensemble.
type Boosted struct {
	Init         float64 `json:"init"`
	LearningRate float64 `json:"learningRate"`
	Trees        []Tree  `json:"trees"`
}

// Tree is one regression tree as scikit-learn stores it: node i is a leaf
// when Left[i] < 0, else x[Feature[i]] <= Threshold[i] goes to Left[i].
type Tree struct {
	Feature   []int     `json:"feature"`
	Threshold []float64 `json:"threshold"`
	Left      []int     `json:"left"`
	Right     []int     `json:"right"`
	Value     []float64 `json:"value"`
}

// Nomogram is a logistic model on named variables.
type Nomogram struct {
	Intercept float64 `json:"intercept"`
	Terms     []Term  `json:"terms"`
	// PointsPerUnit converts a term's contribution to the linear
	// predictor into points: the term with the widest range over the
	// training data spans 100 points.
	PointsPerUnit float64 `json:"pointsPerUnit"`
}

// Term is one nomogram variable: its contribution is Coef x value, the
// value clipped to [Min, Max] (the training range). Points are counted from
// the end of the range with the lower contribution, so they are never
// negative.
type Term struct {
	Name  string  `json:"name"`  // dlr, age, female, symptom_days, trauma or tscore
	Label string  `json:"label"` // for people, e.g. "Symptom duration"
	Unit  string  `json:"unit,omitempty"`
	Coef  float64 `json:"coef"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	// Transform is applied to the value first: "logit" (the DLR score),
	// "log" (symptom days) or "" (none).
	Transform string `json:"transform,omitempty"`
}

// Golden is a row of standardised-feature input and clinical values with
// the scores scikit-learn gave.
type Golden struct {
	X        []float64          `json:"x"` // the selected features, raw (before standardisation)
	Clinical map[string]float64 `json:"clinical"`
	DLR      float64            `json:"dlr"`
	Nomogram float64            `json:"nomogram"`
}

// ClinicalNames are the nomogram's clinical variables, in the order cards
// show them.
var ClinicalNames = []string{"age", "female", "symptom_days", "trauma", "tscore"}

// ParseFusion decodes and checks a fusion file.
func ParseFusion(data []byte) (*Fusion, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f Fusion
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("fusion: %w", err)
	}
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("fusion: %w", err)
	}
	return &f, nil
}

func (f *Fusion) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if f.Schema != FusionSchema {
		bad("schema %q, this build reads %q", f.Schema, FusionSchema)
	}
	n := len(f.Features)
	if n == 0 {
		bad("no features selected")
	}
	for _, name := range f.Features {
		if !strings.HasPrefix(name, "deep:") && !strings.HasPrefix(name, "radiomics:") {
			bad("feature %q is neither deep: nor radiomics:", name)
		}
	}
	if len(f.Mean) != n || len(f.Std) != n {
		bad("%d features but %d means and %d standard deviations", n, len(f.Mean), len(f.Std))
	}
	for i, s := range f.Std {
		if !(s > 0) || math.IsInf(s, 0) {
			bad("std[%d] = %v, want > 0", i, s)
		}
	}
	if len(f.Trees.Trees) == 0 || !(f.Trees.LearningRate > 0) {
		bad("trees: need at least one tree and a learning rate > 0")
	}
	for t, tr := range f.Trees.Trees {
		k := len(tr.Value)
		if k == 0 || len(tr.Feature) != k || len(tr.Threshold) != k || len(tr.Left) != k || len(tr.Right) != k {
			bad("tree %d: arrays of unequal length", t)
			continue
		}
		for i := range k {
			if tr.Left[i] < 0 {
				continue
			}
			// Children come after their parent (scikit-learn's depth-first
			// order), so evaluation always ends.
			if tr.Left[i] <= i || tr.Right[i] <= i || tr.Left[i] >= k || tr.Right[i] >= k || tr.Feature[i] < 0 || tr.Feature[i] >= n {
				bad("tree %d node %d: bad child or feature", t, i)
				break
			}
		}
	}
	names := map[string]bool{}
	for _, t := range f.Nomogram.Terms {
		switch t.Name {
		case "dlr", "age", "female", "symptom_days", "trauma", "tscore":
		default:
			bad("nomogram term %q unknown", t.Name)
		}
		if names[t.Name] {
			bad("nomogram term %q repeated", t.Name)
		}
		names[t.Name] = true
		if !(t.Max > t.Min) || math.IsNaN(t.Coef) || math.IsInf(t.Coef, 0) {
			bad("nomogram term %q: need min < max and a finite coefficient", t.Name)
		}
		if t.Transform != "" && t.Transform != "logit" && t.Transform != "log" {
			bad("nomogram term %q: transform %q unknown", t.Name, t.Transform)
		}
	}
	if !names["dlr"] {
		bad("the nomogram has no dlr term")
	}
	if !(f.Nomogram.PointsPerUnit > 0) {
		bad("nomogram pointsPerUnit must be > 0")
	}
	return errors.Join(errs...)
}

// Vector gathers a fractured body's selected features, in Features order.
func (f *Fusion) Vector(r Reading) ([]float64, error) {
	x := make([]float64, len(f.Features))
	for i, name := range f.Features {
		switch {
		case strings.HasPrefix(name, "deep:"):
			var k int
			if _, err := fmt.Sscanf(name, "deep:%d", &k); err != nil || k < 0 || k >= len(r.Deep) {
				return nil, fmt.Errorf("fusion: feature %s: the network gave %d deep features", name, len(r.Deep))
			}
			x[i] = float64(r.Deep[k])
		default:
			v, ok := r.Radiomics[strings.TrimPrefix(name, "radiomics:")]
			if !ok {
				return nil, fmt.Errorf("fusion: radiomics feature %s was not computed", name)
			}
			x[i] = v
		}
		if math.IsNaN(x[i]) || math.IsInf(x[i], 0) {
			return nil, fmt.Errorf("fusion: feature %s is %v", name, x[i])
		}
	}
	return x, nil
}

// DLR is the deep-learning-radiomics score of a raw selected-feature
// vector: the probability of an acute fracture from the image alone.
func (f *Fusion) DLR(x []float64) float64 {
	z := make([]float64, len(x))
	for i := range x {
		z[i] = (x[i] - f.Mean[i]) / f.Std[i]
	}
	s := f.Trees.Init
	for _, t := range f.Trees.Trees {
		s += f.Trees.LearningRate * t.leaf(z)
	}
	return sigmoid(s)
}

// leaf walks a tree. Like scikit-learn, it compares the value as float32
// with the float64 threshold.
func (t Tree) leaf(z []float64) float64 {
	i := 0
	for t.Left[i] >= 0 {
		if float64(float32(z[t.Feature[i]])) <= t.Threshold[i] {
			i = t.Left[i]
		} else {
			i = t.Right[i]
		}
	}
	return t.Value[i]
}

// Point is one nomogram variable's share of a result.
type Point struct {
	Name   string  `json:"name"`
	Label  string  `json:"label"`
	Value  float64 `json:"value"` // as given (the DLR score as a probability)
	Unit   string  `json:"unit,omitempty"`
	Points float64 `json:"points"`
	// Clipped is set when the value lay outside the training range and
	// was counted at its nearest end.
	Clipped bool `json:"clipped,omitempty"`
}

// Score is the nomogram's reading: total points, their probability and
// each variable's points.
type Score struct {
	Probability float64 `json:"probability"`
	TotalPoints float64 `json:"totalPoints"`
	Points      []Point `json:"points"`
}

// Missing lists the nomogram's clinical variables absent from clinical,
// in ClinicalNames order.
func (f *Fusion) Missing(clinical map[string]float64) []string {
	var out []string
	for _, name := range ClinicalNames {
		if !slices.ContainsFunc(f.Nomogram.Terms, func(t Term) bool { return t.Name == name }) {
			continue
		}
		if v, ok := clinical[name]; !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			out = append(out, name)
		}
	}
	return out
}

// Score scores a DLR score with the clinical values in the nomogram; it fails when one
// the nomogram needs is missing (see Missing).
func (f *Fusion) Score(dlr float64, clinical map[string]float64) (Score, error) {
	if miss := f.Missing(clinical); len(miss) > 0 {
		return Score{}, fmt.Errorf("fusion: missing clinical values: %s", strings.Join(miss, ", "))
	}
	nm := f.Nomogram
	lp := nm.Intercept
	var s Score
	for _, t := range nm.Terms {
		v := dlr
		if t.Name != "dlr" {
			v = clinical[t.Name]
		}
		x := v
		switch t.Transform {
		case "logit":
			p := min(max(v, 1e-4), 1-1e-4)
			x = math.Log(p / (1 - p))
		case "log":
			x = math.Log(max(v, 1))
		}
		c := min(max(x, t.Min), t.Max)
		lp += t.Coef * c
		low := t.Min
		if t.Coef < 0 {
			low = t.Max
		}
		// Never negative (nor -0, which would print as "-0").
		pts := math.Max(0, nm.PointsPerUnit*t.Coef*(c-low))
		pt := Point{Name: t.Name, Label: t.Label, Value: v, Unit: t.Unit, Points: pts, Clipped: c != x}
		s.TotalPoints += pt.Points
		s.Points = append(s.Points, pt)
	}
	s.Probability = sigmoid(lp)
	return s, nil
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
