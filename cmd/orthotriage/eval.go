package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
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
	"github.com/orthotriage/orthotriage/inference/evaluate"
	"github.com/orthotriage/orthotriage/inference/models"
)

// evalCmd runs `orthotriage eval`: labelled DICOM files through the
// service's own decoding, preprocessing and inference, then the table.
func evalCmd(ctx context.Context, args []string, library string, lim imaging.Limits, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelFlag := fs.String("model", "hip-000", "shipped model `ID`, a task (hip, vertebral-fracture-acuity: its shipped model), or a folder holding manifest.json and the model files")
	data := fs.String("data", "", "`DIR` with labels.csv (hip: file,left,right[,left_difficulty,right_difficulty]; spine: the phantom's labels) and the DICOM files")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	plots := fs.String("plots", "", "also write confusion.png and roc.png to `DIR`")
	resamples := fs.Int("resamples", 1000, "bootstrap resamples (radiographs are resampled, keeping both hips together)")
	seed := fs.Uint64("seed", 1, "bootstrap seed")
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orthotriage eval --model ID|DIR --data DIR [--json] [--plots DIR]")
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
	}
	if mf, err := loadManifest(*modelFlag); err == nil && mf.Task == inference.TaskVertebral {
		return evalSpine(ctx, mf, *data, library, *threads, lim, *asJSON, stdout, stderr)
	}
	loaded, err := openModel(*modelFlag, library, *threads)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer loaded.Close()
	model, m := loaded.Model, loaded.Manifest
	rows, err := readHipLabels(filepath.Join(*data, "labels.csv"), m)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}

	pre := m.Preprocess
	w, h := pre.Resize.Width, pre.Resize.Height
	crops := make([]float32, len(pre.Regions)*w*h)
	var cases []evaluate.Case
	var decodeTime, inferTime time.Duration
	began := time.Now()
	for i, row := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		b, err := os.ReadFile(filepath.Join(*data, row.file))
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		img, err := imaging.Decode(b, lim)
		if err != nil {
			return fmt.Errorf("eval %s: %w", row.file, err)
		}
		regions, err := pre.Prepare(img.Pixels, img.Meta.Rows, img.Meta.Columns, crops)
		if err != nil {
			return fmt.Errorf("eval %s: %w", row.file, err)
		}
		t1 := time.Now()
		outs, err := model.Run(crops, len(regions))
		if err != nil {
			return fmt.Errorf("eval %s: %w", row.file, err)
		}
		decodeTime += t1.Sub(t0)
		inferTime += time.Since(t1)
		for k, r := range regions {
			side := row.sides[r.Region.Laterality]
			cases = append(cases, evaluate.Case{Truth: side.truth, Probabilities: outs[k].Probabilities, Cluster: row.file, Group: side.difficulty})
		}
		if done := i + 1; done%100 == 0 || done == len(rows) {
			fmt.Fprintf(stderr, "eval: %d/%d radiographs (%.1fs)\n", done, len(rows), time.Since(began).Seconds())
		}
	}
	fmt.Fprintf(stderr, "eval: decode+preprocess %.1f ms, inference %.1f ms per radiograph\n",
		float64(decodeTime.Microseconds())/1000/float64(len(rows)), float64(inferTime.Microseconds())/1000/float64(len(rows)))
	labels := make([]string, len(m.Labels))
	for i, l := range m.Labels {
		labels[i] = l.Key
	}
	rep := evaluate.Evaluate(cases, labels, *resamples, *seed)
	if *plots != "" {
		if err := os.MkdirAll(*plots, 0o755); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		if err := evaluate.WritePlots(*plots, rep, cases); err != nil {
			return fmt.Errorf("eval: plots: %w", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Model   string `json:"model"`
			Version string `json:"version"`
			*evaluate.Report
		}{m.ID, m.Version, rep})
	}
	fmt.Fprintf(stdout, "model %s %s on %d hips of %d radiographs in %s\n", m.ID, m.Version, rep.N, rep.Clusters, *data)
	if m.TrainingData == "synthetic" {
		fmt.Fprintf(stdout, "(%s)\n", m.Warning)
	}
	printReport(stdout, rep)
	return nil
}

