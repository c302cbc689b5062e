package analysis

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// VertebralModel is a loaded vertebral fracture acuity model: the
// per-vertebra network (behind a batcher, as Classifier) and the pipeline
// around it (localiser, radiomics, fusion).
type VertebralModel struct {
	Classifier
	Pipeline *spine.Pipeline
}

// Clinical is a patient's clinical data for the nomogram: values by the
// names of spine.ClinicalNames, where each came from, and why a missing one
// is missing.
type Clinical struct {
	Values  map[string]float64 `json:"values,omitempty"`
	Sources map[string]string  `json:"sources,omitempty"`
	Why     map[string]string  `json:"why,omitempty"`
}

// clinicalLabels name the clinical variables for people.
var clinicalLabels = map[string]string{
	"age": "age", "female": "sex", "symptom_days": "symptom duration (back pain onset)",
	"trauma": "recent minor trauma (fall)", "tscore": "BMD T-score",
}

// ClinicalLabel names a clinical variable for people.
func ClinicalLabel(name string) string {
	if l, ok := clinicalLabels[name]; ok {
		return l
	}
	return name
}

// ReadVertebral reads a lateral spine radiograph: localise (or take the
// given bodies), classify each body, and for each fractured one the DLR
// score and, with every clinical value present, the nomogram. The Result's
// study is left for the caller.
func (a *Analyzer) ReadVertebral(ctx context.Context, v *VertebralModel, img *imaging.Image, in Input) (Result, error) {
	p := v.Pipeline
	m := p.Manifest
	if p.Fusion == nil {
		return Result{}, fmt.Errorf("analysis: model %s has no fusion model", m.ID)
	}
	t0 := time.Now()
	readings, err := p.Read(ctx, img, in.Bodies, false)
	if err != nil {
		return Result{}, fmt.Errorf("analysis: %w", err)
	}
	t1 := time.Now()
	a.inferred(m.ID, t1.Sub(t0))
	r := newResult(m, img)
	r.GivenBodies = bodiesDigest(in.Bodies)
	for _, rd := range readings {
		r.Localised = append(r.Localised, rd.Body.Level)
	}
	if len(readings) == 0 {
		r.Notes = append(r.Notes, "No vertebral body could be localised on this radiograph: no fracture or acuity estimate is given.")
	}
	var clinical Clinical
	fractured := 0
	for _, rd := range readings {
		if _, ok := rd.Fractured(m); ok {
			fractured++
		}
	}
	if fractured > 0 && in.Clinical != nil {
		clinical = in.Clinical(ctx, studyTime(deref(in.Study.Started), a.Now()))
	}
	missing := p.Fusion.Missing(clinical.Values)
	if fractured > 0 && len(missing) > 0 {
		var what []string
		for _, name := range missing {
			w := ClinicalLabel(name)
			if why := clinical.Why[name]; why != "" {
				w += " (" + why + ")"
			}
			what = append(what, w)
		}
		r.Notes = append(r.Notes, "Clinical data missing: "+strings.Join(what, "; ")+
			". Acuity is the image's deep-learning-radiomics (DLR) score alone, not the nomogram.")
	}
	for _, rd := range readings {
		pFrac, ok := rd.Fractured(m)
		if !ok {
			continue
		}
		x, err := p.Fusion.Vector(rd)
		if err != nil {
			return Result{}, fmt.Errorf("analysis: %s: %w", rd.Body.Level, err)
		}
		dlr := p.Fusion.DLR(x)
		b := rd.Body.Box
		ac := &Acuity{Fracture: round4(pFrac), DLR: round4(dlr), Box: [4]int{b.Min.X, b.Min.Y, b.Dx(), b.Dy()}, Given: rd.Given}
		pAcute := dlr
		if len(missing) == 0 {
			s, err := p.Fusion.Score(dlr, clinical.Values)
			if err != nil {
				return Result{}, fmt.Errorf("analysis: %s: %w", rd.Body.Level, err)
			}
			s.Probability = round4(s.Probability)
			s.TotalPoints = math.Round(s.TotalPoints*10) / 10
			for i := range s.Points {
				s.Points[i].Points = math.Round(s.Points[i].Points*10) / 10
				s.Points[i].Value = round4(s.Points[i].Value)
			}
			ac.Nomogram, pAcute = &s, s.Probability
		} else {
			ac.Missing = missing
		}
		r.Findings = append(r.Findings, a.acuityFinding(m, img, rd, ac, pAcute))
	}
	for _, f := range r.Findings {
		if PriorityRank(f.Priority) > PriorityRank(r.Priority) {
			r.Priority = f.Priority
		}
		r.Review = r.Review || f.LowConfidence
	}
	r.Analyzed = a.Now().UTC().Truncate(time.Second)
	r.Timings.Preprocess, r.Timings.Inference, r.Timings.Postprocess = 0, ms(t1.Sub(t0)), ms(time.Since(t1))
	return r, nil
}

// acuityFinding is one fractured vertebra's finding: acute or chronic by
// the acuity probability, priority by the manifest's triage rules.
func (a *Analyzer) acuityFinding(m *inference.Manifest, img *imaging.Image, rd spine.Reading, ac *Acuity, pAcute float64) Finding {
	pAcute = round4(pAcute)
	probs := map[string]float64{"none": 0, "acute": pAcute, "chronic": round4(1 - pAcute)}
	class := "acute"
	if pAcute < 0.5 {
		class = "chronic"
	}
	label := m.Labels[m.LabelIndex(class)]
	f := Finding{
		Region: rd.Body.Level, Class: class, Display: label.Display,
		Code:        Code{System: label.System, Code: label.Code, Display: label.CodeDisplay, Verified: label.Verified},
		Probability: probs[class], Reported: true, Acuity: ac,
	}
	ordered := make([]float64, len(m.Labels))
	for i, l := range m.Labels {
		ordered[i] = probs[l.Key]
		if l.Key != "none" {
			f.Probabilities = append(f.Probabilities, ClassProbability{Class: l.Key, Display: l.Display, Probability: probs[l.Key]})
		}
	}
	f.Priority, f.PriorityClass = m.Priority(ordered)
	f.LowConfidence = a.Policy.ReviewBelow > 0 && f.Probability < a.Policy.ReviewBelow
	box := m.Vertebral.ROI.ROIBox(rd.Body.Box)
	f.Box = [4]int{box.Min.X, box.Min.Y, box.Dx(), box.Dy()}
	if a.Policy.HeatmapSide > 0 {
		thumb := inference.Thumbnail(img.Pixels, img.Meta.Rows, img.Meta.Columns, box, nil, a.Policy.HeatmapSide)
		var buf bytes.Buffer
		if err := encodeThumbnail(&buf, thumb); err == nil {
			f.Heatmap = buf.Bytes()
		}
	}
	return f
}

// studyTime is the study's start (a FHIR dateTime), or now when it has
// none: clinical values are taken as they were at the study.
func studyTime(started string, now time.Time) time.Time {
	if t, ok := FHIRTime(started); ok {
		return t
	}
	return now
}

// FHIRTime parses a FHIR date or dateTime (year, month or day precision;
// a partial date is taken at its start).
func FHIRTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
