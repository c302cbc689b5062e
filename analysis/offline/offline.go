// Package offline analyses radiographs in local files with loaded models,
// through the service's own decoding, preprocessing and interpretation,
// and prints what `orthotriage analyze` shows: for hips the findings per
// side, the time of each stage and activation-map overlays; for spines the
// vertebral reading (acuity is the DLR score: a file carries no clinical
// data).
package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
)

// Files lists path itself (single), or the .dcm files in the folder path,
// sorted.
func Files(path string) (files []string, single bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	if !st.IsDir() {
		return []string{path}, true, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, false, err
	}
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".dcm") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, false, fmt.Errorf("%s: no .dcm files", path)
	}
	return files, false, nil
}

// Classifier runs prepared crops through a loaded model.
type Classifier interface {
	Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error)
}

// FileAnalysis is what a hip analysis reports for one file.
type FileAnalysis struct {
	File  string `json:"file"`
	Model string `json:"model"`
	// NotRead is set when the image gate refused the file: no finding.
	NotRead  *analysis.NotRead   `json:"notRead,omitempty"`
	Findings []inference.Finding `json:"findings,omitempty"`
	// LowConfidence names the regions below the review threshold; Review
	// is set when there is one.
	LowConfidence []string       `json:"lowConfidence,omitempty"`
	Review        bool           `json:"review,omitempty"`
	Hips          *analysis.Hips `json:"hips,omitempty"`
	Heatmap       string         `json:"heatmap,omitempty"`
	Timings       StageTimings   `json:"timingsMs"`
	Error         string         `json:"error,omitempty"`
}

