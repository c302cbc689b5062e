package analysis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/inference"
	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// cannedAnalyzer answers each study, by ImagingStudy id, with its canned
// result or error; a study with neither is still in analysis when the
// caller stops waiting.
type cannedAnalyzer struct {
	mu      sync.Mutex // studies are analysed side by side
	results map[string]analysis.Result
	errs    map[string]error
	inputs  []analysis.Input
	tasks   []string // the tasks read; hip when none
}

func (c *cannedAnalyzer) Analyze(ctx context.Context, in analysis.Input) (analysis.Result, error) {
	c.mu.Lock()
	c.inputs = append(c.inputs, in)
	id := *in.Study.Id
	r, done := c.results[id]
	err := c.errs[id]
	c.mu.Unlock()
	switch {
	case err != nil:
		return analysis.Result{}, err
	case done:
		return r, nil
	}
	<-ctx.Done()
	return analysis.Result{}, ctx.Err()
}

func (c *cannedAnalyzer) Reads(task string) bool {
	if len(c.tasks) == 0 {
		return task == inference.TaskHip
	}
	return slices.Contains(c.tasks, task)
}

func (c *cannedAnalyzer) analysed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, in := range c.inputs {
		ids = append(ids, *in.Study.Id)
	}
	return ids
}

// hipStudy is the input of one hip study with a Study Instance UID.
func hipStudy(id string) analysis.Input {
	sys, uid := "urn:dicom:uid", "urn:oid:1.2."+id
	return analysis.Input{Task: inference.TaskHip, FHIRServer: "https://ehr.example.org/fhir", Patient: "Patient/p1",
		Study: fhirmodels.ImagingStudy{Id: ptr(id), Identifier: []fhirmodels.Identifier{{System: &sys, Value: &uid}}}}
}

// hipResult is study id's result, with a STAT fracture when notable.
func hipResult(id string, notable bool) analysis.Result {
	f := analysis.Finding{Region: "right-hip", Class: "normal", Reported: true, Normal: true}
	if notable {
		f = analysis.Finding{Region: "right-hip", Class: "fnf", Reported: true, Priority: "stat"}
	}
	return analysis.Result{FHIRServer: "https://ehr.example.org/fhir", Study: analysis.Study{ImagingStudyID: id, UID: "1.2." + id, Patient: "Patient/p1"},
		Model: analysis.Model{ID: "hip-000", Version: "0.1.0", Task: inference.TaskHip}, Findings: []analysis.Finding{f}}
}

func hipCall(hook string, ids ...string) analysis.Call {
	c := analysis.Call{Hook: hook, Service: "hip-radiograph-screening", HookInstance: "h1"}
	for _, id := range ids {
		c.Studies = append(c.Studies, hipStudy(id))
	}
	return c
}

// The newest StudiesPerCall studies are analysed, one when none is set.
func TestCallAnalysesTheNewestStudies(t *testing.T) {
	tests := []struct {
		name     string
		perCall  int
		analysed []string
	}{
		{"one when unset", 0, []string{"new"}},
		{"one", 1, []string{"new"}},
		{"two", 2, []string{"new", "older"}},
		{"more than there are", 5, []string{"new", "older", "oldest"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &cannedAnalyzer{results: map[string]analysis.Result{
				"new": hipResult("new", true), "older": hipResult("older", true), "oldest": hipResult("oldest", true)}}
			tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: tc.perCall, Log: slogDiscard()})
			out, err := tr.Call(t.Context(), hipCall("patient-view", "new", "older", "oldest"))
			if err != nil {
				t.Fatal(err)
			}
			got := a.analysed()
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.analysed))
			if !slices.Equal(got, want) || len(out) != len(tc.analysed) {
				t.Errorf("analysed %v (%d outcomes), want %v", got, len(out), tc.analysed)
			}
			for i, o := range out {
				if o.Status != analysis.StudyDone || o.Result.Study.ImagingStudyID != tc.analysed[i] {
					t.Errorf("outcome %d: %+v, want %s done", i, o, tc.analysed[i])
				}
			}
		})
	}
}

