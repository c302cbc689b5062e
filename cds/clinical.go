package cds

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/fhir/codes"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Prefetch keys of the vertebral service's clinical data (see
// clinicalTemplates); an EHR that leaves them out is asked with the same
// queries, only when a fracture needs its acuity.
const (
	PrefetchBMD          = "bmd"
	PrefetchSpineHistory = "spineHistory"
)

// The codes the nomogram's clinical data is read by, from the code table
// (package codes says where each was verified): DXA T-score Observations,
// the lumbar spine first; back pain Conditions, whose onset dates the
// symptoms; and a fall, the phantom's "recent minor trauma".
var (
	tScoreSpine   = codes.Group(codes.TScoreSpinePrefix)
	tScoreHip     = codes.Group(codes.TScoreHipPrefix)
	backPainCodes = codes.Group(codes.BackPainPrefix)
	fallCodes     = codes.Group(codes.FallPrefix)
)

// recentFall is how long before the symptoms' onset (or, without one,
// before the study) a fall still counts as the fracture's trauma.
const recentFall = 30 * 24 * time.Hour

func codeQuery(system string, lists ...[]string) string {
	var all []string
	for _, cs := range lists {
		for _, c := range cs {
			all = append(all, system+"|"+c)
		}
	}
	return strings.Join(all, ",")
}

var clinicalTemplates = map[string]string{
	PrefetchBMD:          "Observation?patient=Patient/{{context.patientId}}&code=" + codeQuery(codes.SystemLOINC, tScoreSpine, tScoreHip) + "&_sort=-date&_count=50",
	PrefetchSpineHistory: "Condition?patient=Patient/{{context.patientId}}&code=" + codeQuery(codes.SystemSNOMED, backPainCodes, fallCodes) + "&_count=100",
}

// lazyClinical reads the clinical data once, when first asked (a call's
// studies share it); each study derives its values at its own date.
func lazyClinical(f *fetcher, patient func(context.Context) *models.Patient, hc HookContext) func(context.Context, time.Time) analysis.Clinical {
	var once sync.Once
	var p *models.Patient
	var obs, conds []json.RawMessage
	var errObs, errCond error
	return func(ctx context.Context, at time.Time) analysis.Clinical {
		once.Do(func() {
			p = patient(ctx)
			obs, errObs = f.search(ctx, PrefetchBMD, render(clinicalTemplates[PrefetchBMD], hc))
			conds, errCond = f.search(ctx, PrefetchSpineHistory, render(clinicalTemplates[PrefetchSpineHistory], hc))
		})
		c := ClinicalData(p, obs, conds, at)
		if errObs != nil {
			c.Why["tscore"] = "DXA Observations could not be read"
			f.r.Log.WarnContext(ctx, "clinical data: DXA Observations not read", "hookInstance", f.req.HookInstance, "err", errObs)
		}
		if errCond != nil {
			for _, k := range []string{"symptom_days", "trauma"} {
				if _, ok := c.Values[k]; !ok {
					c.Why[k] = "Conditions could not be read"
				}
			}
			f.r.Log.WarnContext(ctx, "clinical data: Conditions not read", "hookInstance", f.req.HookInstance, "err", errCond)
		}
		return c
	}
}

// ClinicalData derives the nomogram's clinical values at time at from the
// Patient, DXA T-score Observations and back pain and fall Conditions.
// Nothing is assumed: a value without a source is missing, with the reason
// in Why.
func ClinicalData(patient *models.Patient, observations, conditions []json.RawMessage, at time.Time) analysis.Clinical {
	c := analysis.Clinical{Values: map[string]float64{}, Sources: map[string]string{}, Why: map[string]string{}}
	patientClinical(c, patient, at)
	tScoreClinical(c, observations, at)
	symptomsClinical(c, conditions, at)
	return c
}

// setClinical records value v of name, with its source.
func setClinical(c analysis.Clinical, name string, v float64, source string) {
	c.Values[name], c.Sources[name] = v, source
}

// isoDay is t's date, as sources name it.
func isoDay(t time.Time) string { return t.Format("2006-01-02") }

// patientClinical sets age and sex at time at from the Patient.
func patientClinical(c analysis.Clinical, patient *models.Patient, at time.Time) {
	switch {
	case patient == nil:
		c.Why["age"], c.Why["female"] = "no Patient", "no Patient"
	default:
		if born, ok := analysis.FHIRTime(deref(patient.BirthDate)); ok && !born.After(at) {
			setClinical(c, "age", float64(yearsBetween(born, at)), "Patient.birthDate "+deref(patient.BirthDate))
		} else {
			c.Why["age"] = "Patient.birthDate absent"
		}
		switch g := patient.Gender; {
		case g != nil && g.Code() == "female":
			setClinical(c, "female", 1, "Patient.gender female")
		case g != nil && g.Code() == "male":
			setClinical(c, "female", 0, "Patient.gender male")
		default:
			c.Why["female"] = "Patient.gender neither female nor male"
		}
	}
}

