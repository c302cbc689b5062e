package cds_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/store"
)

// callFor calls the hip service's patient-view for patient with the given
// studies of theirs (the patient resource with them).
func callFor(t *testing.T, e *cds.Engine, patient string, ids ...string) cds.Response {
	t.Helper()
	var studies []string
	for _, id := range ids {
		studies = append(studies, study(id, patient))
	}
	body := `{"hook":"patient-view","hookInstance":"h1","context":{"userId":"Practitioner/u","patientId":"` + patient + `"},` +
		`"prefetch":{"patient":{"resourceType":"Patient","id":"` + patient + `","gender":"female"},"studies":` + bundle("", studies...) + `}}`
	// The request's own deadline: a hook budget that did not work would
	// end the call with this error instead of hanging the test.
	ctx, cancel := context.WithTimeout(cds.WithBaseURL(context.Background(), "https://triage.example.org"), 10*time.Second)
	defer cancel()
	resp, err := e.Call(ctx, "hip-radiograph-screening", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestSameStudyInTwoChartsGetsEachPatientsResources: one study (one Study
// Instance UID, one analysis) filed under two patients; each chart's card
// carries resources built for its own patient and ImagingStudy, never the
// ones built for the first chart.
func TestSameStudyInTwoChartsGetsEachPatientsResources(t *testing.T) {
	first := hips("is-a", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	second := first // the same cached pixels, bound to the second call
	second.Study = analysis.Study{ImagingStudyID: "is-b", UID: first.Study.UID, Patient: "Patient/p2"}
	e, fa := engineFor(map[string]analysis.Result{"is-a": first, "is-b": second}, cds.CardOptions{},
		func(ec *cds.EngineConfig, _ *analysis.TriageConfig) { ec.Kept.Built, ec.Kept.Stored = 10, 10 })

	a := callFor(t, e, "p1", "is-a")
	b := callFor(t, e, "p2", "is-b")
	if len(a.Cards) != 1 || len(b.Cards) != 1 {
		t.Fatalf("cards: %d and %d, want one each", len(a.Cards), len(b.Cards))
	}
	got := string(b.Cards[0].Suggestions[0].Actions[len(b.Cards[0].Suggestions[0].Actions)-1].Resource)
	if !strings.Contains(got, `"dr-is-b"`) {
		t.Errorf("second patient's card suggests %s, want the report built for ImagingStudy is-b", got)
	}
	if link := b.Cards[0].Links[0].URL; !strings.Contains(link, "dr-is-b") {
		t.Errorf("second patient's card links %s", link)
	}
	if fa.inputs[1].Patient != "Patient/p2" {
		t.Errorf("the analysis of the second call was asked for %q, want Patient/p2", fa.inputs[1].Patient)
	}
}

// TestStudyOfAnotherPatientGetsNoCard: an analyser refusing the study
// (its subject is not the call's patient) leaves it out of the answer.
func TestStudyOfAnotherPatientGetsNoCard(t *testing.T) {
	e, fa := engineFor(map[string]analysis.Result{}, cds.CardOptions{NormalCard: true})
	fa.errs["is-x"] = analysis.ErrOtherPatient
	if resp := callFor(t, e, "p1", "is-x"); len(resp.Cards) != 0 {
		t.Errorf("cards %+v for a study the analysis refused as another patient's", resp.Cards)
	}
}

// flakyReports is a report store that can fail, or lose everything as a
// Redis restarted empty does.
type flakyReports struct {
	*store.MemoryResults
	down atomic.Bool
	puts atomic.Int32
}

// InProcess is false: the store stands for Redis.
func (f *flakyReports) InProcess() bool { return false }

var errDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (f *flakyReports) Put(ctx context.Context, key string, r analysis.Result, ttl time.Duration) error {
	if f.down.Load() {
		return errDown
	}
	f.puts.Add(1)
	return f.MemoryResults.Put(ctx, key, r, ttl)
}

func (f *flakyReports) Touch(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if f.down.Load() {
		return false, errDown
	}
	return f.MemoryResults.Touch(ctx, key, ttl)
}

func reportLink(resp cds.Response) string {
	for _, c := range resp.Cards {
		for _, l := range c.Links {
			if l.Type == "absolute" && strings.Contains(l.URL, "/reports/") {
				return l.URL
			}
		}
	}
	return ""
}

// TestCardsLinkOnlyReportsThatOpen: during a store outage the card goes
// without the report link; after the store restarts empty, the report is
// stored again before it is linked.
func TestCardsLinkOnlyReportsThatOpen(t *testing.T) {
	res := hips("is-a", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	reports := &flakyReports{MemoryResults: store.NewMemoryResults(10)}
	e, _ := engineFor(map[string]analysis.Result{"is-a": res}, cds.CardOptions{},
		func(ec *cds.EngineConfig, _ *analysis.TriageConfig) { ec.Reports, ec.Kept.Stored = reports, 10 })
	opens := func(link string) bool {
		id := strings.TrimPrefix(link[:strings.Index(link, "?")], "https://triage.example.org/reports/")
		_, err := e.ReportHTML(t.Context(), id, link[strings.Index(link, "sig=")+4:])
		return err == nil
	}

	link := reportLink(callFor(t, e, "p1", "is-a"))
	if link == "" || !opens(link) {
		t.Fatalf("with the store up: link %q does not open", link)
	}
	reports.down.Store(true)
	if resp := callFor(t, e, "p1", "is-a"); reportLink(resp) != "" || len(resp.Cards) != 1 {
		t.Errorf("store down: cards %d, link %q; want the card without the link", len(resp.Cards), reportLink(resp))
	}
	reports.down.Store(false)
	reports.MemoryResults = store.NewMemoryResults(10) // restarted empty
	link = reportLink(callFor(t, e, "p1", "is-a"))
	if link == "" || !opens(link) {
		t.Errorf("after the store restarted empty: link %q does not open", link)
	}
	if n := reports.puts.Load(); n != 2 {
		t.Errorf("report stored %d times, want 2 (first answer, after the restart)", n)
	}
}