// Each study's outcome says what became of it: read, not a radiograph for
// any model, another patient's, or failed; none of these fails the call.
func TestCallOutcomes(t *testing.T) {
	a := &cannedAnalyzer{results: map[string]analysis.Result{"ok": hipResult("ok", true)}, errs: map[string]error{
		"chest":  analysis.ErrNoRadiograph,
		"other":  analysis.ErrOtherPatient,
		"broken": errors.New("Orthanc said 500"),
	}}
	tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: 4, Log: slogDiscard()})
	out, err := tr.Call(t.Context(), hipCall("patient-view", "chest", "other", "broken", "ok"))
	if err != nil {
		t.Fatal(err)
	}
	want := []analysis.StudyStatus{analysis.StudyNotRead, analysis.StudyOtherPatient, analysis.StudyFailed, analysis.StudyDone}
	if len(out) != len(want) {
		t.Fatalf("%d outcomes, want %d", len(out), len(want))
	}
	for i, o := range out {
		if o.Status != want[i] {
			t.Errorf("outcome %d: status %d (%v), want %d", i, o.Status, o.Err, want[i])
		}
	}
	if out[3].Result.Study.ImagingStudyID != "ok" || out[3].Err != nil {
		t.Errorf("the readable study's outcome: %+v", out[3])
	}
	for _, in := range a.inputs {
		if in.Task != "hip" || in.Patient != "Patient/p1" {
			t.Errorf("input task %q patient %q", in.Task, in.Patient)
		}
	}
}

// A hook waits no longer than its budget: the studies still in analysis
// are pending. A hook without one waits as long as the request, whose end
// ends the call.
func TestBudgetLeavesStudiesPending(t *testing.T) {
	a := &cannedAnalyzer{} // nothing finishes
	tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: 3, Log: slogDiscard(),
		Budgets: map[string]time.Duration{"patient-view": 20 * time.Millisecond}})
	// The request's own deadline: a budget that did not work would end the
	// call with this error instead of hanging the test.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := tr.Call(ctx, hipCall("patient-view", "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Status != analysis.StudyPending || out[1].Status != analysis.StudyPending {
		t.Errorf("outcomes %+v, want two pending", out)
	}

	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if out, err := tr.Call(ctx, hipCall("org.orthotriage.imagingstudy-available", "a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the request ended: outcomes %+v, error %v", out, err)
	}
}

// Bodies the caller gave go to the study they name; one naming no study
// goes to the call's only analysed study.
func TestGivenBodiesGoToTheirStudy(t *testing.T) {
	body := func(study, level string) analysis.GivenBody {
		return analysis.GivenBody{Study: study, Body: inference.Body{Level: level, Presence: 1}}
	}
	given := []analysis.GivenBody{body("ImagingStudy/s1", "L1"), body("urn:oid:1.2.s2", "L2"), body("1.2.s2", "L3"), body("", "T12"), body("ImagingStudy/s9", "L4")}
	tests := []struct {
		name    string
		perCall int
		want    map[string][]string // levels by study
	}{
		{"two studies", 2, map[string][]string{"s1": {"L1"}, "s2": {"L2", "L3"}}},
		{"one study", 1, map[string][]string{"s1": {"L1", "T12"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &cannedAnalyzer{results: map[string]analysis.Result{"s1": hipResult("s1", false), "s2": hipResult("s2", false)}}
			tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: tc.perCall, Log: slogDiscard()})
			c := hipCall("patient-view", "s1", "s2")
			c.Bodies = given
			if _, err := tr.Call(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, in := range a.inputs {
				for _, b := range in.Bodies {
					got[*in.Study.Id] = append(got[*in.Study.Id], b.Level)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("bodies %v, want %v", got, tc.want)
			}
			for id, levels := range tc.want {
				if !slices.Equal(got[id], levels) {
					t.Errorf("study %s: bodies %v, want %v", id, got[id], levels)
				}
			}
		})
	}
}

// recordingWriter records what is written back, and fails while told to.
type recordingWriter struct {
	mu      sync.Mutex
	written []analysis.Result
	servers []analysis.FHIRServer
	fail    bool
}

func (w *recordingWriter) WriteResult(_ context.Context, server analysis.FHIRServer, r analysis.Result) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return "dr-" + r.Study.ImagingStudyID, errors.New("FHIR server said 503")
	}
	w.written, w.servers = append(w.written, r), append(w.servers, server)
	return "dr-" + r.Study.ImagingStudyID, nil
}

