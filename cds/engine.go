package cds

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/internal/lru"
)

// Engine answers the CDS endpoints: discovery, hook calls and feedback.
type Engine struct {
	Catalog  *Catalog
	Resolver *Resolver
	Feedback FeedbackLog
	Log      *slog.Logger
	Now      func() time.Time

	// Analyzer and Reporter turn studies into results and resources; with
	// no Analyzer every valid call is answered with no guidance.
	Analyzer Analyzer
	Reporter Reporter
	Cards    CardOptions
	// StudiesPerCall is how many of the resolved studies (newest first)
	// are analysed; 1 when 0.
	StudiesPerCall int
	// Budgets is how long a hook waits for analyses, by hook; a hook not
	// listed waits as long as the request may. Unfinished analyses go on
	// in the background and are answered from the cache next time.
	Budgets map[string]time.Duration
	// PendingCard adds an info card naming the studies still in analysis
	// when the budget ran out.
	PendingCard bool
	// Issued remembers cards by uuid for feedback; nil: not kept.
	Issued *lru.Map[IssuedCard]
	// Reports keeps results by report id for the HTML report link, for
	// ReportTTL: the result store, so that a link works on every replica
	// sharing it. nil: links are not offered. A card links a report only
	// when the report was just stored, or found still there: a link never
	// points at a report that a store outage or restart lost.
	Reports   ReportStore
	ReportTTL time.Duration
	// Stored remembers which reports this process stored already, so that
	// a later answer only checks (and extends) them instead of storing them
	// again (nil: store on every answer).
	Stored *lru.Map[bool]
	// Built keeps the resources built for recent results: a cached study
	// is answered without building them again.
	Built *lru.Map[Report]
	// Encoded keeps recent results' cards built, checked and encoded once
	// (nil: every call builds and encodes them); a call only splices in
	// its card uuids.
	Encoded *lru.Map[EncodedCard]
	// WriteBack, when set, is called (it should return at once and work
	// in the background) with each result that got a card, once per
	// result and process as long as WrittenBack remembers it.
	WriteBack   func(server FHIRServer, r analysis.Result, rep Report)
	WrittenBack *lru.Map[bool]
	// LinkKey signs report links (HMAC-SHA256), so that a report id, which
	// anyone knowing the study could compute, is not enough to read it.
	LinkKey []byte
}

// Discovery returns the discovery document.
func (e *Engine) Discovery() Discovery { return e.Catalog.Discovery() }

