package cds

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/internal/lru"
)

// Engine answers the CDS endpoints: discovery, hook calls and feedback. A
// hook call is parsed, validated and resolved here; its studies are
// analysed by the Triage (the use case), whose outcomes become cards.
type Engine struct {
	catalog   *Catalog
	resolver  *Resolver
	feedback  FeedbackLog
	triage    Triage
	reporter  Reporter
	cards     CardOptions
	reports   ReportStore
	reportTTL time.Duration
	linkKey   []byte
	log       *slog.Logger
	now       func() time.Time

	// issued remembers cards by uuid for feedback; nil: not kept.
	issued *lru.Map[issuedCard]
	// stored remembers which reports this process stored already, so that
	// a later answer only checks (and extends) them instead of storing them
	// again (nil: store on every answer).
	stored *lru.Map[bool]
	// built keeps the resources built for recent results: a cached study
	// is answered without building them again (nil: built every call).
	built *lru.Map[Report]
	// encoded keeps recent results' cards built, checked and encoded once
	// (nil: every call builds and encodes them); a call only splices in
	// its card uuids.
	encoded *lru.Map[encodedCard]
}

// EngineConfig is what an Engine is built from.
type EngineConfig struct {
	Catalog  *Catalog // nil: DefaultCatalog
	Resolver *Resolver
	Feedback FeedbackLog
	// Triage analyses a call's studies (analysis.Triage); nil: every valid
	// call is answered with no guidance.
	Triage Triage
	// Reporter turns results into FHIR resources for their cards.
	Reporter Reporter
	Cards    CardOptions
	// Reports keeps results by report id for the HTML report link, for
	// ReportTTL: the result store, so that a link works on every replica
	// sharing it. nil: links are not offered. A card links a report only
	// when the report was just stored, or found still there: a link never
	// points at a report that a store outage or restart lost.
	Reports   ReportStore
	ReportTTL time.Duration
	// LinkKey signs report links (HMAC-SHA256), so that a report id, which
	// anyone knowing the study could compute, is not enough to read it;
	// none: links are not offered.
	LinkKey []byte
	// Kept sizes what the engine remembers of recent calls.
	Kept Kept
	Log  *slog.Logger
	Now  func() time.Time // nil: time.Now
}

// Kept is how many entries the engine keeps of each kind; 0 keeps none
// (each call then does the work again).
type Kept struct {
	Issued  int // cards, by uuid, to match feedback to
	Stored  int // reports known to be in Reports (checked, not stored again)
	Built   int // results' FHIR resources
	Encoded int // results' cards, built, checked and encoded
}