func (w *recordingWriter) studies() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for _, r := range w.written {
		ids = append(ids, r.Study.ImagingStudyID)
	}
	slices.Sort(ids)
	return ids
}

// A call writes back the results worth a card, to its own FHIR server,
// with its token; none when the call has no FHIR server.
func TestCallWritesBackWhatIsWorthACard(t *testing.T) {
	server := analysis.FHIRServer{BaseURL: "https://ehr.example.org/fhir", Token: "t0ken"}
	tests := []struct {
		name        string
		normalCards bool
		server      analysis.FHIRServer
		want        []string
	}{
		{"notable only", false, server, []string{"fnf"}},
		{"normal cards on", true, server, []string{"fnf", "normal"}},
		{"no FHIR server", true, analysis.FHIRServer{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &cannedAnalyzer{results: map[string]analysis.Result{"fnf": hipResult("fnf", true), "normal": hipResult("normal", false)}}
			w := &recordingWriter{}
			wb := analysis.NewWriteBack(w, analysis.WriteBackOptions{Kept: 10}, slogDiscard())
			tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: 2, WriteBack: wb, NormalCards: tc.normalCards, Log: slogDiscard()})
			c := hipCall("patient-view", "fnf", "normal")
			c.Server = tc.server
			if _, err := tr.Call(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			wb.Wait()
			if got := w.studies(); !slices.Equal(got, tc.want) {
				t.Errorf("written back %v, want %v", got, tc.want)
			}
			for _, s := range w.servers {
				if s != tc.server {
					t.Errorf("written to %+v, want %+v", s, tc.server)
				}
			}
		})
	}
}

// A result is written back once however often it is answered; the same
// pixels bound to another patient are another result; a failed write-back
// is tried again by the next answer.
func TestWriteBackOncePerResult(t *testing.T) {
	server := analysis.FHIRServer{BaseURL: "https://ehr.example.org/fhir"}
	w := &recordingWriter{}
	wb := analysis.NewWriteBack(w, analysis.WriteBackOptions{Kept: 10}, slogDiscard())
	r := hipResult("s1", true)
	offer := func(r analysis.Result) {
		wb.Offer(server, r)
		wb.Wait()
	}
	offer(r)
	offer(r)
	if n := len(w.studies()); n != 1 {
		t.Errorf("%d writes after two offers of one result, want 1", n)
	}
	other := r
	other.Study.Patient = "Patient/p2"
	offer(other)
	if n := len(w.studies()); n != 2 {
		t.Errorf("%d writes, want 2: the result bound to another patient is another", n)
	}

	failing := hipResult("s2", true)
	w.fail = true
	offer(failing)
	w.fail = false
	offer(failing)
	if got := w.studies(); !slices.Equal(got, []string{"s1", "s1", "s2"}) {
		t.Errorf("written %v: the failed write-back was not tried again", got)
	}

	// Nothing kept: every offer is written.
	all := analysis.NewWriteBack(w, analysis.WriteBackOptions{}, slogDiscard())
	all.Offer(server, r)
	all.Offer(server, r)
	all.Wait()
	if n := len(w.studies()); n != 5 {
		t.Errorf("%d writes, want 5: with nothing kept each offer is written", n)
	}
}

// fakeStudies reads a precompute job's study as a study reader does.
type fakeStudies struct {
	servers []analysis.FHIRServer
	err     error
}

