package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/imaging/perturb"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/evaluate"
)

// evalCmd runs `orthotriage eval`: labelled DICOM files through the
// service's own decoding, preprocessing and inference, then the table.
func evalCmd(ctx context.Context, args []string, library string, lim imaging.Limits, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelFlag := fs.String("model", "hip-000", "shipped model `ID`, a task (hip, vertebral-fracture-acuity: its shipped model), or a folder holding manifest.json and the model files")
	data := fs.String("data", "", "`DIR` with labels.csv (hip: file,left,right[,left_difficulty,right_difficulty]; spine: the phantom's labels) and the DICOM files")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	plots := fs.String("plots", "", "also write confusion.png, roc.png and reliability.png to `DIR` (with --perturb, one folder per perturbation)")
	resamples := fs.Int("resamples", 1000, "bootstrap resamples (radiographs are resampled, keeping both hips together)")
	seed := fs.Uint64("seed", 1, "bootstrap seed, and the noise seed of --perturb noise")
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fitT := fs.Bool("fit-temperature", false, "hip: also fit the softmax temperature on the labelled set's raw logits and print it with the NLL and ECE before and after (fit on a validation set)")
	perturbList := fs.String("perturb", "", "hip: also evaluate under each perturbation of the comma-separated `LIST` (rotate=DEG, shiftx=F, shifty=F, shift=F, zoom=F, noise=SIGMA, halfres, mono1; join with + to combine) and print a summary")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orthotriage eval --model ID|DIR --data DIR [--json] [--plots DIR] [--fit-temperature] [--perturb LIST]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *data == "":
		fs.Usage()
		return errors.New("eval: --data DIR is required")
	case *resamples < 100 || *resamples > 100000:
		return fmt.Errorf("eval: --resamples %d outside 100-100000", *resamples)
	case *fitT && *perturbList != "":
		return errors.New("eval: --fit-temperature and --perturb: fit on the unperturbed set in a run of its own")
	}
	var perturbations []perturb.Perturbation
	if *perturbList != "" {
		var err error
		if perturbations, err = perturb.Parse(*perturbList); err != nil {
			return fmt.Errorf("eval: --%w", err)
		}
	}
	if mf, err := loadManifest(*modelFlag); err == nil && mf.Task == inference.TaskVertebral {
		if *fitT || perturbations != nil {
			return errors.New("eval: --fit-temperature and --perturb evaluate hip models")
		}
		return evalVertebral(ctx, mf, *data, library, *threads, lim, *asJSON, stdout, stderr)
	}
	model, err := openModel(*modelFlag, library, *threads)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer model.Close()
	o := evaluate.HipOptions{Manifest: model.Manifest, Model: model.Model, Localiser: hipLocaliser(model), Policy: reviewBelow(), Data: *data, Limits: lim,
		Resamples: *resamples, Seed: *seed, Progress: stderr}
	if perturbations != nil {
		return evalRobustness(ctx, o, perturbations, *plots, *asJSON, stdout)
	}
	e, err := evaluate.Hip(ctx, o)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if *fitT {
		if err := e.FitTemperature(); err != nil {
			return fmt.Errorf("eval: --fit-temperature: %w", err)
		}
	}
	if *plots != "" {
		if err := e.WritePlots(*plots); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	if *asJSON {
		return e.WriteJSON(stdout)
	}
	e.Print(stdout)
	return nil
}

// evalRobustness evaluates a hip model unperturbed and under each
// perturbation, then prints every table and the summary.
func evalRobustness(ctx context.Context, o evaluate.HipOptions, ps []perturb.Perturbation, plots string, asJSON bool, stdout io.Writer) error {
	r, err := evaluate.HipRobustness(ctx, o, ps)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if plots != "" {
		if err := r.WritePlots(plots); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	if asJSON {
		return r.WriteJSON(stdout)
	}
	r.Print(stdout)
	return nil
}

// evalVertebral evaluates a vertebral model (every stage loaded) on a
// folder of labelled lateral spine radiographs.
func evalVertebral(ctx context.Context, m *inference.Manifest, data, library string, threads int, lim imaging.Limits, asJSON bool, stdout, stderr io.Writer) error {
	p, closeAll, err := openVertebral(m, library, threads)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer closeAll()
	e, err := evaluate.Vertebral(ctx, evaluate.VertebralOptions{Manifest: m, Reader: p, Fusion: p.Fusion, Data: data, Limits: lim, Progress: stderr})
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if asJSON {
		return e.WriteJSON(stdout)
	}
	e.Print(stdout)
	return nil
}
