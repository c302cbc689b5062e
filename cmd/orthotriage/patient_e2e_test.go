package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/phantom"
)

// TestSameStudyUnderAnotherPatient: one radiograph study (one Study
// Instance UID) is filed under a second patient, as after a merge or a
// misfiled study. The second chart is answered from the cache, but with its
// own patient and ImagingStudy in every resource and in the viewer link,
// and resource ids of its own; the first patient's study is never shown in
// the second chart.
func TestSameStudyUnderAnotherPatient(t *testing.T) {
	e := newResultsEnv(t)
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_RESULTS_VIEWER_URL=https://viewer.example.org/launch")
	url := e.studyAvailableURL(t, s)
	other := fhirCreate(t, e.fhirBase, resultsToken, `{"resourceType":"Patient","gender":"male","birthDate":"1950-01-01"}`)
	im := phantom.Pelvis(3, fnfCase).Image
	endpoint := e.createEndpoint(t)
	misfiled := fhirCreate(t, e.fhirBase, resultsToken, fmt.Sprintf(`{"resourceType":"ImagingStudy","status":"available",`+
		`"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:%s"}],"subject":{"reference":"Patient/%s"},`+
		`"started":"2026-11-25T08:00:00Z","endpoint":[{"reference":"Endpoint/%s"}],`+
		`"series":[{"uid":"%s","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"%s"},`+
		`"bodySite":{"system":"http://snomed.info/sct","code":"12921003","display":"Pelvis"},`+
		`"instance":[{"uid":"%s","sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:%s"}}]}]}`,
		im.StudyInstanceUID, other, endpoint, im.SeriesInstanceUID, im.Modality, im.SOPInstanceUID, im.SOPClassUID))
	hookFor := func(patient, study string) hookAnswer {
		return e.callHook(t, url, hookBody("org.orthotriage.imagingstudy-available", e.fhirBase, resultsToken,
			`{"patientId":"`+patient+`","studies":["ImagingStudy/`+study+`"]}`))
	}

	first := hookFor(e.patient, e.studies[fnfCase])
	before := metricValue(t, s, "orthotriage_analyses_total")
	second := hookFor(other, misfiled)
	if len(first.Cards) != 1 || len(second.Cards) != 1 {
		t.Fatalf("cards: %d for the first patient, %d for the second, want 1 each:\n%s\n%s", len(first.Cards), len(second.Cards), first.raw, second.raw)
	}
	if n := metricValue(t, s, "orthotriage_analyses_total") - before; n != 0 {
		t.Errorf("the second chart's study was analysed again (%v): it is the same pixels", n)
	}
	if strings.Contains(second.raw, e.patient) || strings.Contains(second.raw, e.studies[fnfCase]) {
		t.Errorf("the second patient's answer names the first patient or their ImagingStudy:\n%s", second.raw)
	}
	ids := map[string]bool{}
	for _, a := range first.Cards[0].Suggestions[0].Actions {
		var r struct{ ID string }
		json.Unmarshal(a.Resource, &r)
		ids[r.ID] = true
	}
	for _, a := range second.Cards[0].Suggestions[0].Actions {
		var r struct {
			ResourceType, ID string
			Subject, For     *struct{ Reference string }
		}
		json.Unmarshal(a.Resource, &r)
		if r.ResourceType != "Device" && ids[r.ID] {
			t.Errorf("%s/%s has the id of the first patient's resource", r.ResourceType, r.ID)
		}
		for _, ref := range []*struct{ Reference string }{r.Subject, r.For} {
			if ref != nil && ref.Reference != "Patient/"+other {
				t.Errorf("%s names %s, want Patient/%s", r.ResourceType, ref.Reference, other)
			}
		}
	}
	for _, l := range second.Cards[0].Links {
		if l.Type == "smart" && !strings.Contains(l.AppContext, "ImagingStudy/"+misfiled) {
			t.Errorf("viewer appContext %s, want ImagingStudy/%s", l.AppContext, misfiled)
		}
	}
	e.validate(t, second.Cards[0].Suggestions[0].Actions)

	// The first patient's ImagingStudy named in the second patient's call
	// is another patient's study: not shown there.
	if crossed := hookFor(other, e.studies[fnfCase]); len(crossed.Cards) != 0 {
		t.Errorf("the first patient's study answered in the second chart:\n%s", crossed.raw)
	}
}