func (f *fakeStudies) Study(_ context.Context, server analysis.FHIRServer, ref string) (analysis.Input, error) {
	f.servers = append(f.servers, server)
	if f.err != nil {
		return analysis.Input{}, f.err
	}
	in := hipStudy(strings.TrimPrefix(ref, "ImagingStudy/"))
	in.Task, in.Patient, in.FHIRServer = "", "", server.BaseURL
	return in, nil
}

// A precompute job analyses its study for every task read, with the
// tenant's token, DICOMweb bases and issuer; it writes back what is worth
// a card; a task whose model finds no radiograph in the study is skipped,
// a failure fails the job.
func TestPrecompute(t *testing.T) {
	job := analysis.Job{FHIRServer: "https://ehr.example.org/fhir", Study: "ImagingStudy/s1"}
	tenant := analysis.Tenant{Issuer: "https://ehr.example.org", DICOMwebBases: []string{"https://pacs.example.org"},
		Token: func(context.Context) (string, error) { return "t0ken", nil }}
	setup := func(a analysis.StudyAnalyzer, studies *fakeStudies) (*analysis.Triage, *analysis.WriteBack, *recordingWriter) {
		w := &recordingWriter{}
		wb := analysis.NewWriteBack(w, analysis.WriteBackOptions{Kept: 10}, slogDiscard())
		return analysis.NewTriage(analysis.TriageConfig{Analyzer: a, Studies: studies, WriteBack: wb, Log: slogDiscard(),
			Tasks: []string{inference.TaskHip, inference.TaskVertebral, "knee"}}), wb, w
	}

	// The hip model reads the study; the vertebral model finds no lateral
	// spine radiograph in it; no model reads knees.
	a := &cannedAnalyzer{results: map[string]analysis.Result{"s1": hipResult("s1", true)}, tasks: []string{inference.TaskHip, inference.TaskVertebral}}
	studies := &fakeStudies{}
	tr, wb, w := setup(&noRadiographFor{cannedAnalyzer: a, task: inference.TaskVertebral}, studies)
	if err := tr.Precompute(t.Context(), job, tenant); err != nil {
		t.Fatal(err)
	}
	wb.Wait()
	if len(studies.servers) != 1 || studies.servers[0] != (analysis.FHIRServer{BaseURL: job.FHIRServer, Token: "t0ken"}) {
		t.Errorf("study read from %+v, want the job's server with the tenant's token", studies.servers)
	}
	var tasks []string
	for _, in := range a.inputs {
		tasks = append(tasks, in.Task)
		if in.Tenant != tenant.Issuer || in.Access.Token != "t0ken" || in.Access.FHIRBase != job.FHIRServer || !slices.Equal(in.Access.AllowedBases, tenant.DICOMwebBases) {
			t.Errorf("input tenant %q, access %+v", in.Tenant, in.Access)
		}
	}
	if !slices.Equal(tasks, []string{inference.TaskHip, inference.TaskVertebral}) {
		t.Errorf("analysed for %v, want the tasks read", tasks)
	}
	if got := w.studies(); !slices.Equal(got, []string{"s1"}) || w.servers[0].Token != "t0ken" {
		t.Errorf("written back %v to %+v, want s1 with the tenant's token", got, w.servers)
	}

	// A failing analysis fails the job (it is retried), naming the task.
	tr, _, _ = setup(&cannedAnalyzer{errs: map[string]error{"s1": errors.New("Orthanc said 500")}}, &fakeStudies{})
	if err := tr.Precompute(t.Context(), job, tenant); err == nil || !strings.Contains(err.Error(), "hip: Orthanc said 500") {
		t.Errorf("failing analysis: error %v", err)
	}
	// So does a study that cannot be read, or a token that cannot be had.
	tr, _, _ = setup(&cannedAnalyzer{}, &fakeStudies{err: errors.New("ImagingStudy/s1: not found")})
	if err := tr.Precompute(t.Context(), job, tenant); err == nil {
		t.Error("unreadable study: no error")
	}
	noToken := tenant
	noToken.Token = func(context.Context) (string, error) { return "", errors.New("token endpoint said 401") }
	tr, _, _ = setup(&cannedAnalyzer{}, &fakeStudies{})
	if err := tr.Precompute(t.Context(), job, noToken); err == nil || !strings.Contains(err.Error(), "token for "+job.FHIRServer) {
		t.Errorf("no token: error %v", err)
	}
}