// NewEngine returns the engine built from cfg.
func NewEngine(cfg EngineConfig) *Engine {
	if cfg.Catalog == nil {
		cfg.Catalog = DefaultCatalog()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{
		catalog: cfg.Catalog, resolver: cfg.Resolver, feedback: cfg.Feedback, triage: cfg.Triage, reporter: cfg.Reporter,
		cards: cfg.Cards, reports: cfg.Reports, reportTTL: cfg.ReportTTL, linkKey: cfg.LinkKey, log: cfg.Log, now: cfg.Now,
		issued: kept[issuedCard](cfg.Kept.Issued), stored: kept[bool](cfg.Kept.Stored),
		built: kept[Report](cfg.Kept.Built), encoded: kept[encodedCard](cfg.Kept.Encoded),
	}
}

// kept is a map of size entries, nil for none.
func kept[V any](size int) *lru.Map[V] {
	if size <= 0 {
		return nil
	}
	return lru.New[V](size)
}

// Catalog is the services the engine offers.
func (e *Engine) Catalog() *Catalog { return e.catalog }

// Discovery returns the discovery document.
func (e *Engine) Discovery() Discovery { return e.catalog.Discovery() }

// Call handles POST /cds-services/{id}: it validates the request, resolves
// its prefetch, has the newest studies analysed and answers one card per
// study with something to say.
func (e *Engine) Call(ctx context.Context, id string, body []byte) (Response, error) {
	svc, ok := e.catalog.Lookup(id)
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
	data, err := e.resolver.Resolve(ctx, svc, req, hc)
	if err != nil {
		return Response{}, err
	}
	if sum := summaryFrom(ctx); sum != nil {
		// The request's own log line carries it: one line per call.
		*sum = CallSummary{Service: id, Hook: req.Hook, HookInstance: req.HookInstance, Studies: len(data.Studies), Patient: data.Patient != nil}
	} else {
		e.log.InfoContext(ctx, "hook resolved", "service", id, "hook", req.Hook, "hookInstance", req.HookInstance,
			"studies", len(data.Studies), "patient", data.Patient != nil)
	}
	if e.triage == nil || !e.triage.Reads(svc.Task) {
		e.log.InfoContext(ctx, "no model loaded for the service: no guidance", "service", id, "task", svc.Task)
		return Response{Cards: []Card{}}, nil
	}
	access := imaging.Access{FHIRBase: data.Server.BaseURL, Token: data.Server.Token}
	if authenticated {
		access.AllowedBases = append([]string{}, caller.DICOMwebBases...)
	}
	call := analysis.Call{Hook: req.Hook, Service: id, HookInstance: req.HookInstance, Bodies: bodies(given), Server: data.Server}
	for i, s := range data.Studies {
		call.Studies = append(call.Studies, analysis.Input{Task: svc.Task, FHIRServer: req.FHIRServer,
			Patient: "Patient/" + hc.PatientID, Study: s, Endpoints: data.Endpoints, ResolveEndpoints: data.ResolveEndpoints[i], Access: access, Tenant: caller.Issuer,
			Clinical: data.Clinical})
	}
	outcomes, err := e.triage.Call(ctx, call)
	if err != nil {
		return Response{}, err
	}
	return e.answer(ctx, svc, id, req.HookInstance, outcomes), nil
}

// answer turns a call's outcomes into its cards (and systemActions): one per
// result with something to say, and, when asked for, one saying how many
// studies are still in analysis.
func (e *Engine) answer(ctx context.Context, svc Service, id, hookInstance string, outcomes []analysis.Outcome) Response {
	resp := Response{Cards: []Card{}}
	pending := 0
	for _, o := range outcomes {
		if o.Status == analysis.StudyPending {
			pending++
		}
		if o.Status != analysis.StudyDone {
			continue
		}
		r := o.Result
		if r.NotRead != nil && !r.WorthACard(false) {
			// Refused by the image gate: no finding card; the custom
			// hook (not patient-view) says it was not read and why.
			if !svc.Offers(HookPatientView) {
				resp.Cards = append(resp.Cards, e.notReadCard(svc, hookInstance, r))
			}
			continue
		}
		key := r.BoundKey() // once: the report, its keeping and the card are keyed by it
		rep, err := e.report(key, r)
		if err != nil {
			e.log.ErrorContext(ctx, "result could not be turned into FHIR resources", "service", id, "study", r.Study.ImagingStudyID, "err", err)
			continue
		}
		base := ""
		if e.keepReport(ctx, key, rep.ID, r) {
			base = BaseURLFrom(ctx)
		}
		card, actions, ok := e.cardFor(svc, hookInstance, key, r, rep, base)
		if !ok {
			continue
		}
		resp.Cards = append(resp.Cards, card)
		resp.SystemActions = append(resp.SystemActions, actions...)
		if e.issued != nil {
			e.issued.Put(card.UUID, issuedCard{Service: id, Indicator: card.Indicator, Study: "ImagingStudy/" + r.Study.ImagingStudyID})
		}
	}
	if pending > 0 && e.cards.PendingCard {
		resp.Cards = append(resp.Cards, e.pendingCard(svc, hookInstance, pending))
	}
	return resp
}

// report builds (or recalls) the resources of r, whose BoundKey is key.
func (e *Engine) report(key string, r analysis.Result) (Report, error) {
	if e.built != nil {
		if rep, ok := e.built.Get(key); ok {
			return rep, nil
		}
	}
	rep, err := e.reporter.Report(r)
	if err == nil && e.built != nil {
		e.built.Put(key, rep)
	}
	return rep, err
}

// ReportURL is the signed link to report id under the service's base URL;
// "" when there is no base or no signing key.
func (e *Engine) ReportURL(base, id string) string {
	if base == "" || len(e.linkKey) == 0 {
		return ""
	}
	return strings.TrimRight(base, "/") + "/reports/" + url.PathEscape(id) + "?sig=" + e.linkSignature(id)
}

// linkSignature signs a report id for its link.
func (e *Engine) linkSignature(id string) string {
	mac := hmac.New(sha256.New, e.linkKey)
	mac.Write([]byte(id))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// ReportHTML returns the HTML report of a result this engine answered with;
// sig is the signature from the card's link.
func (e *Engine) ReportHTML(ctx context.Context, id, sig string) ([]byte, error) {
	if len(e.linkKey) == 0 || !hmac.Equal([]byte(sig), []byte(e.linkSignature(id))) {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "no report %q here, or its link is not signed by this service", id)
	}
	var r analysis.Result
	ok := false
	if e.reports != nil {
		var err error
		if r, ok, err = e.reports.Get(ctx, reportKey(id)); err != nil {
			return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "the report store is not reachable", Err: err}
		}
	}
	if !ok {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "no report %q is kept (reports are kept as long as results, results.ttl)", id)
	}
	return e.reporter.HTML(r)
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