// tScoreClinical sets the T-score at time at from the DXA Observations: the
// newest DXA exam up to the study; of its sites, the lowest (the usual
// reading of an exam), the spine preferred on ties.
func tScoreClinical(c analysis.Clinical, observations []json.RawMessage, at time.Time) {
	type tscore struct {
		v    float64
		when time.Time
		code string
		id   string
	}
	var ts []tscore
	for _, raw := range observations {
		if resourceType(raw) != "Observation" {
			continue
		}
		o, err := models.UnmarshalObservation(raw)
		if err != nil || !finalStatus(o.Status.Code()) || o.ValueQuantity == nil || o.ValueQuantity.Value == nil {
			continue
		}
		code, ok := codeIn(&o.Code, codes.SystemLOINC, tScoreSpine, tScoreHip)
		if !ok {
			continue
		}
		when, ok := analysis.FHIRTime(deref(o.EffectiveDateTime))
		if !ok && o.EffectivePeriod != nil {
			when, ok = analysis.FHIRTime(deref(o.EffectivePeriod.Start))
		}
		v, err := o.ValueQuantity.Value.Float64()
		if !ok || err != nil || when.After(at.Add(24*time.Hour)) || math.IsNaN(v) || v < -10 || v > 10 {
			continue
		}
		ts = append(ts, tscore{v: v, when: when, code: code, id: deref(o.Id)})
	}
	if len(ts) == 0 {
		c.Why["tscore"] = "no DXA T-score Observation (LOINC " + strings.Join(append(slices.Clone(tScoreSpine), tScoreHip...), ", ") + ") up to the study"
	} else {
		slices.SortFunc(ts, func(a, b tscore) int {
			if d := b.when.Truncate(24 * time.Hour).Compare(a.when.Truncate(24 * time.Hour)); d != 0 {
				return d // newest exam first
			}
			if c := cmp.Compare(a.v, b.v); c != 0 {
				return c // lowest first
			}
			if sa, sb := slices.Contains(tScoreSpine, a.code), slices.Contains(tScoreSpine, b.code); sa != sb {
				if sa {
					return -1
				}
				return 1
			}
			return strings.Compare(a.id, b.id)
		})
		t := ts[0]
		setClinical(c, "tscore", t.v, fmt.Sprintf("Observation/%s (LOINC %s, %s)", t.id, t.code, isoDay(t.when)))
	}
}

// symptomsClinical sets symptom_days and trauma at time at from the
// Conditions: the newest back pain onset up to the study; a fall from
// recentFall before that onset (or before the study) up to the study.
func symptomsClinical(c analysis.Clinical, conditions []json.RawMessage, at time.Time) {
	var onset time.Time
	var onsetSource string
	type fall struct {
		when    time.Time
		refuted bool
		source  string
	}
	var falls []fall
	for _, raw := range conditions {
		if resourceType(raw) != "Condition" {
			continue
		}
		cond, err := models.UnmarshalCondition(raw)
		if err != nil || enteredInError(cond) {
			continue
		}
		when, ok := analysis.FHIRTime(deref(cond.OnsetDateTime))
		if !ok && cond.OnsetPeriod != nil {
			when, ok = analysis.FHIRTime(deref(cond.OnsetPeriod.Start))
		}
		if !ok || when.After(at.Add(24*time.Hour)) {
			continue
		}
		if code, ok := codeIn(cond.Code, codes.SystemSNOMED, backPainCodes); ok {
			if when.After(onset) {
				onset, onsetSource = when, fmt.Sprintf("Condition/%s (SNOMED %s) onset %s", deref(cond.Id), code, isoDay(when))
			}
			continue
		}
		if code, ok := codeIn(cond.Code, codes.SystemSNOMED, fallCodes); ok {
			falls = append(falls, fall{when: when, refuted: refuted(cond),
				source: fmt.Sprintf("Condition/%s (SNOMED %s) %s", deref(cond.Id), code, isoDay(when))})
		}
	}
	if onset.IsZero() {
		c.Why["symptom_days"] = "no back pain Condition (SNOMED " + strings.Join(backPainCodes, ", ") + ") with an onset date up to the study"
	} else {
		setClinical(c, "symptom_days", math.Max(1, math.Round(at.Sub(onset).Hours()/24)), onsetSource)
	}
	from := at.Add(-recentFall)
	if !onset.IsZero() {
		from = onset.Add(-recentFall)
	}
	for _, fl := range falls {
		if fl.when.Before(from) {
			continue
		}
		if fl.refuted {
			if _, ok := c.Values["trauma"]; !ok {
				setClinical(c, "trauma", 0, fl.source+" refuted")
			}
			continue
		}
		setClinical(c, "trauma", 1, fl.source)
	}
	if _, ok := c.Values["trauma"]; !ok {
		c.Why["trauma"] = "no fall Condition (SNOMED " + strings.Join(fallCodes, ", ") + ") around the symptoms' onset; absence is not assumed"
	}
}

// yearsBetween is the age in whole years at at.
func yearsBetween(born, at time.Time) int {
	y := at.Year() - born.Year()
	if at.YearDay() < born.YearDay() {
		y--
	}
	return max(y, 0)
}

func finalStatus(s string) bool { return s == "final" || s == "amended" || s == "corrected" }

// codeIn returns the first coding of cc in system whose code is listed.
func codeIn(cc *models.CodeableConcept, system string, lists ...[]string) (string, bool) {
	if cc == nil {
		return "", false
	}
	for _, c := range cc.Coding {
		if deref(c.System) != system {
			continue
		}
		for _, l := range lists {
			if slices.Contains(l, deref(c.Code)) {
				return deref(c.Code), true
			}
		}
	}
	return "", false
}

// verification reports whether cond's verificationStatus is the table's
// entry key.
func verification(cond models.Condition, key string) bool {
	e, ok := codes.Lookup(key)
	if !ok || cond.VerificationStatus == nil {
		return false
	}
	for _, c := range cond.VerificationStatus.Coding {
		if deref(c.System) == e.System && deref(c.Code) == e.Code {
			return true
		}
	}
	return false
}

func enteredInError(c models.Condition) bool { return verification(c, codes.ConditionEnteredInError) }

func refuted(c models.Condition) bool { return verification(c, codes.ConditionRefuted) }
