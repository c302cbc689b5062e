package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/orthotriage/orthotriage/imaging/perturb"
	"github.com/orthotriage/orthotriage/inference"
)

// Robustness is a hip model's evaluation on a labelled set unperturbed and
// under each perturbation: how a site stress-tests a model before go-live.
type Robustness struct {
	Manifest *inference.Manifest
	Data     string
	// Runs are the evaluations, the unperturbed one first.
	Runs []*HipEvaluation
	// Watched are the label keys whose sensitivity the summary shows: the
	// classes of the manifest's most urgent triage rule (FNF and ITF for
	// hip-000).
	Watched []string
}

// HipRobustness evaluates the model on o.Data unperturbed, then under each
// perturbation (o.Perturbation is ignored).
func HipRobustness(ctx context.Context, o HipOptions, ps []perturb.Perturbation) (*Robustness, error) {
	r := &Robustness{Manifest: o.Manifest, Data: o.Data, Watched: watched(o.Manifest)}
	o.Perturbation = nil
	for i := -1; i < len(ps); i++ {
		if i >= 0 {
			o.Perturbation = &ps[i]
		}
		e, err := Hip(ctx, o)
		if err != nil {
			if i >= 0 {
				return nil, fmt.Errorf("perturbation %s: %w", ps[i].Name, err)
			}
			return nil, err
		}
		r.Runs = append(r.Runs, e)
	}
	return r, nil
}

// priorityRank orders triage priorities, most urgent first.
var priorityRank = map[string]int{"stat": 0, "asap": 1, "urgent": 2, "routine": 3}

// watched are the classes of the manifest's most urgent triage rule, or
// every label when it has none.
func watched(m *inference.Manifest) []string {
	best := -1
	for i, rule := range m.Triage {
		rank, ok := priorityRank[rule.Priority]
		if ok && (best < 0 || rank < priorityRank[m.Triage[best].Priority]) {
			best = i
		}
	}
	if best >= 0 {
		return m.Triage[best].Classes
	}
	var keys []string
	for _, l := range m.Labels {
		keys = append(keys, l.Key)
	}
	return keys
}

// SummaryRow is one perturbation's headline figures.
type SummaryRow struct {
	Perturbation string              `json:"perturbation"`
	Accuracy     Estimate            `json:"accuracy"`
	MacroF1      Estimate            `json:"macroF1"`
	Sensitivity  map[string]Estimate `json:"sensitivity"` // of the watched classes, by label key
	ECE          Estimate            `json:"ece"`
}

// Summary is the headline figures of every run, the unperturbed first.
func (r *Robustness) Summary() []SummaryRow {
	var rows []SummaryRow
	for _, e := range r.Runs {
		row := SummaryRow{Perturbation: e.Perturbation, Accuracy: e.Report.Accuracy, MacroF1: e.Report.MacroF1, ECE: e.Report.ECE,
			Sensitivity: map[string]Estimate{}}
		for _, c := range e.Report.PerClass {
			for _, k := range r.Watched {
				if c.Label == k {
					row.Sensitivity[k] = c.Sensitivity
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// Print writes each run's table, then the summary.
func (r *Robustness) Print(w io.Writer) {
	for i, e := range r.Runs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "=== %s ===\n", e.Perturbation)
		e.Print(w)
	}
	m, first := r.Manifest, r.Runs[0].Report
	fmt.Fprintf(w, "\n=== robustness summary: model %s %s, %d hips of %d radiographs in %s; 95%% CIs as above ===\n",
		m.ID, m.Version, first.N, first.Clusters, r.Data)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"perturbation", "accuracy", "macro-F1"}
	for _, k := range r.Watched {
		head = append(head, k+" sensitivity")
	}
	fmt.Fprintln(tw, strings.Join(append(head, "ECE"), "\t"))
	for _, row := range r.Summary() {
		cells := []string{row.Perturbation, withCI(row.Accuracy), withCI(row.MacroF1)}
		for _, k := range r.Watched {
			cells = append(cells, withCI(row.Sensitivity[k]))
		}
		fmt.Fprintln(tw, strings.Join(append(cells, withCI(row.ECE)), "\t"))
	}
	tw.Flush()
}

// WriteJSON writes every run's report and the summary as indented JSON.
func (r *Robustness) WriteJSON(w io.Writer) error {
	runs := make([]hipRun, len(r.Runs))
	for i, e := range r.Runs {
		runs[i] = e.run()
		runs[i].Perturbation = e.Perturbation
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Model   string       `json:"model"`
		Version string       `json:"version"`
		Watched []string     `json:"watched"`
		Runs    []hipRun     `json:"runs"`
		Summary []SummaryRow `json:"summary"`
	}{r.Manifest.ID, r.Manifest.Version, r.Watched, runs, r.Summary()})
}

// WritePlots writes each run's plots into a folder of dir named after its
// perturbation (none for the unperturbed run).
func (r *Robustness) WritePlots(dir string) error {
	for _, e := range r.Runs {
		if err := e.WritePlots(filepath.Join(dir, folderName(e.Perturbation))); err != nil {
			return err
		}
	}
	return nil
}

// folderName is a perturbation's name as a folder name: letters, digits,
// '.', '=', '+' and '-'; anything else becomes '_'.
func folderName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".=+-", r):
			return r
		}
		return '_'
	}, name)
}