// keepReport makes sure r (whose BoundKey is key) is kept under its report
// id and reports whether the card may link it: a report stored by this
// process before is checked (and its expiry extended), since a store that
// restarted empty lost it; one not there is stored. When the store cannot
// be reached the card goes without the link.
func (e *Engine) keepReport(ctx context.Context, key, id string, r analysis.Result) bool {
	if e.reports == nil || len(e.linkKey) == 0 {
		return false
	}
	sctx := ctx
	if !analysis.IsInProcess(e.reports) { // an embedded store never waits
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
	}
	if e.stored != nil {
		if _, done := e.stored.Get(key); done {
			there, err := e.reports.Touch(sctx, reportKey(id), e.reportTTL)
			if err != nil {
				e.log.WarnContext(ctx, "report store not reachable: card sent without the report link", "report", id, "err", err)
				return false
			}
			if there {
				return true
			}
			e.stored.Delete(key) // lost (the store restarted): store it again
		}
	}
	if err := e.reports.Put(sctx, reportKey(id), r, e.reportTTL); err != nil {
		e.log.WarnContext(ctx, "report not stored: card sent without the report link", "report", id, "err", err)
		return false
	}
	if e.stored != nil {
		e.stored.Put(key, true)
	}
	return true
}

type baseURLKey struct{}

// CallSummary is what a resolved hook call was about, for its log line:
// the service, hook, hookInstance, how many studies and whether the
// patient was found. No patient or study id: they stay out of logs.
type CallSummary struct {
	Service, Hook, HookInstance string
	Studies                     int
	Patient                     bool
}

// LogAttrs are s's fields as log attributes; none before the call resolved.
func (s *CallSummary) LogAttrs() []any {
	if s == nil || s.Hook == "" {
		return nil
	}
	return []any{"service", s.Service, "hook", s.Hook, "hookInstance", s.HookInstance, "studies", s.Studies, "patient", s.Patient}
}

type summaryKey struct{}

// WithCallSummary returns ctx carrying an empty summary that Call fills in
// when it has resolved the call, instead of logging a line of its own: the
// HTTP layer logs it with the request.
func WithCallSummary(ctx context.Context) (context.Context, *CallSummary) {
	s := &CallSummary{}
	return context.WithValue(ctx, summaryKey{}, s), s
}

func summaryFrom(ctx context.Context) *CallSummary {
	s, _ := ctx.Value(summaryKey{}).(*CallSummary)
	return s
}

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
	if _, ok := e.catalog.Lookup(id); !ok {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "no CDS service with id %q", id)
	}
	events, err := ParseFeedback(id, body, e.now())
	if err != nil {
		return nil, err
	}
	results := make([]FeedbackResult, 0, len(events))
	for _, ev := range events {
		recorded, err := e.feedback.Record(ctx, ev)
		if err != nil {
			return results, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "feedback could not be stored", Err: err}
		}
		res := FeedbackResult{Outcome: ev.Feedback.Outcome, Recorded: recorded, Card: "unknown"}
		if e.issued != nil {
			if c, ok := e.issued.Get(ev.Feedback.Card); ok && c.Service == id {
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
