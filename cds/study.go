package cds

import (
	"context"
	"strings"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

var _ analysis.StudyReader = (*Resolver)(nil)

// Study reads one ImagingStudy ("ImagingStudy/{id}") from server as the
// input of a precompute job's analyses: the study, its Endpoints (read when
// first wanted) and its subject's clinical data (read when a fracture needs
// it), as a hook would. The input names no task, access or tenant, and no
// call patient: the study's subject is the patient.
func (r *Resolver) Study(ctx context.Context, server FHIRServer, ref string) (analysis.Input, error) {
	id, ok := strings.CutPrefix(ref, "ImagingStudy/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return analysis.Input{}, orthotriage.Errorf(orthotriage.EInvalid, "the study is not an ImagingStudy/{id} reference")
	}
	f := &fetcher{r: r, server: server}
	raw, err := f.get(ctx, "study", ref)
	if err != nil {
		return analysis.Input{}, err
	}
	s, err := models.UnmarshalImagingStudy(raw)
	if err != nil || resourceType(raw) != "ImagingStudy" {
		return analysis.Input{}, orthotriage.Errorf(orthotriage.EInvalid, "read ImagingStudy returned no readable ImagingStudy")
	}
	in := analysis.Input{FHIRServer: server.BaseURL, Study: s, ResolveEndpoints: lazyEndpoints(f, s, raw, nil)}
	// The vertebral nomogram's clinical data, read from the study's
	// subject when a fracture needs it, as a hook would.
	if pid, ok := analysis.PatientOf(deref(s.Subject.Reference), server.BaseURL); ok {
		in.Clinical = lazyClinical(f, func(ctx context.Context) *models.Patient {
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
	return in, nil
}
