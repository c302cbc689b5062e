package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
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
	"github.com/orthotriage/orthotriage/inference/onnx"
)

// fileAnalysis is what `orthotriage analyze` reports for one file.
type fileAnalysis struct {
	File     string              `json:"file"`
	Model    string              `json:"model"`
	Findings []inference.Finding `json:"findings,omitempty"`
	Heatmap  string              `json:"heatmap,omitempty"`
	Timings  stageTimings        `json:"timingsMs"`
	Error    string              `json:"error,omitempty"`
}

type stageTimings struct {
	Decode      float64 `json:"decode"`
	Preprocess  float64 `json:"preprocess"`
	Inference   float64 `json:"inference"`
	Postprocess float64 `json:"postprocess"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// analyzeCmd decodes radiographs and runs the model locally.
func analyzeCmd(ctx context.Context, args []string, library string, lim imaging.Limits, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelFlag := fs.String("model", "hip-000", "shipped model `ID`, or a folder holding manifest.json and the ONNX file")
	asJSON := fs.Bool("json", false, "print JSON (one object per file)")
	heatmap := fs.String("heatmap", "", "write the activation-map overlay PNG to `OUT` (a file for one input, a folder for a folder)")
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orthotriage analyze [--json] [--heatmap OUT] [--model ID|DIR] FILE.dcm|DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("analyze: want one FILE.dcm or DIR")
	}
	files, single, err := dicomFiles(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if *heatmap != "" && !single {
		if err := os.MkdirAll(*heatmap, 0o755); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	if mf, err := loadManifest(*modelFlag); err == nil && mf.Task == inference.TaskVertebral {
		return analyzeSpine(ctx, mf, files, library, *threads, lim, *asJSON, stdout)
	}
	loaded, err := openModel(*modelFlag, library, *threads)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer loaded.Close()
	model, m := loaded.Model, loaded.Manifest

	pre := m.Preprocess
	crops := make([]float32, len(pre.Regions)*pre.Resize.Width*pre.Resize.Height)
	failed := 0
	enc := json.NewEncoder(stdout)
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := fileAnalysis{File: file, Model: m.ID + " " + m.Version}
		if err := analyzeOne(file, lim, model, crops, *heatmap, single, &a); err != nil {
			a.Error = err.Error()
			failed++
		}
		if *asJSON {
			enc.Encode(a)
			continue
		}
		printAnalysis(stdout, a, m)
	}
	if failed > 0 {
		return fmt.Errorf("analyze: %d of %d files failed", failed, len(files))
	}
	return nil
}

func analyzeOne(file string, lim imaging.Limits, model *onnx.Model, crops []float32, heatmap string, single bool, a *fileAnalysis) error {
	m := model.Manifest()
	t0 := time.Now()
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	img, err := imaging.Decode(b, lim)
	if err != nil {
		return err
	}
	t1 := time.Now()
	regions, err := m.Preprocess.Prepare(img.Pixels, img.Meta.Rows, img.Meta.Columns, crops)
	if err != nil {
		return err
	}
	t2 := time.Now()
	outs, err := model.Run(crops, len(regions))
	if err != nil {
		return err
	}
	t3 := time.Now()
	var heats []*inference.Heat
	for k, r := range regions {
		f := m.Interpret(outs[k], r)
		a.Findings = append(a.Findings, f)
		if heatmap != "" {
			heats = append(heats, f.ActivationMap(outs[k]))
		}
	}
	t4 := time.Now()
	a.Timings = stageTimings{Decode: ms(t1.Sub(t0)), Preprocess: ms(t2.Sub(t1)), Inference: ms(t3.Sub(t2)), Postprocess: ms(t4.Sub(t3))}
	if heatmap != "" {
		out := heatmap
		if !single {
			out = filepath.Join(heatmap, strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))+".png")
		}
		if err := savePNG(out, inference.Overlay(img.Pixels, img.Meta.Rows, img.Meta.Columns, heats)); err != nil {
			return err
		}
		a.Heatmap = out
	}
	return nil
}

// dicomFiles lists path itself, or the .dcm files in the folder path (sorted).
func dicomFiles(path string) (files []string, single bool, err error) {
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

// openModel loads ONNX Runtime and a session for the model named by arg
// (see loadManifest), run without a batcher.
func openModel(arg, library string, threads int) (*onnx.Loaded, error) {
	m, err := loadManifest(arg)
	if err != nil {
		return nil, err
	}
	return onnx.Open(m, onnx.Options{Library: library, Session: onnx.SessionOptions{IntraOpThreads: threads}})
}

func printAnalysis(w io.Writer, a fileAnalysis, m *inference.Manifest) {
	fmt.Fprintf(w, "%s (model %s)\n", a.File, a.Model)
	if a.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", a.Error)
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

// analyzeSpine reads lateral spine radiographs with a vertebral model, as
// the service does but without clinical data: acuity is the DLR score.
func analyzeSpine(ctx context.Context, m *inference.Manifest, files []string, library string, threads int, lim imaging.Limits, asJSON bool, stdout io.Writer) error {
	p, closeAll, err := openSpine(m, library, threads)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer closeAll()
	if p.Localiser == nil || p.Net == nil || p.Fusion == nil {
		return fmt.Errorf("analyze: model %s lacks its localiser, network or fusion file", m.ID)
	}
	v := &analysis.VertebralModel{Classifier: p.Net.(analysis.Classifier), Pipeline: p}
	a := &analysis.Analyzer{Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	enc := json.NewEncoder(stdout)
	failed := 0
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		out := struct {
			File   string           `json:"file"`
			Result *analysis.Result `json:"result,omitempty"`
			Error  string           `json:"error,omitempty"`
		}{File: file}
		r, err := readSpineFile(ctx, a, v, file, lim)
		if err != nil {
			out.Error = err.Error()
			failed++
		} else {
			out.Result = &r
		}
		if asJSON {
			enc.Encode(out)
			continue
		}
		fmt.Fprintf(stdout, "%s (model %s %s)\n", file, m.ID, m.Version)
		if err != nil {
			fmt.Fprintf(stdout, "  error: %s\n", out.Error)
			continue
		}
		fmt.Fprintf(stdout, "  localised: %s\n", strings.Join(r.Localised, " "))
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
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
			fmt.Fprintf(stdout, "  note: %s\n", n)
		}
	}
	if failed > 0 {
		return fmt.Errorf("analyze: %d of %d files failed", failed, len(files))
	}
	return nil
}

func readSpineFile(ctx context.Context, a *analysis.Analyzer, v *analysis.VertebralModel, file string, lim imaging.Limits) (analysis.Result, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return analysis.Result{}, err
	}
	img, err := imaging.Decode(b, lim)
	if err != nil {
		return analysis.Result{}, err
	}
	return a.ReadVertebral(ctx, v, img, analysis.Input{})
}
