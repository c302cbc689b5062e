package app

import (
	"context"
	"errors"
	"net/http"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/prometheus/client_golang/prometheus"
)

// wire builds everything between the stores and the router: the outbound
// clients, authentication and its tokens, the use case and the CDS engine,
// the precompute producers and workers' handler, readiness and the metrics.
func (a *App) wire(ctx context.Context, st *stores, reg *prometheus.Registry) (http.Handler, error) {
	cfg, log := a.cfg, a.log
	outbound, err := outboundTransport(cfg)
	if err != nil {
		return nil, err
	}
	engine, triage := a.useCase(st, outbound, reg)
	key, err := clientKey(cfg)
	if err != nil {
		return nil, err
	}
	tokens := backendTokens(cfg, key, outbound) // one token source for hooks and jobs
	authenticate, err := newAuthenticator(ctx, cfg, st.replay, tokens, log)
	if err != nil {
		return nil, err
	}
	tenants := tenantsFrom(cfg, tokens)
	a.precomp = precomputeHandler(triage, tenants)
	registerQueueMetrics(reg, st.queueStats, st.queue, log)
	a.readiness = api.NewReadiness(append([]api.Check{modelsCheck(a.models)}, st.checks...),
		api.DefaultReadinessInterval, api.DefaultReadinessTimeout)
	return newRouter(cfg, edge{engine: engine, readiness: a.readiness, authenticate: authenticate, jwks: jwksOf(key),
		precompute: precomputeAPI(cfg.Precompute, st.queue, tenants),
		app:        smartApp(cfg, log, tenants, a.cached, st.worklist)}, reg, log), nil
}

// useCase builds the analysis of a study (retrieval, models, the result
// cache), the use case over it (hooks' studies within budgets, precompute,
// write-back) and the CDS engine answering hooks with its results.
func (a *App) useCase(st *stores, outbound http.RoundTripper, reg prometheus.Registerer) (*cds.Engine, *analysis.Triage) {
	cfg, log := a.cfg, a.log
	stages := newStageMetrics(reg, a.models)
	registerModelMetrics(reg, a.models)
	ro := RetrieverOptions(cfg)
	ro.Transport, ro.Observer = outbound, stages
	a.cached = newCached(cfg, a.models, imaging.NewRetriever(ro), st, stages, log)
	registerCacheMetrics(reg, a.cached)

	fhirClient := fhir.NewClient(cfg.FHIR.Timeout, cfg.FHIR.MaxResponseSize, outbound)
	resolver := &cds.Resolver{FHIR: fhirClient, MaxPages: cfg.FHIR.MaxPages, MaxStudies: cfg.FHIR.MaxStudies, Log: log}
	var engine *cds.Engine // built last; report links go through it
	rp := reporter{opt: reportOptions(cfg, &engine)}
	a.writeBack = newWriteBack(cfg.Results, fhirClient, rp, log)
	catalog := cds.DefaultCatalog()
	triage := newTriage(cfg, a.cached, resolver, catalog, a.writeBack, st.worklist, log)
	engine = newEngine(cfg, catalog, resolver, triage, rp, st, log)
	return engine, triage
}

// modelsCheck is ready when a model is loaded.
func modelsCheck(models []Model) api.Check {
	return api.Check{Name: "models", Check: func(context.Context) error {
		if len(models) == 0 {
			return errors.New("no model loaded")
		}
		return nil
	}}
}
