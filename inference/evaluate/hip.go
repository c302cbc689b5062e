package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/imaging/perturb"
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
	// Localiser is the hip localiser, for a manifest with one.
	Localiser analysis.HipLocaliser
	// Policy is the service's review threshold: hips below it are counted.
	Policy analysis.Policy
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
	// Perturbation, when set, is applied to every radiograph: to the file
	// before decoding, then to the decoded image before the preprocessing;
	// its noise is seeded by Seed and the file's name.
	Perturbation *perturb.Perturbation
}

// HipEvaluation is a hip model's evaluation: the table, and the cases it
// was computed on (for the plots).
type HipEvaluation struct {
	Manifest *inference.Manifest
	Data     string
	// Perturbation names the perturbation applied ("none": none) and
	// Rewritten counts the files it rewrote (mono1: those not already
	// MONOCHROME1).
	Perturbation string
	Rewritten    int
	Report       *Report
	Cases        []Case
	// NotRead are the radiographs the image gate refused (no hip of them
	// is in Cases); Review counts the hips below the review threshold.
	NotRead []NotReadCase
	Review  int
	// TemperatureFit is set by FitTemperature.
	TemperatureFit *TemperatureFit
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
	e := &HipEvaluation{Manifest: m, Data: o.Data, Perturbation: "none"}
	label := "eval"
	if o.Perturbation != nil {
		e.Perturbation = o.Perturbation.Name
		label = "eval " + o.Perturbation.Name
	}
	an := &analysis.Analyzer{Policy: analysis.Policy{ReviewBelow: o.Policy.ReviewBelow}, Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	model := analysis.ModelOf(m, o.Model, o.Localiser)
	var decodeTime, inferTime time.Duration
	began := time.Now()
	for i, row := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		img, err := e.read(o, row.file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", row.file, err)
		}
		// The service's own reading: the image gate, the crops, the model.
		hr, err := an.ReadHip(ctx, model, img)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", row.file, err)
		}
		decodeTime += time.Since(t0) - time.Duration(hr.Result.Timings.Inference*float64(time.Millisecond))
		inferTime += time.Duration(hr.Result.Timings.Inference * float64(time.Millisecond))
		if nr := hr.Result.NotRead; nr != nil {
			e.NotRead = append(e.NotRead, NotReadCase{File: row.file, Reason: nr.Reason, Text: nr.Text})
		}
		for k, f := range hr.Findings {
			side := row.sides[f.Laterality]
			e.Cases = append(e.Cases, Case{Truth: side.truth, Probabilities: hr.Outputs[k].Probabilities, Logits: hr.Outputs[k].Logits, Cluster: row.file, Group: side.difficulty})
			if hr.Result.Findings[k].LowConfidence {
				e.Review++
			}
		}
		if done := i + 1; done%100 == 0 || done == len(rows) {
			fmt.Fprintf(progress, "%s: %d/%d radiographs (%.1fs)\n", label, done, len(rows), time.Since(began).Seconds())
		}
	}
	fmt.Fprintf(progress, "%s: decode+preprocess %.1f ms, inference %.1f ms per radiograph\n", label,
		float64(decodeTime.Microseconds())/1000/float64(len(rows)), float64(inferTime.Microseconds())/1000/float64(len(rows)))
	if o.Perturbation != nil && o.Perturbation.Mono1 {
		fmt.Fprintf(progress, "%s: %d of %d files rewritten as MONOCHROME1, the others were already\n", label, e.Rewritten, len(rows))
	}
	if len(e.NotRead) > 0 {
		fmt.Fprintf(progress, "%s: %d of %d radiographs not read by the image gate (%s)\n", label, len(e.NotRead), len(rows), notReadSummary(e.NotRead))
	}
	if len(e.Cases) == 0 {
		return nil, fmt.Errorf("%s: no radiograph was read (%d not read by the image gate: %s)", o.Data, len(e.NotRead), notReadSummary(e.NotRead))
	}
	labels := make([]string, len(m.Labels))
	for i, l := range m.Labels {
		labels[i] = l.Key
	}
	e.Report = Evaluate(e.Cases, labels, o.Resamples, o.Seed)
	return e, nil
}

// NotReadCase is one radiograph the image gate refused.
type NotReadCase struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
	Text   string `json:"text"`
}

// read reads and decodes one DICOM file of the folder, perturbed as o says.
func (e *HipEvaluation) read(o HipOptions, file string) (*imaging.Image, error) {
	b, err := os.ReadFile(filepath.Join(o.Data, file))
	if err != nil {
		return nil, err
	}
	p := o.Perturbation
	if p == nil {
		return imaging.Decode(b, o.Limits)
	}
	b, rewritten, err := p.File(b, o.Limits)
	if err != nil {
		return nil, err
	}
	if rewritten {
		e.Rewritten++
	}
	img, err := imaging.Decode(b, o.Limits)
	if err != nil {
		return nil, err
	}
	return p.Image(img, fileSeed(o.Seed, file))
}

