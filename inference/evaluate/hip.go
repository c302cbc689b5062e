package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
)

// Classifier runs prepared crops through a loaded model; the service's
// batcher is one, and so is the command line's direct session.
type Classifier interface {
	Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error)
}

// HipOptions say what Hip evaluates and how.
type HipOptions struct {
	Manifest *inference.Manifest
	Model    Classifier
	// Data is the folder holding labels.csv (file,left,right and optionally
	// left_difficulty,right_difficulty) and the DICOM files it names.
	Data   string
	Limits imaging.Limits
	// Resamples and Seed drive the bootstrap (radiographs are resampled,
	// keeping both hips together).
	Resamples int
	Seed      uint64
	// Progress, when set, gets a line every 100 radiographs and the mean
	// time per stage.
	Progress io.Writer
}

// HipEvaluation is a hip model's evaluation: the table, and the cases it
// was computed on (for the plots).
type HipEvaluation struct {
	Manifest *inference.Manifest
	Data     string
	Report   *Report
	Cases    []Case
}

// Hip runs every labelled radiograph of o.Data through the service's own
// decoding and preprocessing and the model, then computes the table.
func Hip(ctx context.Context, o HipOptions) (*HipEvaluation, error) {
	m := o.Manifest
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	rows, err := readHipLabels(filepath.Join(o.Data, "labels.csv"), m)
	if err != nil {
		return nil, err
	}
	pre := m.Preprocess
	crops := make([]float32, len(pre.Regions)*pre.Resize.Width*pre.Resize.Height)
	var cases []Case
	var decodeTime, inferTime time.Duration
	began := time.Now()
	for i, row := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		img, err := decodeFile(filepath.Join(o.Data, row.file), o.Limits)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", row.file, err)
		}
		regions, err := pre.Prepare(img.Pixels, img.Meta.Rows, img.Meta.Columns, crops)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", row.file, err)
		}
		t1 := time.Now()
		outs, err := o.Model.Classify(ctx, crops, len(regions))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", row.file, err)
		}
		decodeTime += t1.Sub(t0)
		inferTime += time.Since(t1)
		for k, r := range regions {
			side := row.sides[r.Region.Laterality]
			cases = append(cases, Case{Truth: side.truth, Probabilities: outs[k].Probabilities, Cluster: row.file, Group: side.difficulty})
		}
		if done := i + 1; done%100 == 0 || done == len(rows) {
			fmt.Fprintf(progress, "eval: %d/%d radiographs (%.1fs)\n", done, len(rows), time.Since(began).Seconds())
		}
	}
	fmt.Fprintf(progress, "eval: decode+preprocess %.1f ms, inference %.1f ms per radiograph\n",
		float64(decodeTime.Microseconds())/1000/float64(len(rows)), float64(inferTime.Microseconds())/1000/float64(len(rows)))
	labels := make([]string, len(m.Labels))
	for i, l := range m.Labels {
		labels[i] = l.Key
	}
	return &HipEvaluation{Manifest: m, Data: o.Data, Report: Evaluate(cases, labels, o.Resamples, o.Seed), Cases: cases}, nil
}

// decodeFile reads and decodes one DICOM file.
func decodeFile(path string, lim imaging.Limits) (*imaging.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return imaging.Decode(b, lim)
}

// WritePlots writes confusion.png and roc.png into dir, creating it.
func (e *HipEvaluation) WritePlots(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := WritePlots(dir, e.Report, e.Cases); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	return nil
}

// WriteJSON writes the report as indented JSON with the model's id and
// version.
func (e *HipEvaluation) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Model   string `json:"model"`
		Version string `json:"version"`
		*Report
	}{e.Manifest.ID, e.Manifest.Version, e.Report})
}

// Print writes the report as the tables a person reads.
func (e *HipEvaluation) Print(w io.Writer) {
	m, r := e.Manifest, e.Report
	fmt.Fprintf(w, "model %s %s on %d hips of %d radiographs in %s\n", m.ID, m.Version, r.N, r.Clusters, e.Data)
	if m.TrainingData == "synthetic" {
		fmt.Fprintf(w, "(%s)\n", m.Warning)
	}
	printReport(w, r)
}

// withCI shows an estimate with its 95% interval, n/a when undefined.
func withCI(e Estimate) string {
	if math.IsNaN(e.Value) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f (%.4f-%.4f)", e.Value, e.CI95[0], e.CI95[1])
}

// printReport writes the evaluation table: the summary figures, per class,
// the confusion matrix, by difficulty group and, for a binary model, the
// DeLong interval and the decision curve.
func printReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "95%% CIs: percentile bootstrap, %d resamples of radiographs (seed %d)\n\n", r.Resamples, r.Seed)
	fmt.Fprintf(w, "accuracy   %s\nmacro-F1   %s\nmacro-AUC  %s\n\n", withCI(r.Accuracy), withCI(r.MacroF1), withCI(r.MacroAUC))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "class\tn\tsensitivity\tspecificity\tF1\tAUC")
	for _, c := range r.PerClass {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.Label, c.Support, withCI(c.Sensitivity), withCI(c.Specificity), withCI(c.F1), withCI(c.AUC))
	}
	tw.Flush()
	printConfusion(w, r)
	printGroups(w, r)
	if b := r.Binary; b != nil {
		fmt.Fprintf(w, "\nAUC with DeLong 95%% CI: %s\ndecision curve (threshold: net benefit model / treat all)\n", withCI(b.AUC))
		for _, p := range b.Decision {
			fmt.Fprintf(w, "  %.2f: %.4f / %.4f\n", p.Threshold, p.Model, p.TreatAll)
		}
	}
}

func printConfusion(w io.Writer, r *Report) {
	fmt.Fprintln(w, "\nconfusion matrix (rows: truth, columns: predicted)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t\n", strings.Join(r.Labels, "\t"))
	for i, row := range r.Confusion {
		cells := make([]string, len(row))
		for j, v := range row {
			cells[j] = fmt.Sprint(v)
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", r.Labels[i], strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func printGroups(w io.Writer, r *Report) {
	if len(r.ByGroup) == 0 {
		return
	}
	fmt.Fprintln(w, "\nby difficulty")
	groups := make([]string, 0, len(r.ByGroup))
	for g := range r.ByGroup {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "group\tn\taccuracy\tmacro-F1\tsensitivity per class")
	for _, g := range groups {
		gr := r.ByGroup[g]
		var sens []string
		for _, c := range gr.PerClass {
			if c.Support > 0 {
				sens = append(sens, fmt.Sprintf("%s %.3f (n=%d)", c.Label, c.Sensitivity.Value, c.Support))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", g, gr.N, withCI(gr.Accuracy), withCI(gr.MacroF1), strings.Join(sens, ", "))
	}
	tw.Flush()
}
