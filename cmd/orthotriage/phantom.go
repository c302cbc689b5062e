package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/phantom"
	"github.com/orthotriage/orthotriage/phantom/dataset"
)

// maxPhantoms bounds one run (about 0.5 MB of DICOM per case).
const maxPhantoms = 100000

// phantomCmd runs `orthotriage phantom pelvis|spine|ood`.
func phantomCmd(ctx context.Context, args []string, library string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("phantom", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 10, "number of radiographs")
	seed := fs.Uint64("seed", 1, "generator seed; a case depends only on (seed, index)")
	start := fs.Int("start", 0, "index of the first case")
	out := fs.String("out", "", "output `DIR` (created)")
	cropsOnly := fs.Bool("crops-only", false, "write the model inputs computed by the service's own code instead of DICOM files: pelvis crops.npy and crops.csv; spine localiser.npy and localiser.csv, then, for each stage of --model already trained, rois.npy, rois.csv, radiomics.csv and deep.npy; pelvis with a vertebral --model: localiser inputs with no vertebra (negatives); pelvis with a hip --model that has a localiser: localiser.npy and localiser.csv, and once DIR/localiser.onnx exists also crops.npy and crops.csv cut through it")
	negatives := fs.Bool("negatives", false, "pelvis with --model a hip model with a localiser, or a vertebral model: write the localiser's negatives instead (localiser.npy and localiser.csv, every level absent: blank, black, white, noise, structured noise, upside-down, turned, mirrored, collimated and under- or over-exposed pelvis, and for a hip model a lateral spine); implies --crops-only")
	model := fs.String("model", "", "shipped model `ID` or folder whose manifest defines the inputs (with --crops-only; default hip-000 or spine-000)")
	pngs := fs.Bool("png", false, "also write an 8-bit PNG preview beside each DICOM file")
	as := fs.String("as", "pelvis", "ood: tag the images as a `REGION`: pelvis (PELVIS/AP, for the hip gate) or spine (SPINE/LL, for the vertebral gate; kinds "+strings.Join(dataset.SpineOODKinds, ", ")+")")
	vary := fs.String("vary", "none", "positioning and acquisition `VARIATION`: none (the default phantoms), clinical (rotation up to 15 degrees, shift 15%, zoom 0.8-1.2, dose 0.5-2x, noise, collimation, markers, text), or field=value pairs, alone or after a preset (clinical,noise=0.1); fields rotate, shift, zoom, exposure, noise, collimation, markers, text")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orthotriage phantom pelvis|spine|ood --n N --seed S --out DIR [--vary none|clinical|FIELD=V,...] [--crops-only] [--png] [--as pelvis|spine]")
		fmt.Fprintln(stderr, "  ood: out-of-distribution images for the image gate, every one tagged PELVIS/AP like the pelvis phantoms, or with --as spine SPINE/LL like the spine phantoms (labels.csv: file,kind): "+strings.Join(dataset.OODKinds, ", "))
		fs.PrintDefaults()
	}
	switch {
	case len(args) > 0 && isHelp(args[0]):
		fs.Usage()
		return flag.ErrHelp
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		fs.Usage()
		return errors.New("phantom: say pelvis, spine or ood")
	}
	kind := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch {
	case kind != "pelvis" && kind != "spine" && kind != "ood":
		return fmt.Errorf("phantom: unknown kind %q (pelvis, spine or ood)", kind)
	case kind == "ood" && (*cropsOnly || *negatives || *model != ""):
		return errors.New("phantom: ood writes DICOM files only (no --crops-only, --negatives or --model)")
	case kind != "ood" && *as != "pelvis":
		return errors.New("phantom: --as is for ood images only")
	case *out == "":
		return errors.New("phantom: --out DIR is required")
	case *n < 1 || *n > maxPhantoms:
		return fmt.Errorf("phantom: --n %d outside 1-%d", *n, maxPhantoms)
	case *start < 0:
		return fmt.Errorf("phantom: --start %d is negative", *start)
	}
	variation, err := phantom.ParseVariation(*vary)
	if err != nil {
		return fmt.Errorf("phantom: --vary: %w", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("phantom: %w", err)
	}
	g := dataset.Run{Kind: kind, N: *n, Seed: *seed, Start: *start, Out: *out, Vary: variation, PNG: *pngs, Progress: stderr, OODAs: *as}
	if kind == "ood" {
		return wrap("phantom", g.OOD(ctx, stdout))
	}
	if !*cropsOnly && !*negatives {
		return wrap("phantom", g.Generate(ctx, stdout))
	}
	if *model == "" {
		*model = map[string]string{"pelvis": "hip-000", "spine": "spine-000"}[kind]
	}
	m, err := loadManifest(*model)
	if err != nil {
		return fmt.Errorf("phantom: --model: %w", err)
	}
	switch {
	case kind == "spine" && m.Task == inference.TaskVertebral:
		return wrap("phantom", spineCrops(ctx, g, m, library, stdout))
	case kind == "pelvis" && m.Task == inference.TaskVertebral && *negatives:
		// Images of nothing and changed pelvises: no vertebra to find.
		return wrap("phantom", g.VertebralNegatives(ctx, m, stdout))
	case kind == "pelvis" && m.Task == inference.TaskVertebral:
		// Plain pelvises, no vertebra to find: the localiser's negatives.
		return wrap("phantom", g.LocaliserNegatives(ctx, m, stdout))
	case kind == "spine":
		return fmt.Errorf("phantom: --model %s is a %s model, spine phantoms need a %s model", *model, m.Task, inference.TaskVertebral)
	case m.Preprocess.Localiser != nil && *negatives:
		return wrap("phantom", g.HipNegatives(ctx, m, stdout))
	case m.Preprocess.Localiser != nil:
		return wrap("phantom", hipCrops(ctx, g, m, library, stdout))
	case *negatives:
		return fmt.Errorf("phantom: --negatives: model %s has no localiser (preprocessing.localiser) or vertebral localiser", *model)
	}
	g.Crops = &m.Preprocess
	return wrap("phantom", g.Generate(ctx, stdout))
}

// spineCrops writes a vertebral model's training data with the stages of
// the model already trained.
func spineCrops(ctx context.Context, g dataset.Run, m *inference.Manifest, library string, stdout io.Writer) error {
	p, closeAll, err := openSpine(m, library, 1)
	if err != nil {
		return err
	}
	defer closeAll()
	s := dataset.SpineModel{Manifest: m, Network: p.Net != nil}
	if p.Localiser != nil {
		s.Reader = p
	}
	return g.SpineCrops(ctx, s, stdout)
}

// hipCrops writes a hip model's localiser training data and, once its
// localiser is trained (its file exists), the crops cut through it.
func hipCrops(ctx context.Context, g dataset.Run, m *inference.Manifest, library string, stdout io.Writer) error {
	l, err := onnx.Open(m, onnx.Options{Library: library, Session: onnx.SessionOptions{IntraOpThreads: 1}, Partial: true})
	if err != nil {
		return err
	}
	defer l.Close()
	h := dataset.HipModel{Manifest: m}
	if l.HipLocaliser != nil {
		h.Localiser = l.HipLocaliser
	}
	return g.HipLocaliserData(ctx, h, stdout)
}

// isHelp says whether a command-line argument asks for the usage.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// wrap prefixes a subcommand's error with its name; nil stays nil.
func wrap(cmd string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}
