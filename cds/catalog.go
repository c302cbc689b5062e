package cds

import (
	"maps"
	"slices"
	"sort"
	"strings"

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

// Service is one CDS service: a model task offered on one or more hooks.
//
// Every (service, hook) pair is its own discovery entry with its own id, so
// that an EHR or the CDS Hooks sandbox that keys services by id keeps them
// all, and each has its own URL. The scheme is stable:
//
//   - on patient-view the id is the service's ID ("hip-radiograph-screening"),
//     so registrations made before the ids were split go on working;
//   - on any other hook it is ID + "-" + the hook's name without its
//     reverse-domain prefix: on org.orthotriage.imagingstudy-available,
//     "hip-radiograph-screening-imagingstudy-available".
//
// A call on a hook its id does not declare is answered 400 naming the id to
// use (see Validate).
type Service struct {
	// ID is the service's id on patient-view and the stem of its ids on
	// the other hooks (see HookID).
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

	// hookIDs maps each hook of the service to its id on that hook.
	hookIDs map[string]string
}

// Catalog is the set of services this deployment offers.
type Catalog struct {
	services  map[string]Service // by Service.ID: one per model task
	endpoints map[string]endpoint
}

// endpoint is one discovery entry: a service on one hook.
type endpoint struct {
	service string // Service.ID
	hook    string
}

// DefaultCatalog returns orthotriage's two services, each on patient-view
// and on the imaging-study-available hook: four ids.
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

// HookID returns the discovery id of the service whose ID is id on hook:
// id itself on patient-view, id + "-" + the hook's last dot-separated part
// on any other hook.
func HookID(id, hook string) string {
	if hook == HookPatientView {
		return id
	}
	return id + "-" + hook[strings.LastIndex(hook, ".")+1:]
}

// NewCatalog returns a catalog of the given services, each reachable by
// one id per hook (see HookID).
func NewCatalog(services ...Service) *Catalog {
	c := &Catalog{services: map[string]Service{}, endpoints: map[string]endpoint{}}
	for _, s := range services {
		s.hookIDs = map[string]string{}
		for _, h := range s.Hooks {
			id := HookID(s.ID, h)
			s.hookIDs[h] = id
			c.endpoints[id] = endpoint{service: s.ID, hook: h}
		}
		c.services[s.ID] = s
	}
	return c
}

// Lookup returns the service called by id: its Hooks are the one hook that
// id declares, and its ID is id.
func (c *Catalog) Lookup(id string) (Service, bool) {
	ep, ok := c.endpoints[id]
	if !ok {
		return Service{}, false
	}
	s := c.services[ep.service]
	s.ID = id
	s.Hooks = []string{ep.hook}
	return s, true
}

// Offers reports whether s answers hook.
func (s Service) Offers(hook string) bool {
	return slices.Contains(s.Hooks, hook)
}

// IDForHook returns the id under which the same service answers hook, and
// false when it does not answer hook under any id.
func (s Service) IDForHook(hook string) (string, bool) {
	id, ok := s.hookIDs[hook]
	return id, ok
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
// each with its own id, sorted by id so the document is stable.
func (c *Catalog) Discovery() Discovery {
	var d Discovery
	for id, ep := range c.endpoints {
		s := c.services[ep.service]
		d.Services = append(d.Services, ServiceEntry{
			Hook:        ep.hook,
			Title:       s.Title,
			Description: s.Description,
			ID:          id,
			Prefetch:    s.prefetch(),
		})
	}
	sort.Slice(d.Services, func(i, j int) bool { return d.Services[i].ID < d.Services[j].ID })
	return d
}

// Tasks are the model tasks of the catalog's services, each once, sorted:
// what a study is analysed for ahead of any hook (precompute).
func (c *Catalog) Tasks() []string {
	var tasks []string
	for _, s := range c.services {
		if !slices.Contains(tasks, s.Task) {
			tasks = append(tasks, s.Task)
		}
	}
	slices.Sort(tasks)
	return tasks
}
