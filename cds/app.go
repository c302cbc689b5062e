package cds

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/fhir/codes"
	"github.com/orthotriage/orthotriage/imaging"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// HookApp names the SMART app's questions to the use case (its budget).
const HookApp = "smart-app"

// AppRequest is the SMART app asking about one study with the user's
// access token. The token is proof of access only when the FHIR server
// accepts it for the study: every answer starts by reading the
// ImagingStudy with it.
type AppRequest struct {
	FHIRServer   string
	Token        string // the SMART access token; never logged
	ImagingStudy string // "ImagingStudy/{id}"
	// Tenant and DICOMwebBases are the registered issuer whose FHIR server
	// FHIRServer is ("" and none with authentication off).
	Tenant        string
	DICOMwebBases []string
	// Service, when set, is the CDS service asked about first (the card's,
	// from appContext), so that the result shown is the card's.
	Service string
}

// AppStudy is what the app is told about one study it may see.
type AppStudy struct {
	// Status: "done", "pending" (in analysis; ask again), "no-radiograph"
	// (nothing a loaded model reads) or "failed".
	Status       string `json:"status"`
	Patient      string `json:"patient"` // the study's subject, read with the user's token
	ImagingStudy string `json:"imagingStudy"`
	// Service is the CDS service whose card the result is; Report the
	// DiagnosticReport the card suggests.
	Service string           `json:"service,omitempty"`
	Report  string           `json:"report,omitempty"`
	Result  *analysis.Result `json:"result,omitempty"`
	// Resources are the card's suggested resources, bound to Patient.
	Resources       []json.RawMessage `json:"resources,omitempty"`
	OverrideReasons []Coding          `json:"overrideReasons"`
	// Saved: the DiagnosticReport is on the FHIR server (read with the
	// user's token).
	Saved bool `json:"saved"`
	// input is how the study was analysed, for its pixels.
	input analysis.Input
}

// PixelSource retrieves the radiograph a result was read from
// (analysis.Cached is one).
type PixelSource interface {
	Pixels(ctx context.Context, in analysis.Input, sop string) (*imaging.Image, error)
}

// AppStudy answers the app about req's study: it reads the ImagingStudy
// with the user's token (a refusal is EForbidden, whatever the FHIR server
// said: existence is not told), takes its subject as the patient, and has
// the study analysed for each service's task (from the cache when done
// before), waiting up to the app's budget.
func (e *Engine) AppStudy(ctx context.Context, req AppRequest) (AppStudy, error) {
	in, err := e.appInput(ctx, req)
	if err != nil {
		return AppStudy{}, err
	}
	out := AppStudy{Status: "no-radiograph", Patient: in.Patient, ImagingStudy: req.ImagingStudy, OverrideReasons: overrideReasons}
	if e.triage == nil {
		return out, nil
	}
	for _, svc := range e.appServices(req.Service) {
		if !e.triage.Reads(svc.Task) {
			continue
		}
		in.Task = svc.Task
		outcomes, err := e.triage.Call(ctx, analysis.Call{Hook: HookApp, Service: svc.ID, Studies: []analysis.Input{in}})
		if err != nil {
			return AppStudy{}, err
		}
		if len(outcomes) == 0 {
			continue
		}
		switch o := outcomes[0]; o.Status {
		case analysis.StudyNotRead:
			continue
		case analysis.StudyPending:
			out.Status, out.Service = "pending", svc.ID
			return out, nil
		case analysis.StudyFailed:
			out.Status, out.Service = "failed", svc.ID
			return out, nil
		case analysis.StudyOtherPatient:
			return AppStudy{}, orthotriage.Errorf(orthotriage.EForbidden, "the study's subject is not the patient it was analysed for")
		case analysis.StudyDone:
			return e.appDone(ctx, req, svc, in, o.Result, out)
		}
	}
	return out, nil
}

