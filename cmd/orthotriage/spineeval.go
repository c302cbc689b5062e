package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/evaluate"
)

// spineReport is what `orthotriage eval` reports for a vertebral model.
type spineReport struct {
	Model        string `json:"model"`
	Version      string `json:"version"`
	Radiographs  int    `json:"radiographs"`
	Localisation struct {
		Labelled int     `json:"labelled"`
		Found    int     `json:"found"`
		Extra    int     `json:"extra"`
		MeanIoU  float64 `json:"meanIoU"`
	} `json:"localisation"`
	// Fracture is the network's P(fracture) on the localised labelled
	// vertebrae: its AUC, and sensitivity and specificity of its call.
	Fracture struct {
		N           int               `json:"n"`
		Fractured   int               `json:"fractured"`
		AUC         evaluate.Estimate `json:"auc"`
		Sensitivity float64           `json:"sensitivity"`
		Specificity float64           `json:"specificity"`
	} `json:"fracture"`
	// Acuity is on the localised vertebrae labelled fractured (acute is
	// the positive class), whatever the network called them.
	Acuity struct {
		N           int                    `json:"n"`
		Acute       int                    `json:"acute"`
		DLR         *evaluate.BinaryReport `json:"dlr"`
		Nomogram    *evaluate.BinaryReport `json:"nomogram"`
		Comparison  evaluate.Comparison    `json:"delongTest"`
		AccuracyDLR float64                `json:"accuracyDLR"`
		AccuracyNom float64                `json:"accuracyNomogram"`
		// ByDifficulty are the nomogram's and DLR's AUCs by fracture
		// difficulty (typical, subtle, indeterminate).
		ByDifficulty map[string][2]float64 `json:"byDifficulty"`
	} `json:"acuity"`
}

// spineLabel is one labels.csv row of a spine phantom.
type spineLabel struct {
	level, fracture, difficulty string
	box                         image.Rectangle
	clinical                    map[string]float64
}

// readSpineLabels reads a spine labels.csv (phantom.SpineHeader) by file.
func readSpineLabels(path string) (map[string][]spineLabel, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, nil, fmt.Errorf("%s: no labelled rows", path)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[strings.TrimSpace(h)] = i
	}
	for _, need := range []string{"file", "level", "x", "y", "w", "h", "fracture", "age", "sex", "symptom_days", "trauma", "tscore"} {
		if _, ok := col[need]; !ok {
			return nil, nil, fmt.Errorf("%s: header %v lacks %q (a spine labels.csv)", path, recs[0], need)
		}
	}
	out := map[string][]spineLabel{}
	var files []string
	for n, rec := range recs[1:] {
		get := func(name string) string { return strings.TrimSpace(rec[col[name]]) }
		num := func(name string) (float64, error) {
			v, err := strconv.ParseFloat(get(name), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("%s line %d: %s %q is not a number", path, n+2, name, get(name))
			}
			return v, nil
		}
		file := get("file")
		if file == "" || filepath.IsAbs(file) || slices.Contains(strings.Split(filepath.ToSlash(file), "/"), "..") {
			return nil, nil, fmt.Errorf("%s line %d: file %q must be a path inside the folder", path, n+2, file)
		}
		l := spineLabel{level: get("level"), fracture: get("fracture"), clinical: map[string]float64{}}
		if col["difficulty"] < len(rec) {
			l.difficulty = get("difficulty")
		}
		if l.fracture != "none" && l.fracture != "acute" && l.fracture != "chronic" {
			return nil, nil, fmt.Errorf("%s line %d: fracture %q is not none, acute or chronic", path, n+2, l.fracture)
		}
		var xywh [4]int
		for i, k := range []string{"x", "y", "w", "h"} {
			v, err := num(k)
			if err != nil {
				return nil, nil, err
			}
			xywh[i] = int(v)
		}
		l.box = image.Rect(xywh[0], xywh[1], xywh[0]+xywh[2], xywh[1]+xywh[3])
		for _, k := range []string{"age", "symptom_days", "tscore"} {
			v, err := num(k)
			if err != nil {
				return nil, nil, err
			}
			l.clinical[k] = v
		}
		l.clinical["female"] = map[bool]float64{true: 1, false: 0}[get("sex") == "F"]
		l.clinical["trauma"] = map[bool]float64{true: 1, false: 0}[get("trauma") == "true"]
		if _, ok := out[file]; !ok {
			files = append(files, file)
		}
		out[file] = append(out[file], l)
	}
	return out, files, nil
}

