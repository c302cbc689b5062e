package cds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/internal/textx"
	"github.com/orthotriage/orthotriage/internal/urlx"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// FHIRServer is where, and with which bearer token, missing prefetch data is
// fetched. Token must never be logged or put in an error. It is the
// analysis room's type: the use case reads precompute jobs' studies from,
// and writes results back to, the same servers.
type FHIRServer = analysis.FHIRServer

// FHIRSource fetches FHIR data for a hook call; fhir.Client implements it.
// Get takes a path relative to the server's base ("Patient/1",
// "ImagingStudy?patient=...") or an absolute URL on the server's origin (a
// Bundle's next link) and returns the JSON body. Its errors carry an
// orthotriage error code (not-found, unavailable, unauthorized, ...).
type FHIRSource interface {
	Get(ctx context.Context, server FHIRServer, pathOrURL string) (json.RawMessage, error)
}

// Resolver turns a hook call's prefetch into the data the services need,
// fetching from the EHR's FHIR server whatever the EHR did not prefetch.
type Resolver struct {
	FHIR       FHIRSource // nil: never fetch
	MaxPages   int        // search Bundle pages followed, the first included
	MaxStudies int        // ImagingStudy resources kept
	Log        *slog.Logger
	// decoded remembers the prefetch resources decoded before (memo.go).
	decoded decodedMemos
}

// Data is what a hook call resolved to.
type Data struct {
	Patient *models.Patient // nil when the EHR said there is none
	Studies []models.ImagingStudy
	// Endpoints are the Endpoint resources a search Bundle included, keyed
	// "Endpoint/{id}". ResolveEndpoints[i] gives study i's own (contained,
	// keyed as written, "#wado"; or read from the FHIR server) when first
	// called: only a study not in the cache needs them, so a cached answer
	// costs no FHIR read, and contained ids of two studies never mix.
	Endpoints        map[string]models.Endpoint
	ResolveEndpoints []func(ctx context.Context) map[string]models.Endpoint
	// Server is the FHIR server and the token used for it (the call's
	// fhirAuthorization, or a Backend Services token); never log Token.
	Server FHIRServer
	// Clinical gives the patient's clinical data for the vertebral
	// nomogram, read when first called; nil for other services.
	Clinical func(ctx context.Context, at time.Time) analysis.Clinical
}

