package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// SpineReader reads the vertebral bodies of a radiograph with the
// localiser and the per-vertebra network; *spine.Pipeline is one.
type SpineReader interface {
	Read(ctx context.Context, img *imaging.Image, given []inference.Body, all bool) ([]spine.Reading, error)
}

// VertebralOptions say what Vertebral evaluates.
type VertebralOptions struct {
	Manifest *inference.Manifest
	Reader   SpineReader
	Fusion   *spine.Fusion
	// Data is the folder holding a spine phantom's labels.csv
	// (phantom.SpineHeader) and the DICOM files it names.
	Data   string
	Limits imaging.Limits
	// Progress, when set, gets a line every 100 radiographs.
	Progress io.Writer
}

// VertebralReport is what `orthotriage eval` reports for a vertebral model.
type VertebralReport struct {
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
		N           int      `json:"n"`
		Fractured   int      `json:"fractured"`
		AUC         Estimate `json:"auc"`
		Sensitivity float64  `json:"sensitivity"`
		Specificity float64  `json:"specificity"`
	} `json:"fracture"`
	// Acuity is on the localised vertebrae labelled fractured (acute is
	// the positive class), whatever the network called them.
	Acuity struct {
		N           int           `json:"n"`
		Acute       int           `json:"acute"`
		DLR         *BinaryReport `json:"dlr"`
		Nomogram    *BinaryReport `json:"nomogram"`
		Comparison  Comparison    `json:"delongTest"`
		AccuracyDLR float64       `json:"accuracyDLR"`
		AccuracyNom float64       `json:"accuracyNomogram"`
		// ByDifficulty are the nomogram's and DLR's AUCs by fracture
		// difficulty (typical, subtle, indeterminate: those present).
		ByDifficulty []DifficultyAUC `json:"byDifficulty"`
	} `json:"acuity"`
}

// DifficultyAUC are the nomogram's and the DLR score's AUCs, each with
// DeLong's 95% interval, on the fractured vertebrae of one difficulty.
type DifficultyAUC struct {
	Difficulty string   `json:"difficulty"`
	N          int      `json:"n"`
	Acute      int      `json:"acute"`
	Chronic    int      `json:"chronic"`
	Nomogram   Estimate `json:"nomogramAUC"` // null with a reason when the group has one class only
	DLR        Estimate `json:"dlrAUC"`
}

// difficulty is the group of difficulty g, or nil.
func (rep *VertebralReport) difficulty(g string) *DifficultyAUC {
	for i := range rep.Acuity.ByDifficulty {
		if d := &rep.Acuity.ByDifficulty[i]; d.Difficulty == g {
			return d
		}
	}
	return nil
}

// VertebralEvaluation is a vertebral model's evaluation on a folder.
type VertebralEvaluation struct {
	Manifest *inference.Manifest
	Data     string
	Report   VertebralReport
}

// vertebralSamples are the scores of the localised labelled vertebrae,
// gathered over the radiographs.
type vertebralSamples struct {
	fracTruth  []bool // labelled fractured
	fracScore  []float64
	acuteTruth []bool // of the fractured, labelled acute
	dlr, nom   []float64
	difficulty []string
	sumIoU     float64
}

