package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/store"
)

// reporter adapts the fhir room's builders to the cds engine and the
// write-back.
type reporter struct{ opt fhir.ReportOptions }

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

// wireResults builds the analysis of one study (cached across replicas),
// the use case over it (hook calls' studies within budgets, precompute
// jobs, write-back) and the CDS engine answering hooks with its results.
func wireResults(cfg config.Config, models []servedModel, retriever *imaging.Retriever, client *fhir.Client, resolver *cds.Resolver,
	feedback cds.FeedbackLog, results cds.ReportStore, locker analysis.Locker, log *slog.Logger) (*cds.Engine, *analysis.Triage, *analysis.Cached) {
	rc := cfg.Results
	a := &analysis.Analyzer{
		Retriever: retriever,
		Policy:    analysis.Policy{ReviewBelow: rc.ReviewBelow, HeatmapSide: rc.HeatmapSide},
		PerStudy:  cfg.Imaging.ImagesPerStudy,
		Now:       time.Now,
		Log:       log,
	}
	for _, b := range models {
		a.Models = append(a.Models, b.classifier())
	}
	_, embedded := results.(*store.MemoryResults)
	co := analysis.CacheOptions{TTL: rc.TTL, Timeout: rc.AnalysisTimeout}
	if embedded {
		co.NearSize = -1 // the store is in this process already: no near copy
	}
	cached := analysis.NewCached(a, results, locker, co, log)

	var engine *cds.Engine // built below; the reports link through it
	opt := fhir.ReportOptions{PresentedForm: rc.PresentedForm, MaxInlineBytes: rc.PresentedFormMaxBytes}
	if base := cfg.Auth.PublicBaseURL; base != "" {
		opt.ReportLink = func(id string) string { return engine.ReportURL(base, id) }
	}
	rp := reporter{opt: opt}
	catalog := cds.DefaultCatalog()
	tc := analysis.TriageConfig{
		Analyzer:       cached,
		Studies:        resolver,
		Tasks:          catalog.Tasks(),
		StudiesPerCall: rc.StudiesPerCall,
		Budgets:        map[string]time.Duration{cds.HookPatientView: rc.BudgetPatientView, cds.HookImagingStudyAvailable: rc.BudgetStudyAvailable},
		NormalCards:    rc.NormalCard,
		Log:            log,
	}
	if rc.WriteBack {
		log.Info("write-back on: results are stored on the EHR's FHIR server", "retries", rc.WriteBackRetries)
		tc.WriteBack = analysis.NewWriteBack(resultWriter{client: client, reporter: rp, retries: rc.WriteBackRetries},
			analysis.WriteBackOptions{Kept: rc.Kept}, log)
	}
	triage := analysis.NewTriage(tc)
	engine = cds.NewEngine(cds.EngineConfig{
		Catalog:  catalog,
		Resolver: resolver,
		Feedback: feedback,
		Triage:   triage,
		Reporter: rp,
		Cards: cds.CardOptions{NormalCard: rc.NormalCard, SystemActions: rc.SystemActions, ViewerURL: rc.ViewerURL, PendingCard: rc.PendingCard,
			Source: cds.Source{Label: rc.SourceLabel, URL: rc.SourceURL, Icon: rc.SourceIcon}},
		Reports:   results,
		ReportTTL: rc.TTL,
		LinkKey:   linkKey(rc.LinkSecret, results, log),
		Kept:      cds.Kept{Issued: rc.Kept * 4, Stored: rc.Kept, Built: min(rc.Kept, 200), Encoded: min(rc.Kept, 200)},
		Log:       log,
		Now:       time.Now,
	})
	return engine, triage, cached
}

// linkKey is the key report links are signed with: the configured secret,
// else with the embedded store a key of this process; none with a shared
// store and no secret.
func linkKey(secret config.Secret, results cds.ReportStore, log *slog.Logger) []byte {
	_, embedded := results.(*store.MemoryResults)
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

// tenantsFrom says, for a FHIR server named by a precompute job, whether an
// issuer registered it, and gives that issuer's DICOMweb bases and its SMART
// Backend Services token (when configured). With authentication off every
// server is accepted, without a token or DICOMweb binding (demo only).
func tenantsFrom(cfg config.Config, key *auth.ClientKey, outbound http.RoundTripper) func(string) (analysis.Tenant, bool) {
	if cfg.Auth.Disabled {
		return func(string) (analysis.Tenant, bool) { return analysis.Tenant{}, true }
	}
	var tokens *auth.TokenSource
	if key != nil {
		tokens = auth.NewTokenSource(key, &http.Client{Transport: outbound})
	}
	return func(server string) (analysis.Tenant, bool) {
		for _, is := range cfg.Auth.Issuers {
			if !(cds.Caller{FHIRServers: is.FHIRServers}).MayUse(server) {
				continue
			}
			t := analysis.Tenant{Issuer: is.Iss, DICOMwebBases: append([]string{}, is.DICOMwebBases...)}
			if bs := is.BackendServices; bs != nil && tokens != nil {
				reg := auth.BackendService{TokenURL: bs.TokenURL, ClientID: bs.ClientID, Scope: bs.Scope}
				t.Token = func(ctx context.Context) (string, error) { return tokens.Token(ctx, reg) }
			}
			return t, true
		}
		return analysis.Tenant{}, false
	}
}