// Resolve gathers the Patient and ImagingStudy resources for a validated
// call. Prefetch rules of CDS Hooks 2.0: a missing key is fetched from
// fhirServer; a null value means no data; an OperationOutcome value counts as
// missing. It fails with a precondition error only when data the service
// needs is missing and cannot be fetched.
func (r *Resolver) Resolve(ctx context.Context, svc Service, req Request, hc HookContext) (Data, error) {
	var d Data
	server := FHIRServer{BaseURL: req.FHIRServer}
	if req.FHIRAuthorization != nil {
		server.Token = req.FHIRAuthorization.AccessToken
	}
	f := &fetcher{r: r, server: server, req: req}
	if caller, ok := CallerFrom(ctx); ok && server.Token == "" {
		f.backendToken = caller.BackendToken
	}

	patient, err := f.resource(ctx, PrefetchPatient, render(prefetchTemplates[PrefetchPatient], hc))
	if err != nil {
		if svc.NeedsPatient {
			return d, err
		}
		r.Log.WarnContext(ctx, "patient not resolved", "hookInstance", req.HookInstance, "err", err)
	} else if patient != nil {
		p, err := r.decoded.patients.decode(patient, models.UnmarshalPatient)
		if err == nil && (resourceType(patient) != "Patient" || deref(p.Id) != hc.PatientID) {
			// Neither id is named: patient ids are PHI, and errors are logged.
			err = errors.New("it is not the Patient of context.patientId")
		}
		if err != nil {
			return d, f.fail(PrefetchPatient, true, orthotriage.Errorf(orthotriage.EInvalid, "prefetch %s is not a valid Patient: %v", PrefetchPatient, err))
		}
		d.Patient = &p
	}

	var studies []json.RawMessage
	switch req.Hook {
	case HookImagingStudyAvailable:
		studies, err = f.namedStudies(ctx, hc.StudyIDs)
	default:
		studies, err = f.search(ctx, PrefetchStudies, render(prefetchTemplates[PrefetchStudies], hc))
	}
	if err != nil {
		return Data{}, err
	}
	d.Endpoints = map[string]models.Endpoint{}
	var contained []json.RawMessage
	for _, raw := range studies {
		switch typ := resourceType(raw); typ {
		case "ImagingStudy":
		case "Endpoint": // a search Bundle may include them
			if ep, err := models.UnmarshalEndpoint(raw); err == nil && ep.Id != nil {
				d.Endpoints["Endpoint/"+*ep.Id] = ep
			}
			continue
		default: // an included Patient, an OperationOutcome, ...: not a study
			r.Log.DebugContext(ctx, "skipping a resource of the studies that is no ImagingStudy", "hookInstance", req.HookInstance, "resourceType", textx.Clip(typ, 64))
			continue
		}
		s, err := r.decoded.studies.decode(raw, models.UnmarshalImagingStudy)
		if err != nil {
			r.Log.WarnContext(ctx, "skipping unreadable ImagingStudy", "hookInstance", req.HookInstance, "err", err)
			continue
		}
		if !subjectIs(&s.Subject, hc.PatientID, server.BaseURL) {
			r.Log.WarnContext(ctx, "skipping ImagingStudy of another subject", "hookInstance", req.HookInstance, "study", deref(s.Id))
			continue
		}
		if len(d.Studies) == r.MaxStudies {
			r.Log.WarnContext(ctx, "study limit reached", "hookInstance", req.HookInstance, "limit", r.MaxStudies)
			break
		}
		d.Studies = append(d.Studies, s)
		contained = append(contained, raw)
	}
	for i, s := range d.Studies {
		d.ResolveEndpoints = append(d.ResolveEndpoints, lazyEndpoints(f, s, contained[i], d.Endpoints))
	}
	// A Backend Services token is taken now, not at the first FHIR read:
	// with everything prefetched there may be none, and retrieval
	// (same-origin DICOMweb) and write-back need it too.
	if f.backendToken != nil && f.server.BaseURL != "" {
		if tok, err := f.backendToken(ctx); err != nil {
			r.Log.WarnContext(ctx, "no SMART Backend Services token: retrieval and write-back go without", "hookInstance", req.HookInstance, "err", err)
		} else {
			f.server.Token, f.backendToken = tok, nil
		}
	}
	d.Server = f.server
	if svc.Task == inference.TaskVertebral {
		patient := d.Patient
		d.Clinical = lazyClinical(f, func(context.Context) *models.Patient { return patient }, hc)
	}
	return d, nil
}

// lazyEndpoints resolves one study's endpoints once, on first call: the
// ones known already (a search Bundle's) plus its contained and referenced
// ones.
func lazyEndpoints(f *fetcher, study models.ImagingStudy, raw json.RawMessage, known map[string]models.Endpoint) func(context.Context) map[string]models.Endpoint {
	var once sync.Once
	all := maps.Clone(known)
	if all == nil {
		all = map[string]models.Endpoint{}
	}
	return func(ctx context.Context) map[string]models.Endpoint {
		once.Do(func() { f.endpoints(ctx, study, raw, all) })
		return all
	}
}

// endpoints adds the Endpoints study points at (its own and its series')
// to into: contained ones from raw, the others read from the FHIR server.
// One that cannot be had is logged and left out; analysis of the series then
// says so.
func (f *fetcher) endpoints(ctx context.Context, s models.ImagingStudy, raw json.RawMessage, into map[string]models.Endpoint) {
	// A copy: s may be the memo's decoding, shared by every call that
	// sent the same bytes (memo.go), and appending to its Endpoint could
	// write into spare room of that shared array.
	refs := slices.Clone(s.Endpoint)
	for _, se := range s.Series {
		refs = append(refs, se.Endpoint...)
	}
	var inner struct {
		Contained []json.RawMessage `json:"contained"`
	}
	for _, r := range refs {
		ref := deref(r.Reference)
		if _, ok := into[ref]; ok || ref == "" {
			continue
		}
		if id, ok := strings.CutPrefix(ref, "#"); ok {
			if inner.Contained == nil {
				_ = json.Unmarshal(raw, &inner)
			}
			for _, c := range inner.Contained {
				if resourceID(c, "Endpoint") == id {
					if ep, err := models.UnmarshalEndpoint(c); err == nil {
						into[ref] = ep
					}
				}
			}
			continue
		}
		path := ref
		if rest, ok := urlx.Under(f.server.BaseURL, ref); ok {
			path = rest // an absolute reference on the call's FHIR server
		}
		if !strings.HasPrefix(path, "Endpoint/") || strings.Count(path, "/") != 1 || path == "Endpoint/" {
			// The reference itself is not logged: one to another server may name anything.
			f.r.Log.WarnContext(ctx, "endpoint reference not followed: not Endpoint/{id} on fhirServer", "hookInstance", f.req.HookInstance, "study", deref(s.Id))
			continue
		}
		body, err := f.get(ctx, "Endpoint", path)
		if err == nil && resourceType(body) != "Endpoint" {
			err = fmt.Errorf("read Endpoint returned a %q", resourceType(body))
		}
		if err != nil {
			f.r.Log.WarnContext(ctx, "endpoint not resolved", "hookInstance", f.req.HookInstance, "study", deref(s.Id), "err", err)
			continue
		}
		if ep, err := models.UnmarshalEndpoint(body); err == nil {
			into[ref] = ep
		}
	}
}

