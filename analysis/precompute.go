package analysis

import (
	"context"
	"errors"
	"fmt"

	"github.com/orthotriage/orthotriage/imaging"
)

// StudyReader reads one ImagingStudy ("ImagingStudy/{id}") from a FHIR
// server as the input of its analyses: the study, its endpoints and the
// clinical data of its subject, without a task, access or tenant, and with
// no call patient (the study's subject is the patient). cds.Resolver is
// one.
type StudyReader interface {
	Study(ctx context.Context, server FHIRServer, ref string) (Input, error)
}

// Tenant is what a precompute job may use on one FHIR server: a bearer
// token source (nil: none) and the DICOMweb bases registered with it.
type Tenant struct {
	// Issuer is the EHR that registered the FHIR server: results are its
	// alone (the cache key holds it), as for its hook calls.
	Issuer        string
	Token         func(ctx context.Context) (string, error)
	DICOMwebBases []string
}

// Precompute analyses one study ahead of any hook, for every task read,
// so that the hook finds the results cached; with write-back on, the
// results worth a card are stored on the FHIR server; each result is noted
// on the worklist. A study with no radiograph for any model is done, not
// failed.
func (t *Triage) Precompute(ctx context.Context, j Job, tenant Tenant) error {
	server := FHIRServer{BaseURL: j.FHIRServer}
	if tenant.Token != nil {
		tok, err := tenant.Token(ctx)
		if err != nil {
			return fmt.Errorf("token for %s: %w", j.FHIRServer, err)
		}
		server.Token = tok
	}
	in, err := t.cfg.Studies.Study(ctx, server, j.Study)
	if err != nil {
		return err
	}
	in.Access = imaging.Access{FHIRBase: server.BaseURL, Token: server.Token, AllowedBases: tenant.DICOMwebBases}
	in.Tenant = tenant.Issuer
	var notes []workNote
	for _, task := range t.cfg.Tasks {
		if !t.Reads(task) {
			continue
		}
		in.Task = task
		r, err := t.cfg.Analyzer.Analyze(ctx, in)
		if errors.Is(err, ErrNoRadiograph) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", task, err)
		}
		notes = append(notes, workNote{in.Tenant, j.FHIRServer, WorkItemOf(in, r)})
		t.writeBack(server, r)
	}
	t.note(ctx, notes)
	t.cfg.Log.InfoContext(ctx, "study precomputed", "study", j.Study, "fhirServer", j.FHIRServer, "results", len(notes), "attempt", j.Attempt)
	return nil
}