// Vertebral evaluates a vertebral model on labelled lateral spine DICOM
// files: localisation, fracture detection, and acuity by the DLR score and
// by the nomogram with the labels' clinical data, compared by DeLong's test.
func Vertebral(ctx context.Context, o VertebralOptions) (*VertebralEvaluation, error) {
	m := o.Manifest
	if o.Reader == nil || o.Fusion == nil {
		return nil, errors.New("evaluate: a vertebral evaluation needs the reader and the fusion model")
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	labels, err := readSpineLabels(filepath.Join(o.Data, "labels.csv"))
	if err != nil {
		return nil, err
	}
	e := &VertebralEvaluation{Manifest: m, Data: o.Data}
	rep := &e.Report
	rep.Model, rep.Version, rep.Radiographs = m.ID, m.Version, len(labels.files)
	var s vertebralSamples
	began := time.Now()
	for i, file := range labels.files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := decodeFile(filepath.Join(o.Data, file), o.Limits)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		readings, err := o.Reader.Read(ctx, img, nil, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if err := s.add(rep, o, labels.byFile[file], readings); err != nil {
			return nil, fmt.Errorf("%s %w", file, err)
		}
		if done := i + 1; done%100 == 0 || done == len(labels.files) {
			fmt.Fprintf(progress, "eval: %d/%d radiographs (%.1fs)\n", done, len(labels.files), time.Since(began).Seconds())
		}
	}
	rep.Localisation.MeanIoU = s.sumIoU / float64(max(1, rep.Localisation.Found))
	rep.scoreFracture(&s, m)
	rep.scoreAcuity(&s)
	return e, nil
}

// add matches one radiograph's readings to its labels and keeps the scores
// of those found; the localisation counts go to rep.
func (s *vertebralSamples) add(rep *VertebralReport, o VertebralOptions, labels []spineLabel, readings []spine.Reading) error {
	rep.Localisation.Labelled += len(labels)
	byLevel := map[string]spineLabel{}
	boxes := map[string]image.Rectangle{}
	for _, l := range labels {
		if _, ok := byLevel[l.level]; !ok {
			byLevel[l.level], boxes[l.level] = l, l.box
		}
	}
	for _, r := range readings {
		iou, ok := inference.MatchBody(r.Body, boxes)
		if !ok {
			rep.Localisation.Extra++
			continue
		}
		l := byLevel[r.Body.Level]
		rep.Localisation.Found++
		s.sumIoU += iou
		pf, _ := r.Fractured(o.Manifest)
		s.fracTruth, s.fracScore = append(s.fracTruth, l.fracture != "none"), append(s.fracScore, pf)
		if l.fracture == "none" {
			continue
		}
		x, err := o.Fusion.Vector(r)
		if err != nil {
			return fmt.Errorf("%s: %w", l.level, err)
		}
		d := o.Fusion.DLR(x)
		sc, err := o.Fusion.Score(d, l.clinical)
		if err != nil {
			return fmt.Errorf("%s: %w", l.level, err)
		}
		s.acuteTruth = append(s.acuteTruth, l.fracture == "acute")
		s.dlr, s.nom, s.difficulty = append(s.dlr, d), append(s.nom, sc.Probability), append(s.difficulty, l.difficulty)
	}
	return nil
}

// scoreFracture scores the network's fracture call: a vertebra is called
// fractured when P(fracture) is above 1 - the normal label's threshold.
func (rep *VertebralReport) scoreFracture(s *vertebralSamples, m *inference.Manifest) {
	fr := &rep.Fracture
	fr.N = len(s.fracTruth)
	var tp, tn, pos, neg int
	for i, t := range s.fracTruth {
		called := s.fracScore[i] > 1-m.Thresholds["none"]
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
	fr.AUC = binaryScore(s.fracTruth, s.fracScore).AUC
}

// scoreAcuity scores the DLR score and the nomogram on the fractured
// vertebrae, overall and by difficulty, and compares them.
func (rep *VertebralReport) scoreAcuity(s *vertebralSamples) {
	ac := &rep.Acuity
	ac.N = len(s.acuteTruth)
	for _, t := range s.acuteTruth {
		if t {
			ac.Acute++
		}
	}
	ac.DLR, ac.Nomogram = binaryScore(s.acuteTruth, s.dlr), binaryScore(s.acuteTruth, s.nom)
	ac.Comparison = DeLongTest(s.acuteTruth, s.nom, s.dlr)
	ac.AccuracyDLR, ac.AccuracyNom = accuracy(s.acuteTruth, s.dlr), accuracy(s.acuteTruth, s.nom)
	ac.ByDifficulty = nil
	for _, g := range []string{"typical", "subtle", "indeterminate"} {
		var t []bool
		var d, n []float64
		acute := 0
		for i := range s.acuteTruth {
			if s.difficulty[i] == g {
				t, d, n = append(t, s.acuteTruth[i]), append(d, s.dlr[i]), append(n, s.nom[i])
				if s.acuteTruth[i] {
					acute++
				}
			}
		}
		if len(t) > 0 {
			ac.ByDifficulty = append(ac.ByDifficulty, DifficultyAUC{Difficulty: g, N: len(t), Acute: acute, Chronic: len(t) - acute,
				Nomogram: binaryScore(t, n).AUC, DLR: binaryScore(t, d).AUC})
		}
	}
}

// binaryScore is Binary for a two-class score.
func binaryScore(truth []bool, score []float64) *BinaryReport {
	cases := make([]Case, len(truth))
	for i, t := range truth {
		cases[i] = Case{Truth: map[bool]int{true: 1, false: 0}[t], Probabilities: []float64{1 - score[i], score[i]}}
	}
	return Binary(cases, 1)
}

// accuracy is the share of scores on the truth's side of 0.5.
func accuracy(truth []bool, score []float64) float64 {
	ok := 0
	for i, t := range truth {
		if (score[i] >= 0.5) == t {
			ok++
		}
	}
	return float64(ok) / float64(max(1, len(truth)))
}

// WriteJSON writes the report as indented JSON.
func (e *VertebralEvaluation) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(e.Report)
}

// Print writes the report as the tables a person reads.
func (e *VertebralEvaluation) Print(w io.Writer) {
	m, r := e.Manifest, e.Report
	fmt.Fprintf(w, "model %s %s on %d lateral spine radiographs in %s\n", r.Model, r.Version, r.Radiographs, e.Data)
	if m.TrainingData == "synthetic" {
		fmt.Fprintf(w, "(%s)\n", m.Warning)
	}
	l := r.Localisation
	fmt.Fprintf(w, "\nlocalisation: %d of %d labelled vertebrae found at their level with IoU >= %.1f (%.1f%%), mean IoU %.3f, %d other boxes\n",
		l.Found, l.Labelled, inference.MinMatchIoU, 100*float64(l.Found)/float64(max(1, l.Labelled)), l.MeanIoU, l.Extra)
	f := r.Fracture
	fmt.Fprintf(w, "fracture (network, on the %d found; %d fractured): AUC %s, sensitivity %.4f, specificity %.4f\n",
		f.N, f.Fractured, withCI(f.AUC), f.Sensitivity, f.Specificity)
	a := r.Acuity
	fmt.Fprintf(w, "\nacuity on the %d found fractured vertebrae (%d acute, %d chronic); 95%% CIs by DeLong\n", a.N, a.Acute, a.N-a.Acute)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "score\tAUC (95% CI)\taccuracy at 0.5\tAUC typical\tsubtle\tindeterminate")
	by := func(g string, nomogram bool) string {
		d := r.difficulty(g)
		switch {
		case d == nil:
			return "n/a"
		case nomogram && finite(d.Nomogram.Value):
			return fmt.Sprintf("%.4f", d.Nomogram.Value)
		case !nomogram && finite(d.DLR.Value):
			return fmt.Sprintf("%.4f", d.DLR.Value)
		}
		return "n/a"
	}
	fmt.Fprintf(tw, "nomogram (DLR + clinical)\t%s\t%.4f\t%s\t%s\t%s\n", withCI(a.Nomogram.AUC), a.AccuracyNom, by("typical", true), by("subtle", true), by("indeterminate", true))
	fmt.Fprintf(tw, "DLR score alone\t%s\t%.4f\t%s\t%s\t%s\n", withCI(a.DLR.AUC), a.AccuracyDLR, by("typical", false), by("subtle", false), by("indeterminate", false))
	tw.Flush()
	var groups []string
	for _, d := range a.ByDifficulty {
		groups = append(groups, fmt.Sprintf("%s %d (%d acute)", d.Difficulty, d.N, d.Acute))
	}
	if len(groups) > 0 {
		fmt.Fprintf(w, "vertebrae by difficulty: %s\n", strings.Join(groups, ", "))
	}
	if c := a.Comparison; finite(c.SE) {
		fmt.Fprintf(w, "DeLong test, nomogram - DLR: difference %.4f (SE %.4f), z %.2f, p %.3g\n", c.Diff, c.SE, c.Z, c.P)
	} else {
		fmt.Fprintln(w, "DeLong test, nomogram - DLR: n/a (needs at least two acute and two chronic vertebrae)")
	}
	fmt.Fprintln(w, "\ndecision curve (net benefit at each threshold probability of acute)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "threshold\tnomogram\tDLR\ttreat all\ttreat none\t")
	for i, p := range a.Nomogram.Decision {
		fmt.Fprintf(tw, "%.2f\t%.4f\t%.4f\t%.4f\t0\t\n", p.Threshold, p.Model, a.DLR.Decision[i].Model, p.TreatAll)
	}
	tw.Flush()
}