// StageTimings are the milliseconds each stage of one file took.
type StageTimings struct {
	Decode      float64 `json:"decode"`
	Preprocess  float64 `json:"preprocess"`
	Inference   float64 `json:"inference"`
	Postprocess float64 `json:"postprocess"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// HipOptions say how Hip analyses files.
type HipOptions struct {
	Manifest *inference.Manifest
	Model    Classifier
	// Localiser is the hip localiser, for a manifest with one.
	Localiser analysis.HipLocaliser
	// Policy is the service's review threshold (heat-map thumbnails are
	// not made here).
	Policy analysis.Policy
	Limits imaging.Limits
	// Heatmap, when set, is where the activation-map overlays go: the PNG
	// file itself when Single, else a folder (which exists) with one PNG
	// per file.
	Heatmap string
	Single  bool
	// JSON prints one object per file instead of the table.
	JSON bool
}

// Hip analyses each file with a hip model and prints its result; a file
// that fails is reported in its place, and Hip then fails, counting them.
func Hip(ctx context.Context, o HipOptions, files []string, w io.Writer) error {
	m := o.Manifest
	failed := 0
	an := &analysis.Analyzer{Policy: analysis.Policy{ReviewBelow: o.Policy.ReviewBelow}, Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	model := analysis.ModelOf(m, o.Model, o.Localiser)
	enc := json.NewEncoder(w)
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := FileAnalysis{File: file, Model: m.ID + " " + m.Version}
		if err := o.analyze(ctx, an, model, file, &a); err != nil {
			a.Error = err.Error()
			failed++
		}
		if o.JSON {
			enc.Encode(a)
			continue
		}
		printHip(w, a, m)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed", failed, len(files))
	}
	return nil
}

// analyze reads and decodes one file and reads it as the service does
// (the image gate, the crops, the model, the review threshold), timing
// each stage, and writes its overlay.
func (o HipOptions) analyze(ctx context.Context, an *analysis.Analyzer, model analysis.Classifier, file string, a *FileAnalysis) error {
	t0 := time.Now()
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	img, err := imaging.Decode(b, o.Limits)
	if err != nil {
		return err
	}
	t1 := time.Now()
	hr, err := an.ReadHip(ctx, model, img)
	if err != nil {
		return err
	}
	r := hr.Result
	a.NotRead, a.Findings, a.Review, a.Hips = r.NotRead, hr.Findings, r.Review, r.Hips
	for _, f := range r.Findings {
		if f.LowConfidence {
			a.LowConfidence = append(a.LowConfidence, f.Region)
		}
	}
	a.Timings = StageTimings{Decode: ms(t1.Sub(t0)), Preprocess: r.Timings.Preprocess, Inference: r.Timings.Inference, Postprocess: r.Timings.Postprocess}
	if r.NotRead != nil {
		return nil
	}
	var heats []*inference.Heat
	for k, f := range hr.Findings {
		if o.Heatmap != "" {
			heats = append(heats, f.ActivationMap(hr.Outputs[k]))
		}
	}
	if o.Heatmap == "" {
		return nil
	}
	out := o.Heatmap
	if !o.Single {
		out = filepath.Join(o.Heatmap, strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))+".png")
	}
	if err := imaging.SavePNG(out, inference.Overlay(img.Pixels, img.Meta.Rows, img.Meta.Columns, heats)); err != nil {
		return err
	}
	a.Heatmap = out
	return nil
}

func printHip(w io.Writer, a FileAnalysis, m *inference.Manifest) {
	fmt.Fprintf(w, "%s (model %s)\n", a.File, a.Model)
	if a.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", a.Error)
		return
	}
	if a.NotRead != nil {
		fmt.Fprintf(w, "  not read: %s (%s)\n", a.NotRead.Text, a.NotRead.Reason)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  hip\tfinding\tprobability\tpriority\t")
	for _, f := range a.Findings {
		prio := f.Priority
		if prio == "" {
			prio = "-"
		}
		mark := ""
		if !f.Reported {
			mark = " (below threshold)"
		}
		if slices.Contains(a.LowConfidence, f.Region) {
			mark += " (low confidence, needs review)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%.1f%%%s\t%s\t\n", f.Laterality, f.Display, 100*f.Probability, mark, prio)
	}
	tw.Flush()
	t := a.Timings
	fmt.Fprintf(w, "  timings: decode %.1f ms, preprocess %.1f ms, inference %.1f ms, postprocess %.1f ms\n", t.Decode, t.Preprocess, t.Inference, t.Postprocess)
	if a.Heatmap != "" {
		fmt.Fprintf(w, "  heatmap: %s\n", a.Heatmap)
	}
	if m.TrainingData == "synthetic" {
		fmt.Fprintf(w, "  (%s)\n", m.Warning)
	}
}

// SpineAnalysis is what a vertebral analysis reports for one file.
type SpineAnalysis struct {
	File   string           `json:"file"`
	Result *analysis.Result `json:"result,omitempty"`
	Error  string           `json:"error,omitempty"`
}

// VertebralOptions say how Vertebral analyses files.
type VertebralOptions struct {
	Model *analysis.VertebralModel
	// Policy is the service's review threshold.
	Policy analysis.Policy
	Limits imaging.Limits
	// JSON prints one object per file instead of the table.
	JSON bool
}

// Vertebral reads each file as a lateral spine radiograph, as the service
// does but without clinical data, and prints its result; a file that fails
// is reported in its place, and Vertebral then fails, counting them.
func Vertebral(ctx context.Context, o VertebralOptions, files []string, w io.Writer) error {
	m := o.Model.Pipeline.Manifest
	a := &analysis.Analyzer{Policy: analysis.Policy{ReviewBelow: o.Policy.ReviewBelow}, Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	enc := json.NewEncoder(w)
	failed := 0
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		out := SpineAnalysis{File: file}
		r, err := o.read(ctx, a, file)
		if err != nil {
			out.Error = err.Error()
			failed++
		} else {
			out.Result = &r
		}
		if o.JSON {
			enc.Encode(out)
			continue
		}
		printSpine(w, out, m)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed", failed, len(files))
	}
	return nil
}

func (o VertebralOptions) read(ctx context.Context, a *analysis.Analyzer, file string) (analysis.Result, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return analysis.Result{}, err
	}
	img, err := imaging.Decode(b, o.Limits)
	if err != nil {
		return analysis.Result{}, err
	}
	return a.ReadImage(ctx, o.Model, img, analysis.Input{})
}

func printSpine(w io.Writer, s SpineAnalysis, m *inference.Manifest) {
	fmt.Fprintf(w, "%s (model %s %s)\n", s.File, m.ID, m.Version)
	if s.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", s.Error)
		return
	}
	r := s.Result
	if r.NotRead != nil && r.NotRead.Reason != analysis.ReasonNoVertebra {
		fmt.Fprintf(w, "  not read: %s (%s)\n", r.NotRead.Text, r.NotRead.Reason)
		return
	}
	fmt.Fprintf(w, "  localised: %s\n", strings.Join(r.Localised, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  vertebra\tP(fracture)\tacuity\tP(acute)\tfrom\tpriority\t")
	for _, f := range r.Findings {
		pa := f.Probability
		if f.Class == "chronic" {
			pa = 1 - pa
		}
		fmt.Fprintf(tw, "  %s\t%.3f\t%s\t%.3f\t%s\t%s\t\n", f.Region, f.Acuity.Fracture, f.Class, pa, f.Acuity.Method(), f.Priority)
	}
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}