// appDone fills in a done study: the result, its resources as the card
// suggests them, and whether they were saved.
func (e *Engine) appDone(ctx context.Context, req AppRequest, svc Service, in analysis.Input, r analysis.Result, out AppStudy) (AppStudy, error) {
	out.Status, out.Service, out.Result, out.input = "done", svc.ID, &r, in
	if r.NotRead != nil && !r.WorthACard(false) {
		return out, nil
	}
	rep, err := e.report(r.BoundKey(), r)
	if err != nil {
		return AppStudy{}, err
	}
	out.Report, out.Resources = "DiagnosticReport/"+rep.ID, rep.Resources
	if e.resolver != nil && e.resolver.FHIR != nil {
		_, err := e.resolver.FHIR.Get(ctx, FHIRServer{BaseURL: req.FHIRServer, Token: req.Token}, out.Report)
		out.Saved = err == nil
	}
	return out, nil
}

// appInput reads req's study with the user's token: the proof of access.
func (e *Engine) appInput(ctx context.Context, req AppRequest) (analysis.Input, error) {
	if req.Token == "" {
		return analysis.Input{}, orthotriage.Errorf(orthotriage.EUnauthorized, "no bearer token: the app must send the SMART access token")
	}
	id, ok := strings.CutPrefix(req.ImagingStudy, "ImagingStudy/")
	if !ok || id == "" || len(id) > 64 || strings.ContainsAny(id, "/?#%") {
		return analysis.Input{}, orthotriage.Invalid("bad request", orthotriage.FieldError{Field: "imagingStudy", Message: "must be ImagingStudy/{id}"})
	}
	if e.resolver == nil {
		return analysis.Input{}, orthotriage.Errorf(orthotriage.EUnavailable, "no FHIR client")
	}
	server := FHIRServer{BaseURL: req.FHIRServer, Token: req.Token}
	in, err := e.resolver.Study(ctx, server, req.ImagingStudy)
	if err != nil {
		return analysis.Input{}, appRefusal(err)
	}
	if deref(in.Study.Id) != id {
		return analysis.Input{}, orthotriage.Errorf(orthotriage.EForbidden, "the FHIR server answered with another study")
	}
	pid, ok := analysis.PatientOf(deref(in.Study.Subject.Reference), req.FHIRServer)
	if !ok {
		return analysis.Input{}, orthotriage.Errorf(orthotriage.EForbidden, "the study names no patient on its FHIR server")
	}
	in.Patient, in.Tenant = "Patient/"+pid, req.Tenant
	in.Access = imaging.Access{FHIRBase: req.FHIRServer, Token: req.Token, AllowedBases: req.DICOMwebBases}
	return in, nil
}

// AppPixels is the radiograph of an analysed study for the app, after
// the same proof of access as AppStudy.
func (e *Engine) AppPixels(ctx context.Context, req AppRequest, src PixelSource, image int) (*imaging.Image, error) {
	st, err := e.AppStudy(ctx, req)
	if err != nil {
		return nil, err
	}
	if st.Result == nil {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "the study has no analysed image (status %s)", st.Status)
	}
	if image < 0 || image >= len(st.Result.Images) {
		return nil, orthotriage.Invalid("bad request", orthotriage.FieldError{Field: "image", Message: "no such analysed image"})
	}
	img, err := src.Pixels(ctx, st.input, st.Result.Images[image].SOPUID)
	if err != nil {
		if errors.Is(err, analysis.ErrNoRadiograph) {
			return nil, orthotriage.Errorf(orthotriage.ENotFound, "the analysed image is no longer in the study")
		}
		return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "the image could not be retrieved", Err: err}
	}
	return img, nil
}

// AppFeedback is the app's verdict on a card (agree, or disagree with a
// reason), after the same proof of access as AppStudy: recorded as CDS
// Hooks feedback for the card.
func (e *Engine) AppFeedback(ctx context.Context, req AppRequest, service string, fb Feedback) ([]FeedbackResult, error) {
	if _, err := e.appInput(ctx, req); err != nil {
		return nil, err
	}
	// A card this process issued must be the study's and the service's
	// (under any of its hook ids); one it does not know (issued by another
	// replica, or forgotten) is recorded as the EHR's feedback would be.
	if e.issued != nil {
		if c, ok := e.issued.Get(fb.Card); ok && (c.Study != req.ImagingStudy || !sameService(e.catalog, c.Service, service)) {
			return nil, orthotriage.Errorf(orthotriage.EForbidden, "the card is not this study's")
		}
	}
	if fb.OutcomeTimestamp == "" {
		fb.OutcomeTimestamp = e.now().UTC().Format(time.RFC3339)
	}
	if fb.Outcome == OutcomeAccepted && len(fb.AcceptedSuggestions) == 0 {
		// Agreeing accepts what the card suggests: its preliminary report.
		fb.AcceptedSuggestions = []AcceptedSuggestion{{ID: saveUUIDOf(fb.Card)}}
	}
	body, err := json.Marshal(FeedbackRequest{Feedback: []Feedback{fb}})
	if err != nil {
		return nil, err
	}
	return e.RecordFeedback(ctx, service, body)
}