// noRadiographFor answers task with ErrNoRadiograph and everything else as
// the canned analyzer does.
type noRadiographFor struct {
	*cannedAnalyzer
	task string
}

func (n *noRadiographFor) Analyze(ctx context.Context, in analysis.Input) (analysis.Result, error) {
	r, err := n.cannedAnalyzer.Analyze(ctx, in)
	if in.Task == n.task {
		return analysis.Result{}, analysis.ErrNoRadiograph
	}
	return r, err
}

// A result is worth a card when it has something to say: a notable
// finding, a review, a vertebral study where nothing was localised; any
// result when normal cards are wanted.
func TestWorthACard(t *testing.T) {
	review := hipResult("r", false)
	review.Review = true
	unlocalised := analysis.Result{Model: analysis.Model{Task: inference.TaskVertebral}}
	localised := unlocalised
	localised.Localised = []string{"L1", "L2"}
	tests := []struct {
		name   string
		r      analysis.Result
		normal bool
		want   bool
	}{
		{"notable", hipResult("n", true), false, true},
		{"normal", hipResult("n", false), false, false},
		{"normal with normal cards", hipResult("n", false), true, true},
		{"needs review", review, false, true},
		{"nothing localised", unlocalised, false, true},
		{"no fracture among the vertebrae", localised, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.WorthACard(tc.normal); got != tc.want {
				t.Errorf("WorthACard(%v) = %v, want %v", tc.normal, got, tc.want)
			}
		})
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recordingWorklist records what is noted; while block is set a note waits
// for its context to end and fails with it.
type recordingWorklist struct {
	mu    sync.Mutex
	notes []notedItem
	block bool
}

type notedItem struct {
	tenant, fhirServer string
	item               analysis.WorkItem
}

func (w *recordingWorklist) Note(ctx context.Context, tenant, fhirServer string, item analysis.WorkItem) error {
	if w.block {
		<-ctx.Done()
		return ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notes = append(w.notes, notedItem{tenant, fhirServer, item})
	return nil
}

func (w *recordingWorklist) Mark(context.Context, string, string, string, string) error { return nil }

func (w *recordingWorklist) List(context.Context, string, string, int) ([]analysis.WorkItem, error) {
	return nil, nil
}

// noted are the notes as "tenant server ImagingStudy status", sorted.
func (w *recordingWorklist) noted() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, n := range w.notes {
		out = append(out, strings.Join([]string{n.tenant, n.fhirServer, n.item.ImagingStudy, n.item.Status}, " "))
	}
	slices.Sort(out)
	return out
}

// A call notes its studies read and those still in analysis on the
// worklist of its tenant's FHIR server; studies of no radiograph, of
// another patient or failed are not noted.
func TestCallNotesItsStudies(t *testing.T) {
	a := &cannedAnalyzer{results: map[string]analysis.Result{"read": hipResult("read", true)}, errs: map[string]error{
		"chest":  analysis.ErrNoRadiograph,
		"other":  analysis.ErrOtherPatient,
		"broken": errors.New("Orthanc said 500"),
	}} // "slow" never finishes
	w := &recordingWorklist{}
	tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: 5, Worklist: w, Log: slogDiscard(),
		Budgets: map[string]time.Duration{"patient-view": 50 * time.Millisecond}})
	c := hipCall("patient-view", "read", "slow", "chest", "other", "broken")
	for i := range c.Studies {
		c.Studies[i].Tenant = "https://ehr.example.org"
	}
	if _, err := tr.Call(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"https://ehr.example.org https://ehr.example.org/fhir ImagingStudy/read ai-read",
		"https://ehr.example.org https://ehr.example.org/fhir ImagingStudy/slow pending",
	}
	if got := w.noted(); !slices.Equal(got, want) {
		t.Errorf("noted %q, want %q", got, want)
	}
	for _, n := range w.notes {
		if n.item.ImagingStudy == "ImagingStudy/read" && (n.item.Model != "hip-000@0.1.0" || n.item.Top == nil || n.item.Top.Region != "right-hip") {
			t.Errorf("the read study noted as %+v", n.item)
		}
	}
}

