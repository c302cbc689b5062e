package cds_test

import (
	"testing"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/cds/cdstest"
	"github.com/orthotriage/orthotriage/store"
)

// appEngine is an engine whose FHIR server holds the given resources by
// path, answering from canned results.
func appEngine(results map[string]analysis.Result, fhir map[string]string) (*cds.Engine, *cdstest.FHIR, *store.MemoryFeedback) {
	src := &cdstest.FHIR{Responses: fhir}
	fb := store.NewMemoryFeedback(10)
	e, _ := engineFor(results, cds.CardOptions{Source: cds.Source{Label: "orthotriage"}}, func(ec *cds.EngineConfig, _ *analysis.TriageConfig) {
		ec.Resolver.FHIR, ec.Feedback = src, fb
	})
	return e, src, fb
}

func appRequest(token, study string) cds.AppRequest {
	return cds.AppRequest{FHIRServer: "https://fhir.example.org/r4", Token: token, ImagingStudy: study}
}

// TestAppStudyNeedsTheFHIRServersConsent: the app is told about a study
// only when the FHIR server lets its token read it; the patient is the
// study's subject as read; whatever the refusal, existence is not told.
func TestAppStudyNeedsTheFHIRServersConsent(t *testing.T) {
	res := hips("s1", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	e, src, _ := appEngine(map[string]analysis.Result{"s1": res, "other": res}, map[string]string{
		"ImagingStudy/s1":    study("s1", "p7"),
		"ImagingStudy/other": study("someone-else", "p7"),
		"ImagingStudy/anon":  `{"resourceType":"ImagingStudy","id":"anon","status":"available","subject":{"reference":"Group/g"}}`,
	})
	got, err := e.AppStudy(t.Context(), appRequest("tok", "ImagingStudy/s1"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "done" || got.Patient != "Patient/p7" || got.Result == nil || got.Report != "DiagnosticReport/dr-s1" ||
		len(got.Resources) != 3 || len(got.OverrideReasons) != 3 || got.Service != "hip-radiograph-screening" || got.Saved {
		t.Errorf("AppStudy = %+v", got)
	}
	if calls := src.Calls; len(calls) == 0 || calls[0].Server.Token != "tok" || calls[0].Path != "ImagingStudy/s1" {
		t.Errorf("the study was not read with the app's token first: %+v", calls)
	}
	src.Responses["DiagnosticReport/dr-s1"] = `{"resourceType":"DiagnosticReport","id":"dr-s1"}`
	if got, _ := e.AppStudy(t.Context(), appRequest("tok", "ImagingStudy/s1")); !got.Saved {
		t.Errorf("a report on the FHIR server is not seen as saved")
	}
	for name, tc := range map[string]struct {
		req  cds.AppRequest
		code string
	}{
		"no token":          {appRequest("", "ImagingStudy/s1"), orthotriage.EUnauthorized},
		"not readable":      {appRequest("tok", "ImagingStudy/missing"), orthotriage.EForbidden},
		"another study":     {appRequest("tok", "ImagingStudy/other"), orthotriage.EForbidden},
		"no patient":        {appRequest("tok", "ImagingStudy/anon"), orthotriage.EForbidden},
		"not a study":       {appRequest("tok", "Patient/p7"), orthotriage.EInvalid},
		"a path in the id":  {appRequest("tok", "ImagingStudy/s1/_history/1"), orthotriage.EInvalid},
		"a query in the id": {appRequest("tok", "ImagingStudy/s1?x=1"), orthotriage.EInvalid},
	} {
		if _, err := e.AppStudy(t.Context(), tc.req); orthotriage.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	src.Err = orthotriage.Errorf(orthotriage.EUnavailable, "FHIR server not reachable")
	if _, err := e.AppStudy(t.Context(), appRequest("tok", "ImagingStudy/s1")); orthotriage.ErrorCode(err) != orthotriage.EUnavailable {
		t.Errorf("FHIR server down: %v, want unavailable", err)
	}
}

// TestAppWorklistKeepsWhatTheTokenReads: rows are the items whose study
// the token reads, each with its subject; none readable is a refusal, and
// an empty list still needs a token the server accepts.
func TestAppWorklistKeepsWhatTheTokenReads(t *testing.T) {
	e, src, _ := appEngine(nil, map[string]string{
		"ImagingStudy/a": study("a", "p1"), "ImagingStudy/b": study("b", "p2"),
	})
	items := []analysis.WorkItem{{ImagingStudy: "ImagingStudy/a", Priority: "stat"}, {ImagingStudy: "ImagingStudy/hidden"}, {ImagingStudy: "ImagingStudy/b"}}
	wl, err := e.AppWorklist(t.Context(), appRequest("tok", ""), items, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(wl.Rows) != 2 || wl.Rows[0].ImagingStudy != "ImagingStudy/a" || wl.Rows[0].Patient != "Patient/p1" || wl.Rows[1].Patient != "Patient/p2" {
		t.Errorf("rows %+v", wl.Rows)
	}
	if _, err := e.AppWorklist(t.Context(), appRequest("tok", ""), items[1:2], false); orthotriage.ErrorCode(err) != orthotriage.EForbidden {
		t.Errorf("nothing readable: %v, want forbidden", err)
	}
	if _, err := e.AppWorklist(t.Context(), appRequest("tok", ""), nil, false); orthotriage.ErrorCode(err) != orthotriage.EForbidden {
		t.Errorf("empty list, search refused: %v, want forbidden", err)
	}
	src.Responses["ImagingStudy?_count=1"] = bundle("")
	if wl, err := e.AppWorklist(t.Context(), appRequest("tok", ""), nil, false); err != nil || len(wl.Rows) != 0 {
		t.Errorf("empty list: %+v, %v", wl, err)
	}
	if _, err := e.AppWorklist(t.Context(), appRequest("", ""), items, false); orthotriage.ErrorCode(err) != orthotriage.EUnauthorized {
		t.Errorf("no token: %v", err)
	}
}

// TestAppFeedbackIsTheCardsFeedback: agreeing accepts the card's save
// suggestion, disagreeing carries the reason; both only with access.
func TestAppFeedbackIsTheCardsFeedback(t *testing.T) {
	e, _, fb := appEngine(nil, map[string]string{"ImagingStudy/s1": study("s1", "p1")})
	card := "6f1c8a53-5d7c-5a61-9a55-4f1d5e2f9a10"
	if _, err := e.AppFeedback(t.Context(), appRequest("tok", "ImagingStudy/s1"), "hip-radiograph-screening",
		cds.Feedback{Card: card, Outcome: cds.OutcomeAccepted}); err != nil {
		t.Fatal(err)
	}
	reason := &cds.OverrideReason{Reason: &cds.Coding{Code: "disagree"}, UserComment: "cortex intact"}
	if _, err := e.AppFeedback(t.Context(), appRequest("tok", "ImagingStudy/s1"), "hip-radiograph-screening",
		cds.Feedback{Card: card, Outcome: cds.OutcomeOverridden, OverrideReason: reason}); err != nil {
		t.Fatal(err)
	}
	ev := fb.Events()
	if len(ev) != 2 || len(ev[0].Feedback.AcceptedSuggestions) != 1 || ev[0].Feedback.AcceptedSuggestions[0].ID == "" ||
		ev[1].Feedback.OverrideReason == nil || ev[1].Feedback.OverrideReason.Reason.Code != "disagree" || ev[0].Feedback.OutcomeTimestamp == "" {
		t.Errorf("events %+v", ev)
	}
	if _, err := e.AppFeedback(t.Context(), appRequest("tok", "ImagingStudy/gone"), "hip-radiograph-screening",
		cds.Feedback{Card: card, Outcome: cds.OutcomeAccepted}); orthotriage.ErrorCode(err) != orthotriage.EForbidden || len(fb.Events()) != 2 {
		t.Errorf("feedback without access to the study: %v, %d events", err, len(fb.Events()))
	}
}

// TestAppFeedbackMustNameTheCardsStudy: a card this engine issued takes
// the app's feedback only for its own study.
func TestAppFeedbackMustNameTheCardsStudy(t *testing.T) {
	res := hips("s1", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	e, _, fb := appEngine(map[string]analysis.Result{"s1": res}, map[string]string{
		"ImagingStudy/s1": study("s1", "p1"), "ImagingStudy/s2": study("s2", "p1"),
	})
	resp := callFor(t, e, "p1", "s1")
	if len(resp.Cards) != 1 {
		t.Fatalf("%d cards", len(resp.Cards))
	}
	card := resp.Cards[0].UUID
	_, err := e.AppFeedback(t.Context(), appRequest("tok", "ImagingStudy/s2"), "hip-radiograph-screening", cds.Feedback{Card: card, Outcome: cds.OutcomeAccepted})
	if orthotriage.ErrorCode(err) != orthotriage.EForbidden || len(fb.Events()) != 0 {
		t.Errorf("feedback for s1's card naming s2: %v, %d events", err, len(fb.Events()))
	}
	if _, err := e.AppFeedback(t.Context(), appRequest("tok", "ImagingStudy/s1"), "hip-radiograph-screening-imagingstudy-available",
		cds.Feedback{Card: card, Outcome: cds.OutcomeAccepted}); err != nil || len(fb.Events()) != 1 {
		t.Errorf("feedback for the card's own study, under the service's other id: %v, %d events", err, len(fb.Events()))
	}
}

// TestAppWorklistWithTasks: with write-back on, each row shows its Task's
// status as the FHIR server has it, and an open Task on a study the index
// lacks becomes a row of its own, in priority order.
func TestAppWorklistWithTasks(t *testing.T) {
	task := func(id, study, patient, status, priority string) string {
		return `{"resourceType":"Task","id":"` + id + `","status":"` + status + `","intent":"proposal","priority":"` + priority +
			`","focus":{"reference":"` + study + `"},"for":{"reference":"Patient/` + patient + `"},"description":"STAT read suggested by AI triage"}`
	}
	e, _, _ := appEngine(nil, map[string]string{
		"ImagingStudy/a": study("a", "p1"),
		"Task?code=https://orthotriage.github.io/fhir/CodeSystem/task|read-study&_count=100": bundle("",
			task("t1", "ImagingStudy/a", "p1", "in-progress", "routine"),
			task("t2", "ImagingStudy/z", "p9", "requested", "stat"),
			task("t3", "ImagingStudy/done", "p9", "completed", "stat"),
			task("t4", "ServiceRequest/o1", "p9", "requested", "stat")),
	})
	items := []analysis.WorkItem{{ImagingStudy: "ImagingStudy/a", Priority: "routine", Status: analysis.WorkAIRead}}
	wl, err := e.AppWorklist(t.Context(), appRequest("tok", ""), items, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(wl.Rows) != 2 || wl.Rows[0].ImagingStudy != "ImagingStudy/z" || wl.Rows[0].Patient != "Patient/p9" || wl.Rows[0].TaskStatus != "requested" ||
		wl.Rows[0].Priority != "stat" || wl.Rows[1].ImagingStudy != "ImagingStudy/a" || wl.Rows[1].TaskStatus != "in-progress" {
		t.Errorf("rows %+v", wl.Rows)
	}
	if wl, _ := e.AppWorklist(t.Context(), appRequest("tok", ""), items, false); len(wl.Rows) != 1 || wl.Rows[0].TaskStatus != "" {
		t.Errorf("write-back off: rows %+v", wl.Rows)
	}
}