// Call handles POST /cds-services/{id}: it validates the request, resolves
// its prefetch, analyses the newest studies and answers one card per study
// with something to say.
func (e *Engine) Call(ctx context.Context, id string, body []byte) (Response, error) {
	svc, ok := e.Catalog.Lookup(id)
	if !ok {
		return Response{}, orthotriage.Errorf(orthotriage.ENotFound, "no CDS service with id %q", id)
	}
	req, err := ParseRequest(body)
	if err != nil {
		return Response{}, err
	}
	hc, err := Validate(svc, req)
	if err != nil {
		return Response{}, err
	}
	var given []givenBody
	if svc.Task == inference.TaskVertebral {
		if given, err = parseBodies(req.Extension); err != nil {
			return Response{}, err
		}
	}
	// Tenant binding: an authenticated EHR may only send us to the FHIR
	// servers registered for it, and its token is never sent elsewhere.
	caller, authenticated := CallerFrom(ctx)
	if authenticated && req.FHIRServer != "" && !caller.MayUse(req.FHIRServer) {
		return Response{}, orthotriage.Errorf(orthotriage.EForbidden,
			"fhirServer %s is not registered for issuer %s (auth.issuers_file fhir_servers)", req.FHIRServer, caller.Issuer)
	}
	data, err := e.Resolver.Resolve(ctx, svc, req, hc)
	if err != nil {
		return Response{}, err
	}
	e.Log.InfoContext(ctx, "hook resolved", "service", id, "hook", req.Hook, "hookInstance", req.HookInstance,
		"studies", len(data.Studies), "patient", data.Patient != nil)
	if e.Analyzer == nil || !e.Analyzer.Reads(svc.Task) {
		e.Log.InfoContext(ctx, "no model loaded for the service: no guidance", "service", id, "task", svc.Task)
		return Response{Cards: []Card{}}, nil
	}
	access := imaging.Access{FHIRBase: data.Server.BaseURL, Token: data.Server.Token}
	if authenticated {
		access.AllowedBases = append([]string{}, caller.DICOMwebBases...)
	}
	studies := data.Studies[:min(len(data.Studies), max(1, e.StudiesPerCall))]
	results := make([]analysis.Result, len(studies))
	errs := make([]error, len(studies))
	wait, cancel := ctx, context.CancelFunc(func() {})
	if budget, ok := e.Budgets[req.Hook]; ok && budget > 0 {
		wait, cancel = context.WithTimeout(ctx, budget)
	}
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range studies {
		wg.Go(func() {
			results[i], errs[i] = e.Analyzer.Analyze(wait, analysis.Input{Task: svc.Task, FHIRServer: req.FHIRServer,
				Patient: "Patient/" + hc.PatientID, Study: s, Endpoints: data.Endpoints, ResolveEndpoints: data.ResolveEndpoints[i], Access: access, Tenant: caller.Issuer,
				Clinical: data.Clinical, Bodies: bodiesFor(given, s, len(studies))})
		})
	}
	wg.Wait()
	resp := Response{Cards: []Card{}}
	pending := 0
	for i, r := range results {
		switch {
		case errors.Is(errs[i], analysis.ErrOtherPatient):
			e.Log.WarnContext(ctx, "study of another patient not analysed", "service", id, "hookInstance", req.HookInstance, "study", deref(studies[i].Id))
			continue
		case errors.Is(errs[i], analysis.ErrNoRadiograph):
			e.Log.InfoContext(ctx, "study not analysed", "service", id, "study", deref(studies[i].Id), "reason", errs[i])
			continue
		case errs[i] != nil && ctx.Err() != nil:
			return Response{}, ctx.Err()
		case errs[i] != nil && wait.Err() != nil && analysis.IsPending(errs[i]):
			pending++
			e.Log.InfoContext(ctx, "study still in analysis at the hook's budget: answered later from the cache", "service", id, "study", deref(studies[i].Id))
			continue
		case errs[i] != nil:
			e.Log.WarnContext(ctx, "study analysis failed", "service", id, "study", deref(studies[i].Id), "err", errs[i])
			continue
		}
		rep, err := e.report(r)
		if err != nil {
			e.Log.ErrorContext(ctx, "result could not be turned into FHIR resources", "service", id, "study", deref(studies[i].Id), "err", err)
			continue
		}
		linked := e.keepReport(ctx, rep.ID, r)
		base := ""
		if linked {
			base = BaseURLFrom(ctx)
		}
		card, actions, ok := e.cardFor(svc, req.HookInstance, r, rep, base)
		if !ok {
			continue
		}
		resp.Cards = append(resp.Cards, card)
		resp.SystemActions = append(resp.SystemActions, actions...)
		if e.Issued != nil {
			e.Issued.Put(card.UUID, IssuedCard{Service: id, Indicator: card.Indicator})
		}
		if data.Server.BaseURL != "" {
			e.writeBack(data.Server, r, rep)
		}
	}
	if pending > 0 && e.PendingCard {
		resp.Cards = append(resp.Cards, e.pendingCard(svc, req.HookInstance, pending))
	}
	return resp, nil
}

// writeBack hands r's resources to WriteBack unless they were handed over
// before: a cached study opened in many charts is written once.
func (e *Engine) writeBack(server FHIRServer, r analysis.Result, rep Report) {
	if e.WriteBack == nil {
		return
	}
	if e.WrittenBack != nil {
		key := resultKey(r)
		if _, done := e.WrittenBack.Get(key); done {
			return
		}
		e.WrittenBack.Put(key, true)
	}
	e.WriteBack(server, r, rep)
}

// ForgetWriteBack lets r be written back again: its write-back failed.
func (e *Engine) ForgetWriteBack(r analysis.Result) {
	if e.WrittenBack != nil {
		e.WrittenBack.Delete(resultKey(r))
	}
}

// resultKey names one computed result as bound to a call: the same
// pixels answered for another patient, ImagingStudy or server are another
// result (a recomputation is another too).
func resultKey(r analysis.Result) string {
	parts := []string{r.Tenant, r.FHIRServer, r.Study.Key(), r.Study.Patient, r.Study.ImagingStudyID, r.Study.Started,
		strings.Join(r.Study.BasedOn, ","), r.Model.ID, r.Model.Version, r.Analyzed.Format(time.RFC3339Nano)}
	var b strings.Builder
	for _, p := range parts {
		// Length-prefixed, so that no two part lists share a key.
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// report builds (or recalls) the resources of r.
func (e *Engine) report(r analysis.Result) (Report, error) {
	key := resultKey(r)
	if e.Built != nil {
		if rep, ok := e.Built.Get(key); ok {
			return rep, nil
		}
	}
	rep, err := e.Reporter.Report(r)
	if err == nil && e.Built != nil {
		e.Built.Put(key, rep)
	}
	return rep, err
}

// ReportURL is the signed link to report id under the service's base URL;
// "" when there is no base or no signing key.
func (e *Engine) ReportURL(base, id string) string {
	if base == "" || len(e.LinkKey) == 0 {
		return ""
	}
	return strings.TrimRight(base, "/") + "/reports/" + url.PathEscape(id) + "?sig=" + e.linkSignature(id)
}

// linkSignature signs a report id for its link.
func (e *Engine) linkSignature(id string) string {
	mac := hmac.New(sha256.New, e.LinkKey)
	mac.Write([]byte(id))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// ReportHTML returns the HTML report of a result this engine answered with;
// sig is the signature from the card's link.
func (e *Engine) ReportHTML(ctx context.Context, id, sig string) ([]byte, error) {
	if len(e.LinkKey) == 0 || !hmac.Equal([]byte(sig), []byte(e.linkSignature(id))) {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "no report %q here, or its link is not signed by this service", id)
	}
	var r analysis.Result
	ok := false
	if e.Reports != nil {
		var err error
		if r, ok, err = e.Reports.Get(ctx, reportKey(id)); err != nil {
			return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "the report store is not reachable", Err: err}
		}
	}
	if !ok {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "no report %q is kept (reports are kept as long as results, results.ttl)", id)
	}
	return e.Reporter.HTML(r)
}