// The same call again notes nothing new: its notes were taken a moment
// ago with the same content. Another tenant's call of the same study, and
// a note that failed, are noted again.
func TestRepeatedCallNotesOnce(t *testing.T) {
	a := &cannedAnalyzer{results: map[string]analysis.Result{"read": hipResult("read", true)}}
	w := &recordingWorklist{}
	tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: 5, Worklist: w, Log: slogDiscard()})
	call := func(tenant string) {
		c := hipCall("patient-view", "read")
		c.Studies[0].Tenant = tenant
		if _, err := tr.Call(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for _, loc := range []*time.Location{time.UTC, time.FixedZone("CET", 3600), time.UTC} {
		// The same result, its time read back in another location.
		r := a.results["read"]
		r.Analyzed = at.In(loc)
		a.results["read"] = r
		call("https://a.example.org")
	}
	if got := w.noted(); len(got) != 1 {
		t.Errorf("three identical calls noted %q, want one note", got)
	}
	call("https://b.example.org")
	if got := w.noted(); len(got) != 2 || !strings.HasPrefix(got[1], "https://b.example.org ") {
		t.Errorf("another tenant's call: noted %q", got)
	}

	failing := &recordingWorklist{block: true}
	tr = analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: 5, Worklist: failing, Log: slogDiscard()})
	if _, err := tr.Call(t.Context(), hipCall("patient-view", "read")); err != nil { // its note times out
		t.Fatal(err)
	}
	failing.block = false
	if _, err := tr.Call(t.Context(), hipCall("patient-view", "read")); err != nil {
		t.Fatal(err)
	}
	if got := failing.noted(); len(got) != 1 {
		t.Errorf("after a failed note the next call noted %q, want it noted", got)
	}
}

// A worklist that hangs holds the answer no longer than the note's short
// timeout, and its failure is not the call's.
func TestCallDoesNotWaitLongForTheWorklist(t *testing.T) {
	a := &cannedAnalyzer{results: map[string]analysis.Result{"s1": hipResult("s1", true), "s2": hipResult("s2", false)}}
	tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, StudiesPerCall: 2, Worklist: &recordingWorklist{block: true}, Log: slogDiscard()})
	answered := make(chan []analysis.Outcome)
	go func() {
		out, err := tr.Call(t.Context(), hipCall("patient-view", "s1", "s2"))
		if err != nil {
			t.Error(err)
		}
		answered <- out
	}()
	select {
	case out := <-answered:
		if len(out) != 2 || out[0].Status != analysis.StudyDone || out[1].Status != analysis.StudyDone {
			t.Errorf("outcomes %+v, want both done", out)
		}
	case <-time.After(10 * time.Second): // the note's timeout is 200 ms
		t.Fatal("the call waits for a hanging worklist")
	}
}

// A precompute job notes each result on the worklist of the job's FHIR
// server, as its tenant.
func TestPrecomputeNotesItsResults(t *testing.T) {
	a := &cannedAnalyzer{results: map[string]analysis.Result{"s1": hipResult("s1", true)}}
	w := &recordingWorklist{}
	tr := analysis.NewTriage(analysis.TriageConfig{Analyzer: a, Studies: &fakeStudies{}, Tasks: []string{inference.TaskHip}, Worklist: w, Log: slogDiscard()})
	job := analysis.Job{FHIRServer: "https://ehr.example.org/fhir", Study: "ImagingStudy/s1"}
	if err := tr.Precompute(t.Context(), job, analysis.Tenant{Issuer: "https://ehr.example.org"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"https://ehr.example.org https://ehr.example.org/fhir ImagingStudy/s1 ai-read"}
	if got := w.noted(); !slices.Equal(got, want) {
		t.Errorf("noted %q, want %q", got, want)
	}
}