// appServices are the services as patient-view offers them (the ids
// whose cards a clinician opens the app from), in discovery order, but
// for first (a card's service, under any of its ids) at the front.
func (e *Engine) appServices(first string) []Service {
	var out []Service
	for _, entry := range e.catalog.Discovery().Services {
		if entry.Hook != HookPatientView {
			continue
		}
		if s, ok := e.catalog.Lookup(entry.ID); ok {
			out = append(out, s)
		}
	}
	if f, ok := e.catalog.Lookup(first); ok {
		if i := slices.IndexFunc(out, func(s Service) bool { return s.Task == f.Task }); i > 0 {
			out = append([]Service{out[i]}, slices.Delete(out, i, i+1)...)
		}
	}
	return out
}

// sameService reports whether two service ids name one service (its
// task), as on different hooks.
func sameService(c *Catalog, a, b string) bool {
	sa, okA := c.Lookup(a)
	sb, okB := c.Lookup(b)
	return okA && okB && sa.Task == sb.Task
}

// innerCode is the code of the innermost orthotriage error in err's chain:
// the FHIR client's (unauthorized, forbidden, ...) under the resolver's
// precondition.
func innerCode(err error) string {
	code := orthotriage.EInternal
	for err != nil {
		var oe *orthotriage.Error
		if !errors.As(err, &oe) {
			break
		}
		code, err = oe.Code, oe.Err
	}
	return code
}

// AppWorklist is the worklist the app shows: the studies analysed for one
// FHIR server that the user's token may read, each with its patient as the
// FHIR server says now.
type AppWorklist struct {
	Rows      []WorklistRow `json:"rows"`
	Refreshed time.Time     `json:"refreshed"`
}

// WorklistRow is one study of the worklist.
type WorklistRow struct {
	analysis.WorkItem
	Patient string `json:"patient"`
	// TaskStatus is the status of the Task the service wrote for the
	// study (write-back), as the FHIR server has it now: "requested" until
	// someone takes it up; Description its text when the row comes from
	// the Task alone.
	TaskStatus  string `json:"taskStatus,omitempty"`
	Description string `json:"description,omitempty"`
}

// appReads is how many of a worklist's studies are read at once.
const appReads = 8

// AppWorklist keeps the items the user's token can read (each ImagingStudy
// read with it, its subject the row's patient), in the items' order. A
// token the FHIR server refuses for all of them, or for a search when there
// are none, is EForbidden: no rows without proof of access.
func (e *Engine) AppWorklist(ctx context.Context, req AppRequest, items []analysis.WorkItem, tasks bool) (AppWorklist, error) {
	if req.Token == "" {
		return AppWorklist{}, orthotriage.Errorf(orthotriage.EUnauthorized, "no bearer token: the app must send the SMART access token")
	}
	if e.resolver == nil || e.resolver.FHIR == nil {
		return AppWorklist{}, orthotriage.Errorf(orthotriage.EUnavailable, "no FHIR client")
	}
	server := FHIRServer{BaseURL: req.FHIRServer, Token: req.Token}
	out := AppWorklist{Rows: []WorklistRow{}, Refreshed: e.now().UTC().Truncate(time.Second)}
	if len(items) == 0 {
		if _, err := e.resolver.FHIR.Get(ctx, server, "ImagingStudy?_count=1"); err != nil {
			return AppWorklist{}, appRefusal(err)
		}
		if tasks {
			out.Rows = e.withTasks(ctx, server, out.Rows)
		}
		return out, nil
	}
	rows := make([]WorklistRow, len(items))
	errs := make([]error, len(items))
	sem := make(chan struct{}, appReads)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i], errs[i] = e.worklistRow(ctx, server, it)
		})
	}
	wg.Wait()
	var firstErr error
	for i := range rows {
		if errs[i] == nil {
			out.Rows = append(out.Rows, rows[i])
		} else if firstErr == nil {
			firstErr = errs[i]
		}
	}
	if len(out.Rows) == 0 && firstErr != nil {
		return AppWorklist{}, appRefusal(firstErr)
	}
	if tasks {
		out.Rows = e.withTasks(ctx, server, out.Rows)
	}
	return out, nil
}