func reportKey(id string) string { return "orthotriage:report:" + id }

// ReportStore keeps results by report id; store.MemoryResults and
// store.RedisResults are ones.
type ReportStore interface {
	analysis.Store
	// Touch extends key's expiry to ttl from now and reports whether key
	// is there.
	Touch(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// keepReport makes sure r is kept under its report id and reports whether
// the card may link it: a report stored by this process before is checked
// (and its expiry extended), since a store that restarted empty lost it;
// one not there is stored. When the store cannot be reached the card goes
// without the link.
func (e *Engine) keepReport(ctx context.Context, id string, r analysis.Result) bool {
	if e.Reports == nil || len(e.LinkKey) == 0 {
		return false
	}
	key := resultKey(r)
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if e.Stored != nil {
		if _, done := e.Stored.Get(key); done {
			there, err := e.Reports.Touch(sctx, reportKey(id), e.ReportTTL)
			if err != nil {
				e.Log.WarnContext(ctx, "report store not reachable: card sent without the report link", "report", id, "err", err)
				return false
			}
			if there {
				return true
			}
			e.Stored.Delete(key) // lost (the store restarted): store it again
		}
	}
	if err := e.Reports.Put(sctx, reportKey(id), r, e.ReportTTL); err != nil {
		e.Log.WarnContext(ctx, "report not stored: card sent without the report link", "report", id, "err", err)
		return false
	}
	if e.Stored != nil {
		e.Stored.Put(key, true)
	}
	return true
}

type baseURLKey struct{}

// WithBaseURL returns ctx carrying the service's public base URL, from
// which cards link to reports.
func WithBaseURL(ctx context.Context, base string) context.Context {
	return context.WithValue(ctx, baseURLKey{}, base)
}

// BaseURLFrom returns the base URL in ctx, or "".
func BaseURLFrom(ctx context.Context) string {
	s, _ := ctx.Value(baseURLKey{}).(string)
	return s
}

// FeedbackResult says what became of one feedback item.
type FeedbackResult struct {
	Outcome  string
	Recorded bool // false: a duplicate of an event already kept
	// Card is the indicator of the card the feedback is about, "unknown"
	// when its uuid is not among the cards remembered.
	Card string
	// Reason is the override reason's code, "" when none was given.
	Reason string
}

// RecordFeedback handles POST /cds-services/{id}/feedback.
func (e *Engine) RecordFeedback(ctx context.Context, id string, body []byte) ([]FeedbackResult, error) {
	if _, ok := e.Catalog.Lookup(id); !ok {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "no CDS service with id %q", id)
	}
	events, err := ParseFeedback(id, body, e.Now())
	if err != nil {
		return nil, err
	}
	results := make([]FeedbackResult, 0, len(events))
	for _, ev := range events {
		recorded, err := e.Feedback.Record(ctx, ev)
		if err != nil {
			return results, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "feedback could not be stored", Err: err}
		}
		res := FeedbackResult{Outcome: ev.Feedback.Outcome, Recorded: recorded, Card: "unknown"}
		if e.Issued != nil {
			if c, ok := e.Issued.Get(ev.Feedback.Card); ok && c.Service == id {
				res.Card = c.Indicator
			}
		}
		if or := ev.Feedback.OverrideReason; or != nil && or.Reason != nil {
			// Only the reasons offered are counted by name: a free code
			// would make a metric series per value.
			res.Reason = "other"
			for _, offered := range overrideReasons {
				if or.Reason.Code == offered.Code {
					res.Reason = offered.Code
				}
			}
		}
		results = append(results, res)
	}
	return results, nil
}
