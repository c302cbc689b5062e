package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/analysis/offline"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
)

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
	files, single, err := offline.Files(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if *heatmap != "" && !single {
		if err := os.MkdirAll(*heatmap, 0o755); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	if mf, err := loadManifest(*modelFlag); err == nil && mf.Task == inference.TaskVertebral {
		return analyzeVertebral(ctx, mf, files, library, *threads, offline.VertebralOptions{Limits: lim, JSON: *asJSON, Policy: reviewBelow()}, stdout)
	}
	model, err := openModel(*modelFlag, library, *threads)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer model.Close()
	o := offline.HipOptions{Manifest: model.Manifest, Model: model.Model, Localiser: hipLocaliser(model), Policy: reviewBelow(), Limits: lim, Heatmap: *heatmap, Single: single, JSON: *asJSON}
	return wrap("analyze", offline.Hip(ctx, o, files, stdout))
}

// analyzeVertebral reads lateral spine radiographs with a vertebral model
// (every stage loaded).
func analyzeVertebral(ctx context.Context, m *inference.Manifest, files []string, library string, threads int, o offline.VertebralOptions, stdout io.Writer) error {
	p, closeAll, err := openVertebral(m, library, threads)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer closeAll()
	net, ok := p.Net.(analysis.Classifier)
	if !ok {
		return fmt.Errorf("analyze: model %s: its network is not a classifier the analysis can run", m.ID)
	}
	o.Model = &analysis.VertebralModel{Classifier: net, Pipeline: p}
	return wrap("analyze", offline.Vertebral(ctx, o, files, stdout))
}
