// Command orthotriage is the AI triage service for musculoskeletal
// radiographs: a CDS Hooks 2.0 service for EHRs.
//
//	orthotriage serve [flags]   run the service (see serve --help)
//	orthotriage inspect FILE    decode one radiograph and print what the pipeline sees
//	orthotriage phantom KIND    generate synthetic radiographs with known truth
//	orthotriage analyze FILE    run the model on a radiograph locally
//	orthotriage eval            evaluate a model on labelled radiographs
//	orthotriage sandbox         seed a FHIR sandbox and PACS, and test the service as an EHR
//	orthotriage version         print version, commit, Go and ONNX Runtime versions
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/orthotriage/orthotriage/app"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// version and commit are set at build time with -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orthotriage:", err)
		os.Exit(1)
	}
}

const usage = `orthotriage: AI triage of hip and spine radiographs for the EHR (CDS Hooks 2.0)

Usage:
  orthotriage serve [flags]   run the service; "orthotriage serve --help" lists every setting
  orthotriage inspect [--png OUT] FILE.dcm|URL
                              decode one radiograph and print what the pipeline sees (JSON)
  orthotriage phantom pelvis|spine --n N --seed S --out DIR [--vary VARIATION] [--crops-only] [--png]
                              generate synthetic radiographs with known truth (DICOM + labels.csv)
  orthotriage analyze [--json] [--heatmap OUT] [--model ID|DIR] FILE.dcm|DIR
                              run the model on radiographs locally: findings per hip, timings, heat maps
  orthotriage eval --model ID|DIR --data DIR [--json] [--plots DIR] [--perturb LIST] [--fit-temperature]
                              evaluate a model on labelled DICOM files (accuracy, macro-F1, macro-AUC, CIs,
                              calibration); --perturb also under each perturbation (rotate=15,shift=0.1,...)
  orthotriage sandbox seed|keys|check
                              the integration kit: seed a FHIR server and PACS, then play the EHR
  orthotriage version         print version, commit, Go and ONNX Runtime versions
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := config.Load("serve", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		if getenv("GOGC") == "" {
			debug.SetGCPercent(serveGCPercent)
		}
		return serve(ctx, cfg, newLogger(cfg.LogLevel, stdout))
	case "version":
		cfg, err := config.Load("version", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		printVersion(stdout, cfg)
		return nil
	case "inspect":
		// Settings come from ORTHOTRIAGE_* and ORTHOTRIAGE_CONFIG; the
		// command's own flags are --png and the file.
		cfg, err := config.Load("inspect", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return inspect(ctx, args[1:], retrieverOptions(cfg).Limits, stdout, stderr)
	case "phantom":
		cfg, err := config.Load("phantom", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return phantomCmd(ctx, args[1:], cfg.ONNXRuntime.Library, stdout, stderr)
	case "analyze":
		cfg, err := config.Load("analyze", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return analyzeCmd(ctx, args[1:], cfg.ONNXRuntime.Library, retrieverOptions(cfg).Limits, stdout, stderr)
	case "eval":
		// Settings (the ONNX Runtime library, decoding limits) come from
		// ORTHOTRIAGE_* and ORTHOTRIAGE_CONFIG; the command has its own flags.
		cfg, err := config.Load("eval", nil, getenv, stderr)
		if err != nil {
			return err
		}
		return evalCmd(ctx, args[1:], cfg.ONNXRuntime.Library, retrieverOptions(cfg).Limits, stdout, stderr)
	case "sandbox":
		return sandboxCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// retrieverOptions are the imaging settings as the offline commands take
// them (their decoding limits); the service's are built in app.
func retrieverOptions(cfg config.Config) imaging.RetrieverOptions { return app.RetrieverOptions(cfg) }

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func printVersion(w io.Writer, cfg config.Config) {
	rev := commit
	if bi, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	ortVersion := "not available"
	if path, err := onnx.FindLibrary(cfg.ONNXRuntime.Library); err != nil {
		ortVersion += " (" + err.Error() + ")"
	} else if v, err := onnx.RuntimeVersion(path); err != nil {
		ortVersion += " (" + err.Error() + ")"
	} else {
		ortVersion = v + " (" + path + ")"
	}
	fmt.Fprintf(w, "orthotriage %s\ncommit: %s\ngo: %s %s/%s\nonnxruntime: %s\n",
		version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH, ortVersion)
}

// serveGCPercent is the garbage collector's target in serve unless GOGC
// is set: the service's own heap is small (about 23 MB under load) and
// each call allocates, so the default 100 collects often; 400 gave 20-29%
// more cached patient-view answers per second for 10-50 MB more resident
// memory (make bench-hook, docs/operations.md#hook-path-speed).
const serveGCPercent = 400

// serve runs the service built from cfg until ctx is done (SIGINT,
// SIGTERM), then lets it shut down in order.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.Info("starting", "version", version, "config", cfg.Redacted())
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := app.New(ctx, cfg, log, reg, newRuntime(cfg.ONNXRuntime))
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
