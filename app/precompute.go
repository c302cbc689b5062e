package app

import (
	"context"
	"fmt"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/fhir"
)

// precomputeHandler is what a worker does with a job: read and analyse the
// study as the issuer that registered its FHIR server.
func precomputeHandler(triage *analysis.Triage, tenants func(string) (analysis.Tenant, bool)) analysis.Handler {
	return func(ctx context.Context, j analysis.Job) error {
		t, ok := tenants(j.FHIRServer)
		if !ok { // refused at enqueue; the registration changed since
			return fmt.Errorf("fhir server %s is no longer registered", j.FHIRServer)
		}
		return triage.Precompute(ctx, j, t)
	}
}

// precomputeAPI feeds the queue from Subscription notifications and the
// analyze call; a FHIR server no issuer registered is refused.
func precomputeAPI(pc config.Precompute, queue analysis.Queue, tenants func(string) (analysis.Tenant, bool)) *api.Precompute {
	return &api.Precompute{
		Enqueue: func(ctx context.Context, fhirServer, study string) error {
			if _, ok := tenants(fhirServer); !ok {
				return orthotriage.Errorf(orthotriage.EForbidden, "fhirServer %s is not registered for any issuer (auth.issuers_file fhir_servers)", fhirServer)
			}
			if err := queue.Enqueue(ctx, analysis.Job{FHIRServer: fhirServer, Study: study}); err != nil {
				return &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "the study could not be queued", Err: err}
			}
			return nil
		},
		NotifiedStudies:   fhir.NotifiedStudies,
		FHIRServer:        pc.FHIRServer,
		NotificationToken: pc.NotificationToken.Reveal(),
		AdminToken:        pc.AdminToken.Reveal(),
	}
}
