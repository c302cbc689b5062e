package spine

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
)

func shippedFusion(t *testing.T) (*Fusion, []byte) {
	t.Helper()
	data, err := os.ReadFile("../models/spine-000/fusion.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFusion(data)
	if err != nil {
		t.Fatalf("the shipped fusion model does not validate: %v", err)
	}
	return f, data
}

// The Go evaluation of the trees and the nomogram gives scikit-learn's own
// probabilities for the golden rows the training script stored.
func TestFusionGolden(t *testing.T) {
	f, _ := shippedFusion(t)
	if len(f.Golden) < 4 {
		t.Fatalf("%d golden rows", len(f.Golden))
	}
	for i, g := range f.Golden {
		dlr := f.DLR(g.X)
		if math.Abs(dlr-g.DLR) > 1e-9 {
			t.Errorf("row %d: DLR %.12f, scikit-learn %.12f", i, dlr, g.DLR)
		}
		s, err := f.Score(dlr, g.Clinical)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Probability-g.Nomogram) > 1e-9 {
			t.Errorf("row %d: nomogram %.12f, scikit-learn %.12f", i, s.Probability, g.Nomogram)
		}
		// The points add up to the linear predictor: more points, more
		// likely acute.
		var sum float64
		for _, p := range s.Points {
			if p.Points < -1e-9 {
				t.Errorf("row %d: %s has %.3f points", i, p.Name, p.Points)
			}
			sum += p.Points
		}
		if math.Abs(sum-s.TotalPoints) > 1e-9 {
			t.Errorf("row %d: points sum %.6f, total %.6f", i, sum, s.TotalPoints)
		}
	}
	a, _ := f.Score(0.9, f.Golden[0].Clinical)
	b, _ := f.Score(0.1, f.Golden[0].Clinical)
	if (a.TotalPoints > b.TotalPoints) != (a.Probability > b.Probability) {
		t.Errorf("points and probability disagree: %+v %+v", a, b)
	}
}

// A missing clinical value is named and the nomogram refuses to guess it.
func TestScoreNeedsEveryClinicalValue(t *testing.T) {
	f, _ := shippedFusion(t)
	cl := map[string]float64{"age": 80, "female": 1, "symptom_days": 10, "tscore": -3, "trauma": math.NaN()}
	if miss := f.Missing(cl); len(miss) != 1 || miss[0] != "trauma" {
		t.Fatalf("missing %v, want [trauma]", miss)
	}
	if _, err := f.Score(0.5, cl); err == nil || !strings.Contains(err.Error(), "trauma") {
		t.Fatalf("Score with a missing value: %v", err)
	}
}

// Broken fusion files are refused with a reason, never evaluated (a child
// pointing backwards would loop forever).
func TestParseFusionRefusesBrokenFiles(t *testing.T) {
	_, good := shippedFusion(t)
	for _, tc := range []struct {
		name, want string
		edit       func(m map[string]any)
	}{
		{"schema", "schema", func(m map[string]any) { m["schema"] = "x" }},
		{"no features", "no features", func(m map[string]any) { m["features"] = []any{} }},
		{"feature name", "neither", func(m map[string]any) { m["features"].([]any)[0] = "other:1" }},
		{"std", "std", func(m map[string]any) { m["std"].([]any)[0] = 0 }},
		{"loop", "bad child", func(m map[string]any) {
			tr := m["trees"].(map[string]any)["trees"].([]any)[0].(map[string]any)
			tr["left"].([]any)[0] = 0
		}},
		{"ragged", "unequal", func(m map[string]any) {
			tr := m["trees"].(map[string]any)["trees"].([]any)[0].(map[string]any)
			tr["value"] = tr["value"].([]any)[:1]
		}},
		{"no dlr term", "no dlr term", func(m map[string]any) {
			nm := m["nomogram"].(map[string]any)
			nm["terms"] = nm["terms"].([]any)[1:]
		}},
		{"unknown field", "unknown field", func(m map[string]any) { m["extra"] = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			b, _ := json.Marshal(m)
			if _, err := ParseFusion(b); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}
