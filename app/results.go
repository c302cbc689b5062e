package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/imaging"
)

// newCached is the analysis of one study (retrieval, the models, the
// policy) behind the result store, one computation per study across
// replicas.
func newCached(cfg config.Config, models []Model, retriever *imaging.Retriever, st *stores, obs analysis.Observer, log *slog.Logger) *analysis.Cached {
	a := &analysis.Analyzer{
		Retriever: retriever,
		Policy:    analysis.Policy{ReviewBelow: cfg.Results.ReviewBelow, HeatmapSide: cfg.Results.HeatmapSide},
		PerStudy:  cfg.Imaging.ImagesPerStudy,
		Now:       time.Now,
		Log:       log,
		Observer:  obs,
	}
	for _, m := range models {
		a.Models = append(a.Models, classifier(m))
	}
	co := analysis.CacheOptions{TTL: cfg.Results.TTL, Timeout: cfg.Results.AnalysisTimeout}
	if st.embedded() {
		co.NearSize = -1 // the store is in this process already: no near copy
	}
	return analysis.NewCached(a, st.results, st.locker, co, log)
}

// newWriteBack is the write-back of results to the EHR's FHIR server; nil
// when results.write_back is off.
func newWriteBack(rc config.Results, client *fhir.Client, rp reporter, log *slog.Logger) *analysis.WriteBack {
	if !rc.WriteBack {
		return nil
	}
	log.Info("write-back on: results are stored on the EHR's FHIR server", "retries", rc.WriteBackRetries)
	return analysis.NewWriteBack(resultWriter{client: client, reporter: rp, retries: rc.WriteBackRetries},
		analysis.WriteBackOptions{Kept: rc.Kept}, log)
}

// newTriage is the use case: hook calls' studies within budgets,
// precompute jobs, write-back, the worklist's notes.
func newTriage(cfg config.Config, cached *analysis.Cached, resolver *cds.Resolver, catalog *cds.Catalog, wb *analysis.WriteBack, wl analysis.Worklist, log *slog.Logger) *analysis.Triage {
	rc := cfg.Results
	return analysis.NewTriage(analysis.TriageConfig{
		Analyzer:       cached,
		Studies:        resolver,
		Tasks:          catalog.Tasks(),
		StudiesPerCall: rc.StudiesPerCall,
		Budgets: map[string]time.Duration{cds.HookPatientView: rc.BudgetPatientView, cds.HookImagingStudyAvailable: rc.BudgetStudyAvailable,
			cds.HookApp: cfg.App.Budget},
		NormalCards: rc.NormalCard,
		WriteBack:   wb,
		Worklist:    wl,
		Log:         log,
	})
}

// newEngine is the CDS engine answering hooks with the use case's results.
func newEngine(cfg config.Config, catalog *cds.Catalog, resolver *cds.Resolver, triage *analysis.Triage, rp reporter, st *stores, log *slog.Logger) *cds.Engine {
	rc := cfg.Results
	return cds.NewEngine(cds.EngineConfig{
		Catalog:  catalog,
		Resolver: resolver,
		Feedback: st.feedback,
		Triage:   triage,
		Reporter: rp,
		Cards: cds.CardOptions{NormalCard: rc.NormalCard, SystemActions: rc.SystemActions, ViewerURL: viewerURL(cfg), PendingCard: rc.PendingCard,
			Source: cds.Source{Label: rc.SourceLabel, URL: rc.SourceURL, Icon: rc.SourceIcon}},
		Reports:   st.results,
		ReportTTL: rc.TTL,
		LinkKey:   linkKey(rc.LinkSecret, st.embedded(), log),
		Kept:      cds.Kept{Issued: rc.Kept * 4, Stored: rc.Kept, Built: min(rc.Kept, 200), Encoded: min(rc.Kept, 200)},
		Log:       log,
		Now:       time.Now,
	})
}

// reportOptions say how results become FHIR resources; report links go
// through the engine, once it is built.
func reportOptions(cfg config.Config, engine **cds.Engine) fhir.ReportOptions {
	opt := fhir.ReportOptions{PresentedForm: cfg.Results.PresentedForm, MaxInlineBytes: cfg.Results.PresentedFormMaxBytes}
	if base := cfg.Auth.PublicBaseURL; base != "" {
		opt.ReportLink = func(id string) string { return (*engine).ReportURL(base, id) }
	}
	return opt
}

// linkKey is the key report links are signed with: the configured secret,
// else with the embedded store a key of this process; none with a shared
// store and no secret.
func linkKey(secret config.Secret, embedded bool, log *slog.Logger) []byte {
	switch {
	case secret != "":
		return []byte(secret.Reveal())
	case embedded:
		key := make([]byte, 32)
		rand.Read(key)
		log.Info("report links are signed with a key of this process: set results.link_secret for links that survive restarts")
		return key
	default:
		// A key of this process would sign links that the other replicas
		// sharing the store cannot open: no link rather than a broken one.
		log.Warn("cards carry no report link: with a shared result store, set results.link_secret (the same on every replica)")
		return nil
	}
}

// reporter adapts the fhir room's builders to the cds engine and the
// write-back.
type reporter struct{ opt fhir.ReportOptions }

var _ cds.Reporter = reporter{}

func (rp reporter) Report(r analysis.Result) (cds.Report, error) {
	rep, err := fhir.BuildReport(r, rp.opt)
	if err != nil {
		return cds.Report{}, err
	}
	res, err := rep.Resources()
	if err != nil {
		return cds.Report{}, err
	}
	return cds.Report{ID: fhir.ReportID(r), Resources: res, Types: rep.ResourceTypes()}, nil
}

func (rp reporter) HTML(r analysis.Result) ([]byte, error) { return fhir.ReportHTML(r) }

// resultWriter writes a result back as the card carries it: its resources
// in one transaction, retried retries times on the answers worth another
// try; the deterministic ids make a repeat an update, not a copy.
type resultWriter struct {
	client   *fhir.Client
	reporter reporter
	retries  int
}

var _ analysis.ResultWriter = resultWriter{}

func (w resultWriter) WriteResult(ctx context.Context, server analysis.FHIRServer, r analysis.Result) (string, error) {
	rep, err := w.reporter.Report(r)
	if err != nil {
		return "", fmt.Errorf("resources not built: %w", err)
	}
	bundle, err := fhir.TransactionOf(server.BaseURL, rep.Resources)
	if err != nil {
		return rep.ID, fmt.Errorf("transaction not built: %w", err)
	}
	policy := fhir.DefaultRetry
	policy.Attempts = w.retries + 1
	_, err = w.client.TransactionRetry(ctx, server, bundle, policy)
	return rep.ID, err
}
