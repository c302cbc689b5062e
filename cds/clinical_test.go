package cds

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func raws(t *testing.T, docs ...string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, d := range docs {
		if !json.Valid([]byte(d)) {
			t.Fatalf("bad JSON %s", d)
		}
		out = append(out, json.RawMessage(d))
	}
	return out
}

func tscoreObs(id, code, when, status string, v float64) string {
	b, _ := json.Marshal(map[string]any{"resourceType": "Observation", "id": id, "status": status,
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
		"effectiveDateTime": when, "valueQuantity": map[string]any{"value": v, "system": "http://unitsofmeasure.org", "code": "{T-score}"}})
	return string(b)
}

func condition(id, code, onset, verification string) string {
	c := map[string]any{"resourceType": "Condition", "id": id, "subject": map[string]any{"reference": "Patient/1"},
		"code": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": code}}}, "onsetDateTime": onset}
	if verification != "" {
		c["verificationStatus"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}}}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// The clinical values come from their FHIR sources as of the study, and a
// value without a source stays missing with a reason.
func TestClinicalData(t *testing.T) {
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	gender := models.AdministrativeGenderFemale
	born := "1950-12-01"
	patient := &models.Patient{BirthDate: &born, Gender: &gender}
	obs := raws(t,
		tscoreObs("old", "38267-1", "2024-01-10", "final", -1.0),
		tscoreObs("spine", "38267-1", "2026-06-01", "final", -2.6),
		tscoreObs("hip", "80946-7", "2026-06-01T09:00:00Z", "final", -2.9), // same exam, lower: taken
		tscoreObs("later", "38267-1", "2026-12-01", "final", -4.0),         // after the study
		tscoreObs("prelim", "38267-1", "2026-10-01", "preliminary", -3.5),
		`{"resourceType":"OperationOutcome"}`)
	conds := raws(t,
		condition("pain-old", "279039007", "2025-01-01", ""),
		condition("pain", "161891005", "2026-11-08", ""),
		condition("fall", "1912002", "2026-11-07", ""),
		condition("wrong", "279039007", "2026-11-15", "entered-in-error"))
	c := ClinicalData(patient, obs, conds, at)
	want := map[string]float64{"age": 75, "female": 1, "tscore": -2.9, "symptom_days": 12, "trauma": 1}
	for k, v := range want {
		if got, ok := c.Values[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v; sources %v, why %v", k, got, ok, v, c.Sources, c.Why)
		}
	}
	if !strings.Contains(c.Sources["tscore"], "Observation/hip") || !strings.Contains(c.Sources["symptom_days"], "Condition/pain") {
		t.Errorf("sources %v", c.Sources)
	}

	// A refuted fall is "no trauma"; a fall long before the pain is not
	// this fracture's.
	c = ClinicalData(patient, nil, raws(t, condition("pain", "279039007", "2026-11-08", ""), condition("no-fall", "1912002", "2026-11-08", "refuted"),
		condition("old-fall", "1912002", "2025-03-01", "")), at)
	if v, ok := c.Values["trauma"]; !ok || v != 0 {
		t.Errorf("refuted fall: trauma %v %v", v, ok)
	}

	// Nothing known: nothing invented.
	c = ClinicalData(&models.Patient{}, nil, nil, at)
	if len(c.Values) != 0 {
		t.Errorf("values from nothing: %v", c.Values)
	}
	for _, k := range []string{"age", "female", "tscore", "symptom_days", "trauma"} {
		if c.Why[k] == "" {
			t.Errorf("%s missing without a reason", k)
		}
	}
	if c := ClinicalData(nil, nil, nil, at); c.Why["age"] != "no Patient" {
		t.Errorf("no patient: %v", c.Why)
	}
}
