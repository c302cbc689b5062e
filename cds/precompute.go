package cds

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Tenant is what a precompute job may use on one FHIR server: a bearer
// token source (nil: none) and the DICOMweb bases registered with it.
type Tenant struct {
	// Issuer is the EHR that registered the FHIR server: results are its
	// alone (the cache key holds it), as for its hook calls.
	Issuer        string
	Token         func(ctx context.Context) (string, error)
	DICOMwebBases []string
}

// Study reads one ImagingStudy ("ImagingStudy/{id}") and its Endpoints
// from server.
func (r *Resolver) Study(ctx context.Context, server FHIRServer, ref string) (Data, error) {
	id, ok := strings.CutPrefix(ref, "ImagingStudy/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return Data{}, orthotriage.Errorf(orthotriage.EInvalid, "the study is not an ImagingStudy/{id} reference")
	}
	f := &fetcher{r: r, server: server}
	raw, err := f.get(ctx, "study", ref)
	if err != nil {
		return Data{}, err
	}
	s, err := models.UnmarshalImagingStudy(raw)
	if err != nil || resourceType(raw) != "ImagingStudy" {
		return Data{}, orthotriage.Errorf(orthotriage.EInvalid, "read ImagingStudy returned no readable ImagingStudy")
	}
	d := Data{Studies: []models.ImagingStudy{s}, Server: f.server}
	d.ResolveEndpoints = append(d.ResolveEndpoints, lazyEndpoints(f, s, raw, nil))
	// The vertebral nomogram's clinical data, read from the study's
	// subject when a fracture needs it, as a hook would.
	if pid, ok := analysis.PatientOf(deref(s.Subject.Reference), server.BaseURL); ok {
		d.Clinical = lazyClinical(f, func(ctx context.Context) *models.Patient {
			raw, err := f.get(ctx, PrefetchPatient, "Patient/"+pid)
			if err != nil {
				return nil
			}
			if p, err := models.UnmarshalPatient(raw); err == nil && resourceType(raw) == "Patient" {
				return &p
			}
			return nil
		}, HookContext{PatientID: pid})
	}
	return d, nil
}

// Precompute analyses one study ahead of any hook, for every service whose
// model is loaded, so that the hook finds the results cached; with
// write-back on, the results worth a card are stored on the FHIR server.
// A study with no radiograph for any model is done, not failed.
func (e *Engine) Precompute(ctx context.Context, j analysis.Job, t Tenant) error {
	server := FHIRServer{BaseURL: j.FHIRServer}
	if t.Token != nil {
		tok, err := t.Token(ctx)
		if err != nil {
			return fmt.Errorf("token for %s: %w", j.FHIRServer, err)
		}
		server.Token = tok
	}
	data, err := e.Resolver.Study(ctx, server, j.Study)
	if err != nil {
		return err
	}
	access := imaging.Access{FHIRBase: server.BaseURL, Token: server.Token, AllowedBases: t.DICOMwebBases}
	analysed := 0
	for _, svc := range e.Catalog.services {
		if e.Analyzer == nil || !e.Analyzer.Reads(svc.Task) {
			continue
		}
		r, err := e.Analyzer.Analyze(ctx, analysis.Input{Task: svc.Task, FHIRServer: j.FHIRServer, Study: data.Studies[0],
			ResolveEndpoints: data.ResolveEndpoints[0], Access: access, Tenant: t.Issuer, Clinical: data.Clinical})
		if errors.Is(err, analysis.ErrNoRadiograph) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", svc.ID, err)
		}
		analysed++
		if _, notable := r.Top(); e.WriteBack != nil && (notable || r.Review || e.Cards.NormalCard) {
			rep, err := e.report(r)
			if err != nil {
				return err
			}
			e.writeBack(data.Server, r, rep)
		}
	}
	e.Log.InfoContext(ctx, "study precomputed", "study", j.Study, "fhirServer", j.FHIRServer, "results", analysed, "attempt", j.Attempt)
	return nil
}
