package main

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/internal/lru"
	"github.com/orthotriage/orthotriage/store"
)

// reporter adapts the fhir room's builders to the cds engine.
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

// wireResults gives the engine its analysis, cards and write-back.
func wireResults(e *cds.Engine, cfg config.Config, models []servedModel, retriever *imaging.Retriever, client *fhir.Client,
	results cds.ReportStore, locker analysis.Locker, log *slog.Logger) *analysis.Cached {
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
	e.Analyzer = cached
	opt := fhir.ReportOptions{PresentedForm: rc.PresentedForm, MaxInlineBytes: rc.PresentedFormMaxBytes}
	if base := cfg.Auth.PublicBaseURL; base != "" {
		opt.ReportLink = func(id string) string { return e.ReportURL(base, id) }
	}
	e.Reporter = reporter{opt: opt}
	e.Cards = cds.CardOptions{NormalCard: rc.NormalCard, SystemActions: rc.SystemActions, ViewerURL: rc.ViewerURL,
		Source: cds.Source{Label: rc.SourceLabel, URL: rc.SourceURL, Icon: rc.SourceIcon}}
	e.StudiesPerCall = rc.StudiesPerCall
	e.Budgets = map[string]time.Duration{cds.HookPatientView: rc.BudgetPatientView, cds.HookImagingStudyAvailable: rc.BudgetStudyAvailable}
	e.PendingCard = rc.PendingCard
	e.Issued = lru.New[cds.IssuedCard](rc.Kept * 4)
	e.Reports, e.ReportTTL, e.Stored = results, rc.TTL, lru.New[bool](rc.Kept)
	e.Built = lru.New[cds.Report](min(rc.Kept, 200))
	e.Encoded = lru.New[cds.EncodedCard](min(rc.Kept, 200))
	e.WrittenBack = lru.New[bool](rc.Kept)
	switch {
	case rc.LinkSecret != "":
		e.LinkKey = []byte(rc.LinkSecret.Reveal())
	case embedded:
		e.LinkKey = make([]byte, 32)
		rand.Read(e.LinkKey)
		log.Info("report links are signed with a key of this process: set results.link_secret for links that survive restarts")
	default:
		// A key of this process would sign links that the other replicas
		// sharing the store cannot open: no link rather than a broken one.
		log.Warn("cards carry no report link: with a shared result store, set results.link_secret (the same on every replica)")
	}
	if rc.WriteBack {
		log.Info("write-back on: results are stored on the EHR's FHIR server", "retries", rc.WriteBackRetries)
		e.WriteBack = func(server cds.FHIRServer, r analysis.Result, rep cds.Report) {
			go func() {
				if !writeBack(client, server, r, rep, rc.WriteBackRetries, log) {
					e.ForgetWriteBack(r) // the next answer tries again
				}
			}()
		}
	}
	return cached
}

// writeBack stores a result's resources (as the card carries them) on the
// FHIR server as one transaction; the deterministic ids make a repeat an
// update, not a copy.
func writeBack(client *fhir.Client, server cds.FHIRServer, r analysis.Result, rep cds.Report, retries int, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bundle, err := fhir.TransactionOf(server.BaseURL, rep.Resources)
	if err != nil {
		log.Error("write-back: transaction not built", "study", r.Study.Key(), "err", err)
		return false
	}
	start := time.Now()
	policy := fhir.DefaultRetry
	policy.Attempts = retries + 1
	if _, err := client.TransactionRetry(ctx, server, bundle, policy); err != nil {
		log.Error("write-back failed", "study", r.Study.Key(), "report", rep.ID, "fhirServer", server.BaseURL, "err", err)
		return false
	}
	log.Info("write-back stored", "study", r.Study.Key(), "report", rep.ID, "fhirServer", server.BaseURL,
		"ms", time.Since(start).Milliseconds())
	return true
}

// tenantsFrom says, for a FHIR server named by a precompute job, whether an
// issuer registered it, and gives that issuer's DICOMweb bases and its SMART
// Backend Services token (when configured). With authentication off every
// server is accepted, without a token or DICOMweb binding (demo only).
func tenantsFrom(cfg config.Config, key *auth.ClientKey, outbound http.RoundTripper) func(string) (cds.Tenant, bool) {
	if cfg.Auth.Disabled {
		return func(string) (cds.Tenant, bool) { return cds.Tenant{}, true }
	}
	var tokens *auth.TokenSource
	if key != nil {
		tokens = auth.NewTokenSource(key, &http.Client{Transport: outbound})
	}
	return func(server string) (cds.Tenant, bool) {
		for _, is := range cfg.Auth.Issuers {
			if !(cds.Caller{FHIRServers: is.FHIRServers}).MayUse(server) {
				continue
			}
			t := cds.Tenant{Issuer: is.Iss, DICOMwebBases: append([]string{}, is.DICOMwebBases...)}
			if bs := is.BackendServices; bs != nil && tokens != nil {
				reg := auth.BackendService{TokenURL: bs.TokenURL, ClientID: bs.ClientID, Scope: bs.Scope}
				t.Token = func(ctx context.Context) (string, error) { return tokens.Token(ctx, reg) }
			}
			return t, true
		}
		return cds.Tenant{}, false
	}
}