// notReadSummary counts refusals by reason: "blank 2, noise 1".
func notReadSummary(cases []NotReadCase) string {
	n := map[string]int{}
	var reasons []string
	for _, c := range cases {
		if n[c.Reason]++; n[c.Reason] == 1 {
			reasons = append(reasons, c.Reason)
		}
	}
	slices.Sort(reasons)
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s %d", r, n[r]))
	}
	return strings.Join(parts, ", ")
}

// fileSeed is the noise seed of one file: the run's seed and the file's
// name, so a file gets the same noise whatever else the folder holds.
func fileSeed(seed uint64, file string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(file))
	return seed ^ h.Sum64()
}

// decodeFile reads and decodes one DICOM file.
func decodeFile(path string, lim imaging.Limits) (*imaging.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return imaging.Decode(b, lim)
}

// FitTemperature fits the softmax temperature on the evaluation's raw
// logits (see FitTemperature) and keeps it for the report.
func (e *HipEvaluation) FitTemperature() error {
	fit, err := FitTemperature(e.Cases, e.Manifest.Calibration.Temperature)
	if err != nil {
		return err
	}
	e.TemperatureFit = fit
	return nil
}

// WritePlots writes confusion.png, roc.png and reliability.png into dir,
// creating it.
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
		hipRun
	}{e.Manifest.ID, e.Manifest.Version, e.run()})
}

// hipRun is one evaluation as JSON: the perturbation when there was one,
// the report, and the temperature fit when there was one.
type hipRun struct {
	Perturbation   string          `json:"perturbation,omitempty"`
	Rewritten      int             `json:"rewritten,omitempty"`
	NotRead        []NotReadCase   `json:"notRead,omitempty"`
	Review         int             `json:"belowReview,omitempty"`
	TemperatureFit *TemperatureFit `json:"temperatureFit,omitempty"`
	*Report
}

func (e *HipEvaluation) run() hipRun {
	r := hipRun{Rewritten: e.Rewritten, NotRead: e.NotRead, Review: e.Review, TemperatureFit: e.TemperatureFit, Report: e.Report}
	if e.Perturbation != "none" {
		r.Perturbation = e.Perturbation
	}
	return r
}

// Print writes the report as the tables a person reads.
func (e *HipEvaluation) Print(w io.Writer) {
	m, r := e.Manifest, e.Report
	fmt.Fprintf(w, "model %s %s on %d hips of %d radiographs in %s\n", m.ID, m.Version, r.N, r.Clusters, e.Data)
	if e.Perturbation != "none" {
		fmt.Fprintf(w, "perturbation: %s\n", e.Perturbation)
	}
	if m.TrainingData == "synthetic" {
		fmt.Fprintf(w, "(%s)\n", m.Warning)
	}
	if len(e.NotRead) > 0 {
		fmt.Fprintf(w, "not read by the image gate: %d radiographs (%s), left out of the table\n", len(e.NotRead), notReadSummary(e.NotRead))
	}
	if e.Review > 0 {
		fmt.Fprintf(w, "below the review threshold: %d hips (marked low confidence, needs review, by the service)\n", e.Review)
	}
	printReport(w, r)
	if f := e.TemperatureFit; f != nil {
		printFit(w, f)
	}
}

// printFit writes the temperature fit and what to do with it.
func printFit(w io.Writer, f *TemperatureFit) {
	fmt.Fprintf(w, "\ntemperature fit on %d hips (minimum negative log-likelihood of the truth on the raw logits)\n", f.N)
	fmt.Fprintf(w, "  fitted temperature %.4f (manifest %.4f)\n", f.Temperature, f.ManifestTemperature)
	fmt.Fprintf(w, "  NLL %.4f -> %.4f, ECE %.4f -> %.4f\n", f.NLLBefore, f.NLLAfter, f.ECEBefore, f.ECEAfter)
	if f.AtBound {
		fmt.Fprintf(w, "  the fit stopped at a bound (%g-%g): the set has too few errors to calibrate on\n", MinTemperature, float64(MaxTemperature))
	}
	fmt.Fprintf(w, "  set \"calibration\": {\"temperature\": %.4g} in manifest.json if this is a validation set, then evaluate on another\n", f.Temperature)
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
	fmt.Fprintf(w, "accuracy   %s\nmacro-F1   %s\nmacro-AUC  %s\nECE        %s (%d bins of the top-class probability)\n\n",
		withCI(r.Accuracy), withCI(r.MacroF1), withCI(r.MacroAUC), withCI(r.ECE), len(r.Reliability))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "class\tn\tsensitivity\tspecificity\tF1\tAUC")
	for _, c := range r.PerClass {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.Label, c.Support, withCI(c.Sensitivity), withCI(c.Specificity), withCI(c.F1), withCI(c.AUC))
	}
	tw.Flush()
	printConfusion(w, r)
	printReliability(w, r)
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

// printReliability writes the non-empty bins of the reliability diagram.
func printReliability(w io.Writer, r *Report) {
	fmt.Fprintln(w, "\nreliability (top-class probability bins with hips)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bin\tn\tconfidence\taccuracy\t")
	for _, b := range r.Reliability {
		if b.N > 0 {
			fmt.Fprintf(tw, "%.3f-%.3f\t%d\t%.4f\t%.4f\t\n", b.Lower, b.Upper, b.N, b.Confidence, b.Accuracy)
		}
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
