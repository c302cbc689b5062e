package cds

import (
	"context"
	"log/slog"
	"time"

	"github.com/orthotriage/orthotriage"
)

// Engine answers the CDS endpoints: discovery, hook calls and feedback.
type Engine struct {
	Catalog  *Catalog
	Resolver *Resolver
	Feedback FeedbackLog
	Log      *slog.Logger
	Now      func() time.Time
}

// Discovery returns the discovery document.
func (e *Engine) Discovery() Discovery { return e.Catalog.Discovery() }

// Call handles POST /cds-services/{id}: it validates the request, resolves
// its prefetch and answers. Until the analysis pipeline is wired in, every
// valid call is answered with no guidance ({"cards":[]}).
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
	// Tenant binding: an authenticated EHR may only send us to the FHIR
	// servers registered for it, and its token is never sent elsewhere.
	if caller, ok := CallerFrom(ctx); ok && req.FHIRServer != "" && !caller.MayUse(req.FHIRServer) {
		return Response{}, orthotriage.Errorf(orthotriage.EForbidden,
			"fhirServer %s is not registered for issuer %s (auth.issuers_file fhir_servers)", req.FHIRServer, caller.Issuer)
	}
	data, err := e.Resolver.Resolve(ctx, svc, req, hc)
	if err != nil {
		return Response{}, err
	}
	e.Log.InfoContext(ctx, "hook resolved", "service", id, "hook", req.Hook, "hookInstance", req.HookInstance,
		"studies", len(data.Studies), "patient", data.Patient != nil)
	return Response{Cards: []Card{}}, nil
}

// FeedbackResult says what became of one feedback item.
type FeedbackResult struct {
	Outcome  string
	Recorded bool // false: a duplicate of an event already kept
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
		results = append(results, FeedbackResult{Outcome: ev.Feedback.Outcome, Recorded: recorded})
	}
	return results, nil
}