// evalSpine evaluates a vertebral model on labelled lateral spine DICOM
// files: localisation, fracture detection, and acuity by the DLR score and
// by the nomogram with the labels' clinical data, compared by DeLong's test.
func evalSpine(ctx context.Context, m *inference.Manifest, data, library string, threads int, lim imaging.Limits, asJSON bool, stdout, stderr io.Writer) error {
	labels, files, err := readSpineLabels(filepath.Join(data, "labels.csv"))
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	p, closeAll, err := openSpine(m, library, threads)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer closeAll()
	if p.Localiser == nil || p.Net == nil || p.Fusion == nil {
		return fmt.Errorf("eval: model %s lacks its localiser, network or fusion file", m.ID)
	}
	var rep spineReport
	rep.Model, rep.Version, rep.Radiographs = m.ID, m.Version, len(files)
	var fracTruth []bool
	var fracScore []float64
	var acuteTruth []bool
	var dlr, nom []float64
	var difficulty []string
	var sumIoU float64
	began := time.Now()
	for i, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(data, file))
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		img, err := imaging.Decode(b, lim)
		if err != nil {
			return fmt.Errorf("eval %s: %w", file, err)
		}
		readings, err := p.Read(ctx, img, nil, true)
		if err != nil {
			return fmt.Errorf("eval %s: %w", file, err)
		}
		rep.Localisation.Labelled += len(labels[file])
		for _, r := range readings {
			k := slices.IndexFunc(labels[file], func(l spineLabel) bool { return l.level == r.Body.Level })
			iou := 0.0
			if k >= 0 {
				iou = boxIoU(r.Body.Box, labels[file][k].box)
			}
			if iou < minMatchIoU {
				rep.Localisation.Extra++
				continue
			}
			l := labels[file][k]
			rep.Localisation.Found++
			sumIoU += iou
			pf, _ := r.Fractured(m)
			fracTruth, fracScore = append(fracTruth, l.fracture != "none"), append(fracScore, pf)
			if l.fracture == "none" {
				continue
			}
			x, err := p.Fusion.Vector(r)
			if err != nil {
				return fmt.Errorf("eval %s %s: %w", file, l.level, err)
			}
			d := p.Fusion.DLR(x)
			s, err := p.Fusion.Score(d, l.clinical)
			if err != nil {
				return fmt.Errorf("eval %s %s: %w", file, l.level, err)
			}
			acuteTruth = append(acuteTruth, l.fracture == "acute")
			dlr, nom, difficulty = append(dlr, d), append(nom, s.Probability), append(difficulty, l.difficulty)
		}
		if done := i + 1; done%100 == 0 || done == len(files) {
			fmt.Fprintf(stderr, "eval: %d/%d radiographs (%.1fs)\n", done, len(files), time.Since(began).Seconds())
		}
	}
	rep.Localisation.MeanIoU = sumIoU / float64(max(1, rep.Localisation.Found))
	fr := &rep.Fracture
	fr.N = len(fracTruth)
	var tp, tn, pos, neg int
	for i, t := range fracTruth {
		called := fracScore[i] > 1-m.Thresholds["none"]
		switch {
		case t:
			pos++
			if called {
				tp++
			}
		default:
			neg++
			if !called {
				tn++
			}
		}
	}
	fr.Fractured = pos
	fr.Sensitivity, fr.Specificity = float64(tp)/float64(max(1, pos)), float64(tn)/float64(max(1, neg))
	fr.AUC = binaryScore(fracTruth, fracScore).AUC
	ac := &rep.Acuity
	ac.N = len(acuteTruth)
	for _, t := range acuteTruth {
		if t {
			ac.Acute++
		}
	}
	ac.DLR, ac.Nomogram = binaryScore(acuteTruth, dlr), binaryScore(acuteTruth, nom)
	ac.Comparison = evaluate.DeLongTest(acuteTruth, nom, dlr)
	ac.AccuracyDLR, ac.AccuracyNom = accuracy(acuteTruth, dlr), accuracy(acuteTruth, nom)
	ac.ByDifficulty = map[string][2]float64{}
	for _, g := range []string{"typical", "subtle", "indeterminate"} {
		var t []bool
		var d, n []float64
		for i := range acuteTruth {
			if difficulty[i] == g {
				t, d, n = append(t, acuteTruth[i]), append(d, dlr[i]), append(n, nom[i])
			}
		}
		if len(t) > 0 {
			ac.ByDifficulty[g] = [2]float64{binaryScore(t, n).AUC.Value, binaryScore(t, d).AUC.Value}
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printSpineReport(stdout, m, data, rep)
	return nil
}

// binaryScore is evaluate.Binary for a two-class score.
func binaryScore(truth []bool, score []float64) *evaluate.BinaryReport {
	cases := make([]evaluate.Case, len(truth))
	for i, t := range truth {
		cases[i] = evaluate.Case{Truth: map[bool]int{true: 1, false: 0}[t], Probabilities: []float64{1 - score[i], score[i]}}
	}
	return evaluate.Binary(cases, 1)
}

func accuracy(truth []bool, score []float64) float64 {
	ok := 0
	for i, t := range truth {
		if (score[i] >= 0.5) == t {
			ok++
		}
	}
	return float64(ok) / float64(max(1, len(truth)))
}

func printSpineReport(w io.Writer, m *inference.Manifest, data string, r spineReport) {
	ci := func(e evaluate.Estimate) string {
		if math.IsNaN(e.Value) {
			return "n/a"
		}
		return fmt.Sprintf("%.4f (%.4f-%.4f)", e.Value, e.CI95[0], e.CI95[1])
	}
	fmt.Fprintf(w, "model %s %s on %d lateral spine radiographs in %s\n", r.Model, r.Version, r.Radiographs, data)
	if m.TrainingData == "synthetic" {
		fmt.Fprintf(w, "(%s)\n", m.Warning)
	}
	l := r.Localisation
	fmt.Fprintf(w, "\nlocalisation: %d of %d labelled vertebrae found at their level with IoU >= %.1f (%.1f%%), mean IoU %.3f, %d other boxes\n",
		l.Found, l.Labelled, minMatchIoU, 100*float64(l.Found)/float64(max(1, l.Labelled)), l.MeanIoU, l.Extra)
	f := r.Fracture
	fmt.Fprintf(w, "fracture (network, on the %d found; %d fractured): AUC %s, sensitivity %.4f, specificity %.4f\n",
		f.N, f.Fractured, ci(f.AUC), f.Sensitivity, f.Specificity)
	a := r.Acuity
	fmt.Fprintf(w, "\nacuity on the %d found fractured vertebrae (%d acute, %d chronic); 95%% CIs by DeLong\n", a.N, a.Acute, a.N-a.Acute)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "score\tAUC (95% CI)\taccuracy at 0.5\tAUC typical\tsubtle\tindeterminate")
	by := func(g string, k int) string {
		if v, ok := a.ByDifficulty[g]; ok && !math.IsNaN(v[k]) {
			return fmt.Sprintf("%.4f", v[k])
		}
		return "n/a"
	}
	fmt.Fprintf(tw, "nomogram (DLR + clinical)\t%s\t%.4f\t%s\t%s\t%s\n", ci(a.Nomogram.AUC), a.AccuracyNom, by("typical", 0), by("subtle", 0), by("indeterminate", 0))
	fmt.Fprintf(tw, "DLR score alone\t%s\t%.4f\t%s\t%s\t%s\n", ci(a.DLR.AUC), a.AccuracyDLR, by("typical", 1), by("subtle", 1), by("indeterminate", 1))
	tw.Flush()
	c := a.Comparison
	fmt.Fprintf(w, "DeLong test, nomogram - DLR: difference %.4f (SE %.4f), z %.2f, p %.3g\n", c.Diff, c.SE, c.Z, c.P)
	fmt.Fprintln(w, "\ndecision curve (net benefit at each threshold probability of acute)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "threshold\tnomogram\tDLR\ttreat all\ttreat none\t")
	for i, p := range a.Nomogram.Decision {
		fmt.Fprintf(tw, "%.2f\t%.4f\t%.4f\t%.4f\t0\t\n", p.Threshold, p.Model, a.DLR.Decision[i].Model, p.TreatAll)
	}
	tw.Flush()
}