// taskSearch finds the Tasks the service writes back ("read this study").
const taskSearch = "Task?code=" + codes.SystemTask + "|read-study&_count=100"

// withTasks adds what the FHIR server's Tasks say (write-back on): each
// row's Task status, and a row for each Task on a study the index does not
// hold (written by another deployment, or forgotten). The Tasks are read
// with the user's token; when they cannot be, the rows stay as they were.
func (e *Engine) withTasks(ctx context.Context, server FHIRServer, rows []WorklistRow) []WorklistRow {
	f := &fetcher{r: e.resolver, server: server}
	found, err := f.search(ctx, "tasks", taskSearch)
	if err != nil {
		e.log.InfoContext(ctx, "worklist Tasks not read", "err", err)
		return rows
	}
	at := map[string]int{}
	for i, r := range rows {
		at[r.ImagingStudy] = i
	}
	for _, raw := range found {
		t, err := models.UnmarshalTask(raw)
		if err != nil || resourceType(raw) != "Task" || t.Focus == nil || t.For == nil {
			continue
		}
		study := deref(t.Focus.Reference)
		if !strings.HasPrefix(study, "ImagingStudy/") {
			continue // the order's ServiceRequest: its study is on the index
		}
		if i, ok := at[study]; ok {
			rows[i].TaskStatus = t.Status.Code()
			continue
		}
		pid, ok := analysis.PatientOf(deref(t.For.Reference), server.BaseURL)
		if !ok || t.Status.Code() == "completed" || t.Status.Code() == "cancelled" {
			continue
		}
		row := WorklistRow{Patient: "Patient/" + pid, TaskStatus: t.Status.Code(), Description: deref(t.Description),
			WorkItem: analysis.WorkItem{ImagingStudy: study, Status: analysis.WorkAIRead}}
		if t.Priority != nil {
			row.Priority = t.Priority.Code()
		}
		at[study] = len(rows)
		rows = append(rows, row)
	}
	sortRows(rows)
	return rows
}

// sortRows puts rows in the worklist's order (analysis.SortWorklist).
func sortRows(rows []WorklistRow) {
	items := make([]analysis.WorkItem, len(rows))
	by := make(map[string]WorklistRow, len(rows))
	for i, r := range rows {
		items[i], by[r.ImagingStudy] = r.WorkItem, r
	}
	analysis.SortWorklist(items)
	for i, it := range items {
		rows[i] = by[it.ImagingStudy]
	}
}

// worklistRow reads one item's study with the user's token.
func (e *Engine) worklistRow(ctx context.Context, server FHIRServer, it analysis.WorkItem) (WorklistRow, error) {
	raw, err := e.resolver.FHIR.Get(ctx, server, it.ImagingStudy)
	if err != nil {
		return WorklistRow{}, err
	}
	s, err := models.UnmarshalImagingStudy(raw)
	if err != nil || resourceType(raw) != "ImagingStudy" || "ImagingStudy/"+deref(s.Id) != it.ImagingStudy {
		return WorklistRow{}, orthotriage.Errorf(orthotriage.EForbidden, "the FHIR server answered with another resource")
	}
	pid, ok := analysis.PatientOf(deref(s.Subject.Reference), server.BaseURL)
	if !ok {
		return WorklistRow{}, orthotriage.Errorf(orthotriage.EForbidden, "the study names no patient on its FHIR server")
	}
	return WorklistRow{WorkItem: it, Patient: "Patient/" + pid}, nil
}

// appRefusal says why the FHIR server did not serve the app's token,
// without telling what exists.
func appRefusal(err error) error {
	switch innerCode(err) {
	case orthotriage.EUnavailable:
		return orthotriage.Errorf(orthotriage.EUnavailable, "the FHIR server could not be reached")
	}
	return orthotriage.Errorf(orthotriage.EForbidden, "the FHIR server did not let this token read the study or studies asked for")
}
