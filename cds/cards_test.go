package cds_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/cds/cdstest"
	"github.com/orthotriage/orthotriage/inference/spine"
	"github.com/orthotriage/orthotriage/store"
)

// fakeAnalyzer answers canned results by ImagingStudy id.
type fakeAnalyzer struct {
	mu      sync.Mutex // the triage analyses studies concurrently
	results map[string]analysis.Result
	errs    map[string]error
	inputs  []analysis.Input
	tasks   []string // tasks read besides hip
}

func (f *fakeAnalyzer) Analyze(_ context.Context, in analysis.Input) (analysis.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, in)
	id := *in.Study.Id
	if err := f.errs[id]; err != nil {
		return analysis.Result{}, err
	}
	return f.results[id], nil
}

func (f *fakeAnalyzer) Reads(task string) bool {
	return task == "hip" || slices.Contains(f.tasks, task)
}

// fakeReporter makes one resource per finding plus a report.
type fakeReporter struct{}

func (fakeReporter) Report(r analysis.Result) (cds.Report, error) {
	rep := cds.Report{ID: "dr-" + r.Study.ImagingStudyID}
	for _, f := range r.Findings {
		rep.Resources = append(rep.Resources, json.RawMessage(`{"resourceType":"Observation","id":"`+f.Region+`"}`))
	}
	rep.Resources = append(rep.Resources, json.RawMessage(`{"resourceType":"DiagnosticReport","id":"`+rep.ID+`"}`))
	return rep, nil
}

func (fakeReporter) HTML(r analysis.Result) ([]byte, error) {
	return []byte("<p>" + r.Study.UID + "</p>"), nil
}