// fetcher resolves prefetch keys for one call.
type fetcher struct {
	r            *Resolver
	server       FHIRServer
	req          Request
	backendToken func(context.Context) (string, error) // asked once, on the first fetch
}

// prefetched returns the EHR's value for key: (value, true) when usable,
// (nil, true) for an explicit null, (nil, false) when missing or an
// OperationOutcome.
func (f *fetcher) prefetched(key string) (json.RawMessage, bool) {
	v, ok := f.req.Prefetch[key]
	if !ok {
		return nil, false
	}
	v = bytes.TrimSpace(v)
	if string(v) == "null" || len(v) == 0 {
		return nil, true
	}
	if resourceType(v) == "OperationOutcome" {
		return nil, false
	}
	return v, true
}

// get fetches pathOrURL, turning any failure into a precondition error
// naming key.
func (f *fetcher) get(ctx context.Context, key, pathOrURL string) (json.RawMessage, error) {
	if f.server.BaseURL == "" || f.r.FHIR == nil {
		return nil, orthotriage.Errorf(orthotriage.EPrecondition,
			"prefetch %q was not provided and no fhirServer was given to fetch it from", key)
	}
	if f.backendToken != nil {
		tok, err := f.backendToken(ctx)
		if err != nil {
			return nil, &orthotriage.Error{Code: orthotriage.EPrecondition,
				Message: "no fhirAuthorization was given and a SMART Backend Services token could not be obtained", Err: err}
		}
		f.server.Token, f.backendToken = tok, nil
	}
	body, err := f.r.FHIR.Get(ctx, f.server, pathOrURL)
	if err != nil {
		return nil, f.fail(key, false, err)
	}
	return body, nil
}

func (f *fetcher) fail(key string, prefetched bool, err error) error {
	where := "fetching it from fhirServer"
	if prefetched {
		where = "reading the prefetched value"
	}
	return &orthotriage.Error{
		Code:    orthotriage.EPrecondition,
		Message: fmt.Sprintf("data for %q could not be obtained (%s): %s", key, where, orthotriage.ErrorMessage(err)),
		Err:     err,
	}
}

// resource resolves a single-resource key. It returns nil, nil when the EHR
// said there is no such data.
func (f *fetcher) resource(ctx context.Context, key, path string) (json.RawMessage, error) {
	if v, ok := f.prefetched(key); ok {
		return v, nil
	}
	return f.get(ctx, key, path)
}

// search resolves a search key to the resources of its Bundle, following
// next links up to MaxPages pages.
func (f *fetcher) search(ctx context.Context, key, query string) ([]json.RawMessage, error) {
	page, ok := f.prefetched(key)
	if ok && page == nil {
		return nil, nil
	}
	if !ok {
		var err error
		if page, err = f.get(ctx, key, query); err != nil {
			return nil, err
		}
	}
	var out []json.RawMessage
	for n := 1; ; n++ {
		b, err := f.r.decoded.bundles.decode(page, models.UnmarshalBundle)
		if err != nil || resourceType(page) != "Bundle" {
			return nil, f.fail(key, ok && n == 1, orthotriage.Errorf(orthotriage.EInvalid, "not a FHIR Bundle"))
		}
		for _, e := range b.Entry {
			if e.Search != nil && e.Search.Mode != nil && e.Search.Mode.Code() == "outcome" {
				continue
			}
			if len(e.Resource) > 0 {
				out = append(out, e.Resource)
			}
		}
		next := nextLink(b)
		if next == "" || len(out) >= f.r.MaxStudies {
			return out, nil
		}
		if n >= f.r.MaxPages {
			f.r.Log.WarnContext(ctx, "search page limit reached", "hookInstance", f.req.HookInstance, "key", key, "pages", n)
			return out, nil
		}
		if page, err = f.get(ctx, key, next); err != nil {
			// What was read stays usable; a broken next link loses only the rest.
			f.r.Log.WarnContext(ctx, "next page not fetched", "hookInstance", f.req.HookInstance, "key", key, "page", n+1, "err", err)
			return out, nil
		}
	}
}