// loadManifest reads a model folder when arg names one, else a shipped
// model by id or by task (the first shipped model of that task).
func loadManifest(arg string) (*inference.Manifest, error) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return inference.LoadManifest(arg)
	}
	if arg == inference.TaskHip || arg == inference.TaskVertebral {
		for _, id := range models.IDs() {
			if m, err := models.Manifest(id); err == nil && m.Task == arg {
				return m, nil
			}
		}
		return nil, fmt.Errorf("no shipped model for task %s (shipped: %s)", arg, strings.Join(models.IDs(), ", "))
	}
	m, err := models.Manifest(arg)
	if err != nil {
		return nil, fmt.Errorf("model %s: not a folder, and %w", arg, err)
	}
	return m, nil
}

type hipRow struct {
	file  string
	sides map[string]hipSide
}

type hipSide struct {
	truth      int
	difficulty string
}

// readHipLabels reads labels.csv: file, left, right and optionally
// left_difficulty, right_difficulty; classes are the model's label keys.
func readHipLabels(path string, m *inference.Manifest) ([]hipRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no labelled rows", path)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[strings.TrimSpace(h)] = i
	}
	for _, need := range []string{"file", "left", "right"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s: header %v lacks %q", path, recs[0], need)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var rows []hipRow
	for n, rec := range recs[1:] {
		row := hipRow{file: get(rec, "file"), sides: map[string]hipSide{}}
		if row.file == "" || filepath.IsAbs(row.file) || slices.Contains(strings.Split(filepath.ToSlash(row.file), "/"), "..") {
			return nil, fmt.Errorf("%s line %d: file %q must be a path inside the folder", path, n+2, row.file)
		}
		for _, side := range []string{"left", "right"} {
			class := get(rec, side)
			idx := m.LabelIndex(class)
			if idx < 0 {
				return nil, fmt.Errorf("%s line %d: %s class %q is not a label of model %s", path, n+2, side, class, m.ID)
			}
			row.sides[side] = hipSide{truth: idx, difficulty: get(rec, side+"_difficulty")}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func printReport(w io.Writer, r *evaluate.Report) {
	ci := func(e evaluate.Estimate) string {
		if math.IsNaN(e.Value) {
			return "n/a"
		}
		return fmt.Sprintf("%.4f (%.4f-%.4f)", e.Value, e.CI95[0], e.CI95[1])
	}
	fmt.Fprintf(w, "95%% CIs: percentile bootstrap, %d resamples of radiographs (seed %d)\n\n", r.Resamples, r.Seed)
	fmt.Fprintf(w, "accuracy   %s\nmacro-F1   %s\nmacro-AUC  %s\n\n", ci(r.Accuracy), ci(r.MacroF1), ci(r.MacroAUC))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "class\tn\tsensitivity\tspecificity\tF1\tAUC")
	for _, c := range r.PerClass {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.Label, c.Support, ci(c.Sensitivity), ci(c.Specificity), ci(c.F1), ci(c.AUC))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nconfusion matrix (rows: truth, columns: predicted)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t\n", strings.Join(r.Labels, "\t"))
	for i, row := range r.Confusion {
		cells := make([]string, len(row))
		for j, v := range row {
			cells[j] = fmt.Sprint(v)
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", r.Labels[i], strings.Join(cells, "\t"))
	}
	tw.Flush()
	if len(r.ByGroup) > 0 {
		fmt.Fprintln(w, "\nby difficulty")
		groups := make([]string, 0, len(r.ByGroup))
		for g := range r.ByGroup {
			groups = append(groups, g)
		}
		slices.Sort(groups)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "group\tn\taccuracy\tmacro-F1\tsensitivity per class")
		for _, g := range groups {
			gr := r.ByGroup[g]
			var sens []string
			for _, c := range gr.PerClass {
				if c.Support > 0 {
					sens = append(sens, fmt.Sprintf("%s %.3f (n=%d)", c.Label, c.Sensitivity.Value, c.Support))
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", g, gr.N, ci(gr.Accuracy), ci(gr.MacroF1), strings.Join(sens, ", "))
		}
		tw.Flush()
	}
	if b := r.Binary; b != nil {
		fmt.Fprintf(w, "\nAUC with DeLong 95%% CI: %s\ndecision curve (threshold: net benefit model / treat all)\n", ci(b.AUC))
		for _, p := range b.Decision {
			fmt.Fprintf(w, "  %.2f: %.4f / %.4f\n", p.Threshold, p.Model, p.TreatAll)
		}
	}
}