// hips is a result with the right and left hips read as given; a class of
// "" is normal.
func hips(id string, right, left analysis.Finding) analysis.Result {
	right.Region, right.Laterality = "right-hip", "right"
	left.Region, left.Laterality = "left-hip", "left"
	return analysis.Result{Schema: analysis.SchemaVersion, Study: analysis.Study{ImagingStudyID: id, UID: "1.2." + id, Patient: "Patient/p1"},
		Model:    analysis.Model{ID: "hip-000", Version: "0.1.0", Task: "hip", TrainingData: "synthetic", Warning: "synthetic training data - not for clinical use"},
		Findings: []analysis.Finding{right, left}, Analyzed: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
}

func normal() analysis.Finding {
	return analysis.Finding{Class: "normal", Display: "Normal hip", Probability: 0.98, Reported: true, Normal: true}
}

func found(class, display string, p float64, priority string) analysis.Finding {
	return analysis.Finding{Class: class, Display: display, Probability: p, Reported: true, Priority: priority, PriorityClass: class,
		Probabilities: []analysis.ClassProbability{{Class: class, Display: display, Probability: p}}}
}

// tweak adjusts an engine's configuration, and its triage's, before they
// are built.
type tweak func(*cds.EngineConfig, *analysis.TriageConfig)

// engineFor is an engine answering from canned results (three studies per
// call), with the given card options and tweaks.
func engineFor(results map[string]analysis.Result, opts cds.CardOptions, tweaks ...tweak) (*cds.Engine, *fakeAnalyzer) {
	fa := &fakeAnalyzer{results: results, errs: map[string]error{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tc := analysis.TriageConfig{Analyzer: fa, StudiesPerCall: 3, Log: log}
	ec := cds.EngineConfig{
		Resolver: &cds.Resolver{FHIR: &cdstest.FHIR{}, MaxPages: 2, MaxStudies: 10, Log: log},
		Feedback: store.NewMemoryFeedback(100), Log: log, Now: time.Now,
		Reporter: fakeReporter{}, Cards: opts,
		Kept: cds.Kept{Issued: 10}, Reports: store.NewMemoryResults(10), ReportTTL: time.Hour, LinkKey: []byte("k"),
	}
	for _, tw := range tweaks {
		tw(&ec, &tc)
	}
	ec.Triage = analysis.NewTriage(tc)
	return cds.NewEngine(ec), fa
}

func callHips(t *testing.T, e *cds.Engine, ids ...string) cds.Response {
	t.Helper()
	return callFor(t, e, "p1", ids...)
}

func TestCardsFollowTheTriagePriority(t *testing.T) {
	tests := []struct {
		name, indicator, summary string
		result                   analysis.Result
	}{
		{"fracture is critical", "critical", "[synthetic model] Possible fracture of neck of femur, left hip (97%): STAT read suggested",
			hips("s", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))},
		{"osteonecrosis is a warning", "warning", "[synthetic model] Possible osteonecrosis of the femoral head, right hip (88%): URGENT read suggested",
			hips("s", found("onfh", "Osteonecrosis of the femoral head", 0.88, "urgent"), normal())},
		{"most urgent first, others counted", "critical", "[synthetic model] Possible intertrochanteric fracture, right hip (61%): STAT read suggested (+1 more)",
			hips("s", found("itf", "Intertrochanteric fracture", 0.61, "stat"), found("tha", "Total hip replacement", 0.99, "routine"))},
		{"arthroplasty is routine info", "info", "[synthetic model] Possible total hip replacement, left hip (99%): ROUTINE read suggested",
			hips("s", normal(), found("tha", "Total hip replacement", 0.99, "routine"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := engineFor(map[string]analysis.Result{"s": tc.result}, cds.CardOptions{Source: cds.Source{Label: "orthotriage"}})
			resp := callHips(t, e, "s")
			if len(resp.Cards) != 1 {
				t.Fatalf("%d cards", len(resp.Cards))
			}
			c := resp.Cards[0]
			if c.Indicator != tc.indicator || c.Summary != tc.summary {
				t.Errorf("got %s %q\nwant %s %q", c.Indicator, c.Summary, tc.indicator, tc.summary)
			}
			if len(c.Suggestions) != 1 || len(c.Suggestions[0].Actions) != 3 || c.Suggestions[0].Actions[0].Type != "create" || c.SelectionBehavior != "any" {
				t.Errorf("suggestions %+v", c.Suggestions)
			}
			if len(c.OverrideReasons) != 3 || c.Source.Topic == nil || c.UUID == "" {
				t.Errorf("override reasons %v, topic %v, uuid %q", c.OverrideReasons, c.Source.Topic, c.UUID)
			}
			if len(c.Links) != 1 || !strings.HasPrefix(c.Links[0].URL, "https://triage.example.org/reports/dr-s?sig=") {
				t.Errorf("links %+v", c.Links)
			}
		})
	}
}

func TestFlaggedClassBelowTheTopClass(t *testing.T) {
	// Read as normal (62%), but the fracture probability (35%) passes the
	// STAT rule's minimum: the card names the fracture, not "normal".
	right := normal()
	right.Probability, right.Priority, right.PriorityClass = 0.62, "stat", "fnf"
	right.Probabilities = []analysis.ClassProbability{{Class: "normal", Display: "Normal hip", Probability: 0.62}, {Class: "fnf", Display: "Fracture of neck of femur", Probability: 0.35}}
	e, _ := engineFor(map[string]analysis.Result{"s": hips("s", right, normal())}, cds.CardOptions{Source: cds.Source{Label: "x"}})
	c := callHips(t, e, "s").Cards
	if len(c) != 1 || c[0].Indicator != "critical" || !strings.Contains(c[0].Summary, "fracture of neck of femur, right hip (35%)") {
		t.Fatalf("cards %+v", c)
	}
	if !strings.Contains(c[0].Detail, "| right hip | Normal hip (fracture of neck of femur 35%) | 62% | stat |") {
		t.Errorf("detail:\n%s", c[0].Detail)
	}
}

func TestNormalStudiesAndReview(t *testing.T) {
	res := map[string]analysis.Result{"n": hips("n", normal(), normal())}
	e, _ := engineFor(res, cds.CardOptions{Source: cds.Source{Label: "x"}})
	if c := callHips(t, e, "n").Cards; len(c) != 0 {
		t.Errorf("normal study without normal cards: %+v", c)
	}
	e, _ = engineFor(res, cds.CardOptions{Source: cds.Source{Label: "x"}, NormalCard: true})
	if c := callHips(t, e, "n").Cards; len(c) != 1 || c[0].Indicator != "info" || !strings.Contains(c[0].Summary, "no abnormality found on the hips") {
		t.Errorf("normal card: %+v", c)
	}
	// A low-confidence routine finding is raised to a warning.
	low := hips("l", normal(), found("oa", "Osteoarthritis of hip", 0.52, "routine"))
	low.Review, low.Findings[1].LowConfidence = true, true
	e, _ = engineFor(map[string]analysis.Result{"l": low}, cds.CardOptions{Source: cds.Source{Label: "x"}})
	c := callHips(t, e, "l").Cards
	if len(c) != 1 || c[0].Indicator != "warning" || !strings.HasSuffix(c[0].Summary, "; low confidence, needs review") || !strings.Contains(c[0].Detail, "low confidence") {
		t.Errorf("review card: %+v", c)
	}
}

func TestSummaryStaysUnder140Runes(t *testing.T) {
	long := found("x", strings.Repeat("Überlange Befundbeschreibung ", 10), 0.9, "stat")
	e, _ := engineFor(map[string]analysis.Result{"s": hips("s", long, normal())}, cds.CardOptions{Source: cds.Source{Label: "x"}})
	s := callHips(t, e, "s").Cards[0].Summary
	if n := utf8.RuneCountInString(s); n != 139 || !strings.HasSuffix(s, "…") {
		t.Errorf("summary %d runes: %q", n, s)
	}
}

func TestSystemActionsMode(t *testing.T) {
	e, _ := engineFor(map[string]analysis.Result{"s": hips("s", normal(), found("fnf", "Fracture of neck of femur", 0.9, "stat"))},
		cds.CardOptions{Source: cds.Source{Label: "x"}, SystemActions: true})
	resp := callHips(t, e, "s")
	if len(resp.Cards) != 1 || len(resp.Cards[0].Suggestions) != 0 || len(resp.SystemActions) != 3 {
		t.Errorf("cards %+v, systemActions %d", resp.Cards, len(resp.SystemActions))
	}
}

func TestStudiesWithoutResultsAreLeftOut(t *testing.T) {
	e, fa := engineFor(map[string]analysis.Result{"ok": hips("ok", found("fnf", "Fracture of neck of femur", 0.9, "stat"), normal())},
		cds.CardOptions{Source: cds.Source{Label: "x"}})
	fa.errs["chest"] = analysis.ErrNoRadiograph
	fa.errs["broken"] = errors.New("Orthanc said 500")
	resp := callHips(t, e, "chest", "broken", "ok")
	if len(resp.Cards) != 1 {
		t.Errorf("%d cards, want the one of the readable study", len(resp.Cards))
	}
	for _, in := range fa.inputs {
		if in.Task != "hip" || in.FHIRServer != "" {
			t.Errorf("input task %q server %q", in.Task, in.FHIRServer)
		}
	}
}

func TestFeedbackIsMatchedToIssuedCards(t *testing.T) {
	e, _ := engineFor(map[string]analysis.Result{"s": hips("s", normal(), found("fnf", "Fracture of neck of femur", 0.9, "stat"))},
		cds.CardOptions{Source: cds.Source{Label: "x"}})
	card := callHips(t, e, "s").Cards[0]
	body := `{"feedback":[` +
		`{"card":"` + card.UUID + `","outcome":"overridden","overrideReason":{"reason":{"code":"poor-image-quality","system":"s"}},"outcomeTimestamp":"2026-11-28T10:00:00Z"},` +
		`{"card":"9b2f4a48-1b3c-4a55-8d7e-000000000000","outcome":"accepted","acceptedSuggestions":[{"id":"x"}],"outcomeTimestamp":"2026-11-28T10:00:00Z"}]}`
	res, err := e.RecordFeedback(context.Background(), "hip-radiograph-screening", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Card != "critical" || res[0].Reason != "poor-image-quality" || res[1].Card != "unknown" || res[1].Reason != "" {
		t.Errorf("results %+v", res)
	}
	if html, err := e.ReportHTML(context.Background(), "dr-s", "bad"); err == nil {
		t.Errorf("report served without a valid signature: %s", html)
	}
	sig := card.Links[0].URL[strings.Index(card.Links[0].URL, "sig=")+4:]
	if html, err := e.ReportHTML(context.Background(), "dr-s", sig); err != nil || string(html) != "<p>1.2.s</p>" {
		t.Errorf("report = %q %v", html, err)
	}
}

// blockingAnalyzer never finishes before the caller's context ends.
type blockingAnalyzer struct{}

func (blockingAnalyzer) Analyze(ctx context.Context, _ analysis.Input) (analysis.Result, error) {
	<-ctx.Done()
	return analysis.Result{}, ctx.Err()
}

func (blockingAnalyzer) Reads(string) bool { return true }

func TestBudgetAnswersWithAPendingCard(t *testing.T) {
	budget := func(pendingCard bool) tweak {
		return func(ec *cds.EngineConfig, tc *analysis.TriageConfig) {
			tc.Analyzer = blockingAnalyzer{}
			tc.Budgets = map[string]time.Duration{cds.HookPatientView: 20 * time.Millisecond}
			ec.Cards.PendingCard = pendingCard
		}
	}
	e, _ := engineFor(nil, cds.CardOptions{Source: cds.Source{Label: "x"}}, budget(false))
	resp := callHips(t, e, "a", "b") // fails if the call waits for its own deadline
	if len(resp.Cards) != 0 {
		t.Errorf("pending card without PendingCard: %+v", resp.Cards)
	}
	e, _ = engineFor(nil, cds.CardOptions{Source: cds.Source{Label: "x"}}, budget(true))
	resp = callHips(t, e, "a", "b")
	if len(resp.Cards) != 1 || resp.Cards[0].Indicator != "info" || !strings.Contains(resp.Cards[0].Summary, "in progress for 2 radiograph studies") {
		t.Errorf("cards %+v", resp.Cards)
	}
}

// vertebrae is a vertebral result with the given fractured vertebrae.
func vertebrae(id string, localised []string, notes []string, findings ...analysis.Finding) analysis.Result {
	return analysis.Result{Schema: analysis.SchemaVersion, Study: analysis.Study{ImagingStudyID: id, UID: "1.3." + id, Patient: "Patient/p1"},
		Model:     analysis.Model{ID: "spine-000", Version: "0.1.0", Task: "vertebral-fracture-acuity", TrainingData: "synthetic", Warning: "synthetic training data - not for clinical use"},
		Localised: localised, Notes: notes, Findings: findings, Analyzed: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
}

func fractured(level, class string, p float64, priority string, nomogram *spine.Score) analysis.Finding {
	f := found(class, class+" compression fracture", p, priority)
	f.Region = level
	f.Acuity = &analysis.Acuity{Fracture: 0.97, DLR: 0.8, Nomogram: nomogram}
	return f
}

// The vertebral card says the most urgent fracture's level and acuity, puts
// the nomogram's points in the detail, says when clinical data was missing,
// and says so when nothing could be localised instead of guessing.
func TestVertebralCards(t *testing.T) {
	nomo := &spine.Score{Probability: 0.91, TotalPoints: 143, Points: []spine.Point{
		{Name: "dlr", Label: "DLR score (image)", Value: 0.8, Points: 60},
		{Name: "symptom_days", Label: "Symptom duration", Value: 12, Unit: "days", Points: 70},
		{Name: "trauma", Label: "Recent minor trauma", Value: 1, Points: 13},
	}}
	levels := []string{"T11", "T12", "L1", "L2"}
	results := map[string]analysis.Result{
		"acute": vertebrae("acute", levels, nil, fractured("T12", "chronic", 0.84, "routine", nomo), fractured("L1", "acute", 0.91, "urgent", nomo)),
		"dlr-only": vertebrae("dlr-only", levels, []string{"Clinical data missing: BMD T-score (no DXA T-score Observation). Acuity is the image's deep-learning-radiomics (DLR) score alone, not the nomogram."},
			fractured("L2", "chronic", 0.7, "routine", nil)),
		"none":   vertebrae("none", nil, []string{"No vertebral body could be localised on this radiograph: no fracture or acuity estimate is given."}),
		"normal": vertebrae("normal", levels, nil),
	}
	e, fa := engineFor(results, cds.CardOptions{})
	fa.tasks = []string{"vertebral-fracture-acuity"}
	call := func(id string) cds.Response {
		t.Helper()
		body := `{"hook":"patient-view","hookInstance":"h1","context":{"userId":"Practitioner/u","patientId":"p1"},` +
			`"prefetch":{"patient":` + patientRes + `,"studies":` + bundle("", study(id, "p1")) + `}}`
		resp, err := e.Call(context.Background(), "vertebral-fracture-acuity", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	r := call("acute")
	if len(r.Cards) != 1 || r.Cards[0].Summary != "[synthetic model] L1 fracture likely acute (91%): urgent read suggested (+1 more)" || r.Cards[0].Indicator != "warning" {
		t.Fatalf("acute card: %+v", r.Cards)
	}
	d := r.Cards[0].Detail
	for _, w := range []string{"| L1 | acute | 91% | nomogram | 97% | urgent |", "| T12 | chronic | 16% |", "**Nomogram, L1**", "| Symptom duration | 12 days | 70 |", "| Recent minor trauma | yes | 13 |", "**143**", "T11, T12, L1, L2"} {
		if !strings.Contains(d, w) {
			t.Errorf("detail lacks %q:\n%s", w, d)
		}
	}
	if in := fa.inputs[len(fa.inputs)-1]; in.Clinical == nil || in.Task != "vertebral-fracture-acuity" {
		t.Errorf("the vertebral input has no clinical data source: %+v", in)
	}
	r = call("dlr-only")
	if len(r.Cards) != 1 || !strings.Contains(r.Cards[0].Summary, "L2 fracture likely chronic (70%): routine read suggested") || r.Cards[0].Indicator != "info" ||
		!strings.Contains(r.Cards[0].Detail, "DLR score alone") || !strings.Contains(r.Cards[0].Detail, "Clinical data missing: BMD T-score") {
		t.Errorf("DLR-only card: %+v", r.Cards)
	}
	r = call("none")
	if len(r.Cards) != 1 || !strings.Contains(r.Cards[0].Summary, "no vertebral body could be localised") || r.Cards[0].Indicator != "info" {
		t.Errorf("nothing localised: %+v", r.Cards)
	}
	if r = call("normal"); len(r.Cards) != 0 {
		t.Errorf("no fracture, no normal card configured: %+v", r.Cards)
	}
}

// Bodies given in the request extension reach the analysis of their study;
// malformed ones are the caller's error.
func TestGivenVertebralBodies(t *testing.T) {
	e, fa := engineFor(map[string]analysis.Result{"s1": vertebrae("s1", []string{"L1"}, nil)}, cds.CardOptions{})
	fa.tasks = []string{"vertebral-fracture-acuity"}
	call := func(ext string) error {
		body := `{"hook":"patient-view","hookInstance":"h1","context":{"userId":"Practitioner/u","patientId":"p1"},` +
			`"prefetch":{"patient":` + patientRes + `,"studies":` + bundle("", study("s1", "p1")) + `},"extension":` + ext + `}`
		_, err := e.Call(context.Background(), "vertebral-fracture-acuity", []byte(body))
		return err
	}
	if err := call(`{"org.orthotriage.vertebrae":[{"study":"ImagingStudy/s1","level":"L1","box":[10,20,40,30]},{"study":"ImagingStudy/other","level":"L2","box":[10,60,40,30]}]}`); err != nil {
		t.Fatal(err)
	}
	in := fa.inputs[len(fa.inputs)-1]
	if len(in.Bodies) != 1 || in.Bodies[0].Level != "L1" || in.Bodies[0].Box.Min.X != 10 || in.Bodies[0].Box.Max.Y != 50 {
		t.Fatalf("bodies = %+v", in.Bodies)
	}
	for _, bad := range []string{
		`[]`,
		`{"org.orthotriage.vertebrae":{"level":"L1"}}`,
		`{"org.orthotriage.vertebrae":[{"level":"C5","box":[1,1,10,10]}]}`,
		`{"org.orthotriage.vertebrae":[{"level":"L1","box":[1,1,2,10]}]}`,
		`{"org.orthotriage.vertebrae":[{"level":"L1","box":[-1,1,10,10]}]}`,
		`{"org.orthotriage.vertebrae":[{"level":"L1","box":[1,1,10]}]}`,
	} {
		if err := call(bad); err == nil || !strings.Contains(err.Error(), "extension") {
			t.Errorf("extension %s: error %v", bad, err)
		}
	}
}

// A hip card's limitations say how the hips were cropped: where the
// model's localiser found them, or at fixed positions.
func TestHipCardSaysHowTheHipsWereCropped(t *testing.T) {
	fixed := hips("is-fixed", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	located := hips("is-located", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	located.Hips = &analysis.Hips{Pelvis: 0.99}
	e, _ := engineFor(map[string]analysis.Result{"is-fixed": fixed, "is-located": located}, cds.CardOptions{})
	for id, want := range map[string]string{"is-fixed": "cropped at a fixed position", "is-located": "where the model's localiser found it"} {
		resp := callHips(t, e, id)
		if len(resp.Cards) != 1 || !strings.Contains(resp.Cards[0].Detail, want) {
			t.Errorf("%s: cards %+v, want one whose detail says %q", id, resp.Cards, want)
		}
	}
}