// namedStudies resolves the studies named by the imaging-study-available
// context: those the prefetched Bundle holds are taken from it, the others
// are read one by one.
func (f *fetcher) namedStudies(ctx context.Context, ids []string) ([]json.RawMessage, error) {
	have := map[string]json.RawMessage{}
	if v, ok := f.prefetched(PrefetchStudies); ok && v != nil {
		// Unreadable prefetch is treated as missing: each study is then read.
		if b, err := models.UnmarshalBundle(v); err == nil {
			for _, e := range b.Entry {
				if id := resourceID(e.Resource, "ImagingStudy"); id != "" {
					have[id] = e.Resource
				}
			}
		}
	}
	var out []json.RawMessage
	for _, id := range ids {
		if raw, ok := have[id]; ok {
			out = append(out, raw)
			continue
		}
		raw, err := f.get(ctx, PrefetchStudies, "ImagingStudy/"+id)
		if err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, nil
}

func nextLink(b models.Bundle) string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.Url
		}
	}
	return ""
}

// resourceType is the resource's "resourceType". FHIR servers write it
// first, so it is read from the first member without decoding the rest (a
// resource whose first member is another is decoded in full); whether the
// rest is valid is for the resource's own decoding to say.
func resourceType(raw json.RawMessage) string {
	if t, ok := firstResourceType(raw); ok {
		return t
	}
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return ""
	}
	return r.ResourceType
}

// firstResourceType reads `{"resourceType":"X"` at the start of raw (JSON
// whitespace allowed); ok is false for anything else, including a value
// with escapes.
func firstResourceType(raw []byte) (string, bool) {
	i := 0
	skip := func() {
		for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
			i++
		}
	}
	expect := func(lit string) bool {
		skip()
		if !bytes.HasPrefix(raw[i:], []byte(lit)) {
			return false
		}
		i += len(lit)
		return true
	}
	if !expect("{") || !expect(`"resourceType"`) || !expect(":") || !expect(`"`) {
		return "", false
	}
	end := bytes.IndexByte(raw[i:], '"')
	if end < 0 || bytes.IndexByte(raw[i:i+end], '\\') >= 0 {
		return "", false
	}
	return string(raw[i : i+end]), true
}

func resourceID(raw json.RawMessage, wantType string) string {
	var r struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if json.Unmarshal(raw, &r) != nil || r.ResourceType != wantType {
		return ""
	}
	return r.ID
}

// subjectIs reports whether a study's subject is the context patient:
// "Patient/{id}", or the absolute URL of that Patient on the call's FHIR
// server. The same id on another server is another patient.
func subjectIs(ref *models.Reference, patientID, fhirServer string) bool {
	if ref == nil {
		return false
	}
	id, ok := analysis.PatientOf(deref(ref.Reference), fhirServer)
	return ok && id == patientID
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// render fills a prefetch template's tokens ({{context.patientId}}) from a
// validated context; an unknown token renders empty. The values were checked
// against the FHIR id grammar, so they need no escaping. It runs on every
// call, prefetched or not, so it scans rather than matching a pattern.
func render(template string, hc HookContext) string {
	var b strings.Builder
	for {
		open := strings.Index(template, "{{")
		if open < 0 {
			break
		}
		n := strings.Index(template[open+2:], "}}")
		if n < 0 {
			break
		}
		b.WriteString(template[:open])
		switch template[open+2 : open+2+n] {
		case "context.patientId":
			b.WriteString(hc.PatientID)
		case "context.encounterId":
			b.WriteString(hc.EncounterID)
		case "context.userId":
			b.WriteString(hc.UserID)
		}
		template = template[open+2+n+2:]
	}
	b.WriteString(template)
	return b.String()
}
