package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
)

// Spine phantom cases of the held-out test seed (3); the test checks the
// generator still draws these truths.
const (
	acuteSpineCase   = 1  // L1: typical acute fracture
	chronicSpineCase = 6  // L1: typical chronic fracture
	notSpineCase     = -1 // a pelvis radiograph labelled as a spine
)

// spineEnv is a FHIR test server and an Orthanc holding lateral spine
// phantoms, one patient per case, with the case's clinical data as FHIR
// resources when withClinical says so.
type spineEnv struct {
	*resultsEnv
	patients map[int]string
	studies  map[int]string
}

const spineStudyDay = "2026-11-20"

func newSpineEnv(t *testing.T, cases map[int]bool) *spineEnv {
	t.Helper()
	e := &spineEnv{resultsEnv: newResultsEnv(t), patients: map[int]string{}, studies: map[int]string{}}
	orthanc := strings.TrimSuffix(e.dicomweb, "/dicom-web")
	endpoint := e.createEndpoint(t)
	day, _ := time.Parse("2006-01-02", spineStudyDay)
	for i, withClinical := range cases {
		sc := phantom.Spine(3, max(i, 0))
		if i == notSpineCase {
			// An AP pelvis sent as a lateral spine: nothing to localise.
			pc := phantom.Pelvis(3, 0)
			sc.Image = pc.Image
			sc.Image.BodyPartExamined, sc.Image.ViewPosition = "SPINE", "LL"
			sc.Image.StudyInstanceUID += ".9"
			sc.Image.SeriesInstanceUID += ".9"
			sc.Image.SOPInstanceUID += ".9"
		}
		uploadDICOM(t, orthanc, sc.Image)
		cl := sc.Clinical
		gender := map[string]string{"F": "female", "M": "male"}[cl.Sex]
		born := day.AddDate(-cl.Age, 0, -40).Format("2006-01-02")
		patient := fhirCreate(t, e.fhirBase, resultsToken, `{"resourceType":"Patient","gender":"`+gender+`","birthDate":"`+born+`"}`)
		e.patients[i] = patient
		if withClinical {
			fhirCreate(t, e.fhirBase, resultsToken, fmt.Sprintf(`{"resourceType":"Observation","status":"final",`+
				`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"imaging"}]}],`+
				`"code":{"coding":[{"system":"http://loinc.org","code":"38267-1","display":"DXA Lumbar spine [T-score] Bone density"}]},`+
				`"subject":{"reference":"Patient/%s"},"effectiveDateTime":"%s","valueQuantity":{"value":%.1f,"unit":"T-score","system":"http://unitsofmeasure.org","code":"{T-score}"}}`,
				patient, day.AddDate(0, -5, 0).Format("2006-01-02"), cl.TScore))
			onset := day.AddDate(0, 0, -cl.SymptomDays)
			fhirCreate(t, e.fhirBase, resultsToken, fmt.Sprintf(`{"resourceType":"Condition",`+
				`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},`+
				`"code":{"coding":[{"system":"http://snomed.info/sct","code":"279039007","display":"Low back pain"}]},`+
				`"subject":{"reference":"Patient/%s"},"onsetDateTime":"%s"}`, patient, onset.Format("2006-01-02")))
			status := "confirmed"
			if !cl.Trauma {
				status = "refuted" // a fall was asked about and ruled out
			}
			fhirCreate(t, e.fhirBase, resultsToken, fmt.Sprintf(`{"resourceType":"Condition",`+
				`"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"%s"}]},`+
				`"code":{"coding":[{"system":"http://snomed.info/sct","code":"1912002","display":"Fall"}]},`+
				`"subject":{"reference":"Patient/%s"},"onsetDateTime":"%s"}`, status, patient, onset.AddDate(0, 0, -1).Format("2006-01-02")))
		}
		im := sc.Image
		e.studies[i] = fhirCreate(t, e.fhirBase, resultsToken, fmt.Sprintf(`{"resourceType":"ImagingStudy","status":"available",`+
			`"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:%s"}],"subject":{"reference":"Patient/%s"},`+
			`"started":"%sT08:00:00Z","endpoint":[{"reference":"Endpoint/%s"}],`+
			`"series":[{"uid":"%s","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"%s"},`+
			`"bodySite":{"system":"http://snomed.info/sct","code":"421060004","display":"Spine"},`+
			`"instance":[{"uid":"%s","sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:%s"}}]}]}`,
			im.StudyInstanceUID, patient, spineStudyDay, endpoint, im.SeriesInstanceUID, im.Modality, im.SOPInstanceUID, im.SOPClassUID))
	}
	return e
}

// hookSpine calls the vertebral service's patient-view hook for a case's
// patient (the study is found by search).
func (e *spineEnv) hookSpine(t *testing.T, s *service, phantomCase int) hookAnswer {
	t.Helper()
	url := s.base + "/cds-services/vertebral-fracture-acuity"
	body := hookBody("patient-view", e.fhirBase, resultsToken, `{"patientId":"`+e.patients[phantomCase]+`","userId":"Practitioner/1"}`)
	return e.callHook(t, url, body)
}

