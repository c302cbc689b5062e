package cds

import (
	"maps"
	"sort"

	"github.com/orthotriage/orthotriage/inference"
)

// Hooks the services answer.
const (
	// HookPatientView fires when a clinician opens a patient's chart.
	HookPatientView = "patient-view"
	// HookImagingStudyAvailable is orthotriage's custom hook, fired by an EHR
	// or PACS integration when new radiographs for a patient are stored. Its
	// context carries patientId and studies, a list of ImagingStudy
	// references ("ImagingStudy/{id}"), and optionally userId.
	HookImagingStudyAvailable = "org.orthotriage.imagingstudy-available"
)

// Prefetch keys. Each template is resolved against the request context; a
// key the EHR leaves out is fetched from fhirServer.
const (
	PrefetchPatient = "patient"
	PrefetchStudies = "studies"
)

// recentStudies asks for the patient's newest ImagingStudy resources. The
// patient parameter carries its resource type because some servers (Medplum)
// only match that form; HAPI FHIR accepts both.
const recentStudies = "ImagingStudy?patient=Patient/{{context.patientId}}&_sort=-started&_count=20"

var prefetchTemplates = map[string]string{
	PrefetchPatient: "Patient/{{context.patientId}}",
	PrefetchStudies: recentStudies,
}

// Service is one CDS service: an id offered on one or more hooks.
type Service struct {
	ID          string
	Title       string
	Description string
	Hooks       []string
	// NeedsPatient says the answer cannot be given without the Patient
	// resource (the vertebral nomogram needs age and sex).
	NeedsPatient bool
	// Task is the model task the service runs (a manifest's task).
	Task string
	// Prefetch are the service's templates beyond the common ones.
	Prefetch map[string]string
}

// Catalog is the set of services this deployment offers.
type Catalog struct {
	services map[string]Service
}

// DefaultCatalog returns orthotriage's two services, each on patient-view
// and on the imaging-study-available hook.
func DefaultCatalog() *Catalog {
	both := []string{HookPatientView, HookImagingStudyAvailable}
	return NewCatalog(
		Service{
			ID:    "hip-radiograph-screening",
			Title: "Hip radiograph AI screening",
			Description: "Classifies each hip on the patient's recent AP pelvis radiographs into 8 categories " +
				"(normal, osteoarthritis, osteonecrosis, femoral neck fracture, intertrochanteric fracture, " +
				"dysplasia, arthroplasty, internal fixation) and suggests a triage priority.",
			Hooks: both,
			Task:  inference.TaskHip,
		},
		Service{
			ID:    "vertebral-fracture-acuity",
			Title: "Vertebral fracture acuity",
			Description: "Estimates whether osteoporotic vertebral compression fractures on the patient's recent " +
				"lateral spine radiographs are acute or chronic, from image and clinical data.",
			Hooks:        both,
			NeedsPatient: true,
			Task:         inference.TaskVertebral,
			Prefetch:     clinicalTemplates,
		},
	)
}

// NewCatalog returns a catalog of the given services.
func NewCatalog(services ...Service) *Catalog {
	c := &Catalog{services: map[string]Service{}}
	for _, s := range services {
		c.services[s.ID] = s
	}
	return c
}

// Lookup returns the service with the given id.
func (c *Catalog) Lookup(id string) (Service, bool) {
	s, ok := c.services[id]
	return s, ok
}

// Offers reports whether s answers hook.
func (s Service) Offers(hook string) bool {
	for _, h := range s.Hooks {
		if h == hook {
			return true
		}
	}
	return false
}

// prefetch is every template the service may ask for.
func (s Service) prefetch() map[string]string {
	if len(s.Prefetch) == 0 {
		return prefetchTemplates
	}
	all := maps.Clone(prefetchTemplates)
	maps.Copy(all, s.Prefetch)
	return all
}

// Discovery returns the discovery document: one entry per service and hook,
// sorted by id then hook so the document is stable.
func (c *Catalog) Discovery() Discovery {
	var d Discovery
	for _, s := range c.services {
		for _, h := range s.Hooks {
			d.Services = append(d.Services, ServiceEntry{
				Hook:        h,
				Title:       s.Title,
				Description: s.Description,
				ID:          s.ID,
				Prefetch:    s.prefetch(),
			})
		}
	}
	sort.Slice(d.Services, func(i, j int) bool {
		a, b := d.Services[i], d.Services[j]
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Hook < b.Hook
	})
	return d
}