// TestVertebralAcuityHook drives the vertebral service through the real
// binary with real Redis, Orthanc and the FHIR test server: an acute
// fracture with the patient's clinical data in FHIR gets an urgent acuity
// card with the nomogram's breakdown and resources that pass
// validateResource; a chronic one without clinical data gets the DLR score
// alone, with a note naming what is missing.
func TestVertebralAcuityHook(t *testing.T) {
	acute, chronic := phantom.Spine(3, acuteSpineCase), phantom.Spine(3, chronicSpineCase)
	acuteLevel := ""
	for _, v := range acute.Vertebrae {
		if v.Fracture == "acute" && v.Difficulty == "typical" {
			acuteLevel = v.Level
		}
	}
	if acuteLevel == "" {
		t.Fatalf("spine case %d has no typical acute fracture now: %+v", acuteSpineCase, acute.Vertebrae)
	}
	chronicLevels := map[string]bool{}
	for _, v := range chronic.Vertebrae {
		if v.Fracture == "acute" || (v.Fracture == "chronic" && v.Difficulty != "typical") {
			t.Fatalf("spine case %d is not typical chronic only now: %+v", chronicSpineCase, chronic.Vertebrae)
		}
		if v.Fracture == "chronic" {
			chronicLevels[v.Level] = true
		}
	}
	e := newSpineEnv(t, map[int]bool{acuteSpineCase: true, chronicSpineCase: false, notSpineCase: false})
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_REDIS_URL="+testenv.Redis(t), "ORTHOTRIAGE_ONNXRUNTIME_MODELS=hip-000,spine-000",
		"ORTHOTRIAGE_RESULTS_BUDGET_PATIENT_VIEW=9s")

	a := e.hookSpine(t, s, acuteSpineCase)
	if len(a.Cards) != 1 {
		t.Fatalf("acute case: %d cards, want 1: %s\n%s", len(a.Cards), a.raw, s.logText())
	}
	card := a.Cards[0]
	t.Logf("acute case: %s %q\n%s", card.Indicator, card.Summary, card.Detail)
	want := acuteLevel + " fracture likely acute ("
	if card.Indicator != "warning" || !strings.Contains(card.Summary, want) || !strings.Contains(card.Summary, "urgent read suggested") {
		t.Errorf("card = %s %q, want a warning card %q... urgent read suggested", card.Indicator, card.Summary, want)
	}
	for _, w := range []string{"Nomogram, " + acuteLevel, "BMD T-score", "Symptom duration", "Recent minor trauma", "**Total**", "not for clinical use"} {
		if !strings.Contains(card.Detail, w) {
			t.Errorf("detail lacks %q:\n%s", w, card.Detail)
		}
	}
	if strings.Contains(card.Detail, "Clinical data missing") {
		t.Errorf("clinical data was given but reported missing:\n%s", card.Detail)
	}
	if len(card.Suggestions) != 1 {
		t.Fatalf("suggestions = %+v", card.Suggestions)
	}
	actions := card.Suggestions[0].Actions
	var taskPriority string
	sites := map[string]bool{}
	for _, act := range actions {
		var r struct {
			ResourceType, Priority string
			BodySite               struct{ Text string }
		}
		json.Unmarshal(act.Resource, &r)
		switch r.ResourceType {
		case "Task":
			taskPriority = r.Priority
		case "Observation":
			sites[strings.TrimSuffix(r.BodySite.Text, " vertebra")] = true
		}
	}
	if taskPriority != "urgent" {
		t.Errorf("Task priority %q, want urgent", taskPriority)
	}
	if !sites[acuteLevel] {
		t.Errorf("no Observation for %s among %v", acuteLevel, sites)
	}
	e.validate(t, actions)

	c := e.hookSpine(t, s, chronicSpineCase)
	if len(c.Cards) != 1 {
		t.Fatalf("chronic case: %d cards, want 1: %s", len(c.Cards), c.raw)
	}
	cc := c.Cards[0]
	t.Logf("chronic case without clinical data: %s %q\n%s", cc.Indicator, cc.Summary, cc.Detail)
	if cc.Indicator != "info" || !strings.Contains(cc.Summary, "fracture likely chronic") {
		t.Errorf("chronic card = %s %q", cc.Indicator, cc.Summary)
	}
	for _, w := range []string{"Clinical data missing", "BMD T-score", "DLR score alone"} {
		if !strings.Contains(cc.Detail, w) {
			t.Errorf("chronic detail lacks %q:\n%s", w, cc.Detail)
		}
	}
	if strings.Contains(cc.Detail, "**Total**") {
		t.Errorf("a nomogram was drawn without the clinical data:\n%s", cc.Detail)
	}
	e.validate(t, cc.Suggestions[0].Actions)

	n := e.hookSpine(t, s, notSpineCase)
	if len(n.Cards) != 1 || n.Cards[0].Indicator != "info" || !strings.Contains(n.Cards[0].Summary, "no vertebral body could be localised") {
		t.Errorf("a pelvis radiograph sent as a spine: %s", n.raw)
	} else {
		e.validate(t, n.Cards[0].Suggestions[0].Actions)
	}
	if strings.Contains(s.logText(), resultsToken) {
		t.Error("the FHIR access token was logged")
	}
}
