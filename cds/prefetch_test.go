package cds_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/cds/cdstest"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

const (
	server     = "https://ehr.example.org/fhir"
	patientRes = `{"resourceType":"Patient","id":"p1","gender":"female"}`
	search     = "ImagingStudy?patient=Patient/p1&_sort=-started&_count=20"
)

func study(id, patient string) string {
	return fmt.Sprintf(`{"resourceType":"ImagingStudy","id":%q,"status":"available","subject":{"reference":"Patient/%s"}}`, id, patient)
}

func bundle(next string, resources ...string) string {
	var entries []string
	for _, r := range resources {
		entries = append(entries, `{"resource":`+r+`}`)
	}
	link := ""
	if next != "" {
		link = `"link":[{"relation":"next","url":"` + next + `"}],`
	}
	return `{"resourceType":"Bundle","type":"searchset",` + link + `"entry":[` + strings.Join(entries, ",") + `]}`
}

func request(hook, fhirServer, prefetch, context string) cds.Request {
	body := `{"hook":"` + hook + `","hookInstance":"h1"`
	if fhirServer != "" {
		body += `,"fhirServer":"` + fhirServer + `","fhirAuthorization":{"access_token":"secret-token","token_type":"Bearer","expires_in":300,"scope":"patient/*.read","subject":"cds"}`
	}
	if prefetch != "" {
		body += `,"prefetch":` + prefetch
	}
	body += `,"context":` + context + `}`
	req, err := cds.ParseRequest([]byte(body))
	if err != nil {
		panic(err)
	}
	return req
}

func TestResolve(t *testing.T) {
	pvContext := `{"userId":"Practitioner/u","patientId":"p1"}`
	tests := []struct {
		name     string
		service  string
		req      cds.Request
		fhir     map[string]string
		maxPages int
		wantErr  string // error code
		studies  []string
		patient  bool
		fetched  []string
	}{
		{
			name:    "all prefetched: nothing fetched",
			service: "hip-radiograph-screening",
			req:     request("patient-view", server, `{"patient":`+patientRes+`,"studies":`+bundle("", study("s1", "p1"))+`}`, pvContext),
			studies: []string{"s1"}, patient: true,
		},
		{
			name:    "missing keys are fetched with the token",
			service: "hip-radiograph-screening",
			req:     request("patient-view", server, "", pvContext),
			fhir:    map[string]string{"Patient/p1": patientRes, search: bundle("", study("s1", "p1"), study("s2", "p1"))},
			studies: []string{"s1", "s2"}, patient: true,
			fetched: []string{"Patient/p1", search},
		},
		{
			name:    "null means no data and is not fetched",
			service: "vertebral-fracture-acuity",
			req:     request("patient-view", server, `{"patient":null,"studies":null}`, pvContext),
		},
		{
			name:    "an OperationOutcome counts as missing",
			service: "hip-radiograph-screening",
			req:     request("patient-view", server, `{"patient":`+patientRes+`,"studies":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"timeout"}]}}`, pvContext),
			fhir:    map[string]string{search: bundle("", study("s1", "p1"))},
			studies: []string{"s1"}, patient: true,
			fetched: []string{search},
		},
		{
			name:    "next links are followed",
			service: "hip-radiograph-screening",
			req:     request("patient-view", server, `{"patient":`+patientRes+`,"studies":`+bundle(server+"/page2", study("s1", "p1"))+`}`, pvContext),
			fhir:    map[string]string{server + "/page2": bundle(server+"/page3", study("s2", "p1")), server + "/page3": bundle("", study("s3", "p1"))},
			studies: []string{"s1", "s2", "s3"}, patient: true,
			fetched: []string{server + "/page2", server + "/page3"},
		},
		{
			name:     "next links stop at the page limit",
			service:  "hip-radiograph-screening",
			maxPages: 2,
			req:      request("patient-view", server, `{"patient":`+patientRes+`,"studies":`+bundle(server+"/page2", study("s1", "p1"))+`}`, pvContext),
			fhir:     map[string]string{server + "/page2": bundle(server+"/page3", study("s2", "p1"))},
			studies:  []string{"s1", "s2"}, patient: true,
			fetched: []string{server + "/page2"},
		},
		{
			name:    "studies of another patient are dropped",
			service: "hip-radiograph-screening",
			req:     request("patient-view", server, `{"patient":`+patientRes+`,"studies":`+bundle("", study("s1", "p1"), study("s9", "other"))+`}`, pvContext),
			studies: []string{"s1"}, patient: true,
		},
		{
			name:    "needed data missing without fhirServer: 412",
			service: "hip-radiograph-screening",
			req:     request("patient-view", "", `{"patient":`+patientRes+`}`, pvContext),
			wantErr: orthotriage.EPrecondition,
		},
		{
			name:    "needed data missing and the server fails: 412",
			service: "hip-radiograph-screening",
			req:     request("patient-view", server, `{"patient":`+patientRes+`}`, pvContext),
			wantErr: orthotriage.EPrecondition,
			fetched: []string{search},
		},
		{
			name:    "optional patient missing without fhirServer: answered",
			service: "hip-radiograph-screening",
			req:     request("patient-view", "", `{"studies":`+bundle("", study("s1", "p1"))+`}`, pvContext),
			studies: []string{"s1"},
		},
		{
			name:    "patient needed by the nomogram: 412",
			service: "vertebral-fracture-acuity",
			req:     request("patient-view", "", `{"studies":`+bundle("", study("s1", "p1"))+`}`, pvContext),
			wantErr: orthotriage.EPrecondition,
		},
		{
			name:    "prefetched Patient of another id is refused",
			service: "vertebral-fracture-acuity",
			req:     request("patient-view", "", `{"patient":{"resourceType":"Patient","id":"p2"},"studies":null}`, pvContext),
			wantErr: orthotriage.EPrecondition,
		},
		{
			name:    "named studies: prefetched ones used, others read",
			service: "hip-radiograph-screening-imagingstudy-available",
			req: request(cds.HookImagingStudyAvailable, server, `{"patient":`+patientRes+`,"studies":`+bundle("", study("a", "p1"), study("x", "p1"))+`}`,
				`{"patientId":"p1","studies":["ImagingStudy/a","ImagingStudy/b"]}`),
			fhir:    map[string]string{"ImagingStudy/b": study("b", "p1")},
			studies: []string{"a", "b"}, patient: true,
			fetched: []string{"ImagingStudy/b"},
		},
		{
			name:    "named study that does not exist: 412",
			service: "hip-radiograph-screening-imagingstudy-available",
			req:     request(cds.HookImagingStudyAvailable, server, `{"patient":`+patientRes+`}`, `{"patientId":"p1","studies":["ImagingStudy/gone"]}`),
			wantErr: orthotriage.EPrecondition,
			fetched: []string{"ImagingStudy/gone"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := cds.DefaultCatalog().Lookup(tt.service)
			hc, err := cds.Validate(svc, tt.req)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			fake := &cdstest.FHIR{Responses: tt.fhir}
			if tt.maxPages == 0 {
				tt.maxPages = 5
			}
			r := &cds.Resolver{FHIR: fake, MaxPages: tt.maxPages, MaxStudies: 50, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			data, err := r.Resolve(t.Context(), svc, tt.req, hc)
			if tt.wantErr != "" {
				if orthotriage.ErrorCode(err) != tt.wantErr {
					t.Fatalf("error = %v (%s), want %s", err, orthotriage.ErrorCode(err), tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			var got []string
			for _, s := range data.Studies {
				got = append(got, *s.Id)
			}
			if diff := cmp.Diff(tt.studies, got); diff != "" {
				t.Errorf("studies (-want +got):\n%s", diff)
			}
			if (data.Patient != nil) != tt.patient {
				t.Errorf("patient resolved = %v, want %v", data.Patient != nil, tt.patient)
			}
			if diff := cmp.Diff(tt.fetched, fake.Paths()); diff != "" {
				t.Errorf("fetched (-want +got):\n%s", diff)
			}
			for _, c := range fake.Calls {
				if c.Server.Token != "secret-token" || c.Server.BaseURL != server {
					t.Errorf("call %s went to %q with token %q", c.Path, c.Server.BaseURL, c.Server.Token)
				}
			}
		})
	}
}

func TestResolveErrorNeverCarriesToken(t *testing.T) {
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	req := request("patient-view", server, "", `{"userId":"Practitioner/u","patientId":"p1"}`)
	hc, _ := cds.Validate(svc, req)
	fake := &cdstest.FHIR{Err: orthotriage.Errorf(orthotriage.EUnavailable, "GET %s/Patient/p1: FHIR server not reachable", server)}
	r := &cds.Resolver{FHIR: fake, MaxPages: 1, MaxStudies: 5, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	_, err := r.Resolve(t.Context(), svc, req, hc)
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("error = %v: want a failure without the token", err)
	}
	if !strings.Contains(orthotriage.ErrorMessage(err), `"studies"`) {
		t.Errorf("message %q does not name the prefetch key", orthotriage.ErrorMessage(err))
	}
}

func TestResolveEndpoints(t *testing.T) {
	ep := func(id, addr string) string {
		return `{"resourceType":"Endpoint","id":"` + id + `","status":"active","connectionType":{"code":"dicom-wado-rs"},"payloadType":[{"text":"DICOM"}],"address":"` + addr + `"}`
	}
	s1 := `{"resourceType":"ImagingStudy","id":"s1","status":"available","subject":{"reference":"Patient/p1"},` +
		`"contained":[` + ep("wado", "https://pacs.example.org/contained") + `],"endpoint":[{"reference":"#wado"}],` +
		`"series":[{"uid":"1.2","modality":{"code":"DX"},"endpoint":[{"reference":"Endpoint/fetched"},{"reference":"` + server + `/Endpoint/absolute"},{"reference":"Endpoint/missing"},{"reference":"https://elsewhere.example.org/Endpoint/x"}]}]}`
	s2 := `{"resourceType":"ImagingStudy","id":"s2","status":"available","subject":{"reference":"Patient/p1"},"endpoint":[{"reference":"Endpoint/included"}]}`
	fake := &cdstest.FHIR{Responses: map[string]string{
		"Endpoint/fetched":  ep("fetched", "https://pacs.example.org/fetched"),
		"Endpoint/absolute": ep("absolute", "https://pacs.example.org/absolute"),
	}}
	r := &cds.Resolver{FHIR: fake, MaxPages: 2, MaxStudies: 10, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	req := request(cds.HookPatientView, server, `{"patient":`+patientRes+`,"studies":`+bundle("", s1, s2, ep("included", "https://pacs.example.org/included"))+`}`,
		`{"userId":"Practitioner/u","patientId":"p1"}`)
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	hc, err := cds.Validate(svc, req)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Resolve(t.Context(), svc, req, hc)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Endpoints) != 1 || len(fake.Calls) != 0 {
		t.Errorf("before analysis: %d endpoints known (want the included one), %d FHIR reads (want none)", len(d.Endpoints), len(fake.Calls))
	}
	got := map[string]string{}
	for _, resolve := range d.ResolveEndpoints {
		for ref, e := range resolve(t.Context()) {
			got[ref] = e.Address
		}
	}
	want := map[string]string{
		"#wado":                       "https://pacs.example.org/contained",
		"Endpoint/fetched":            "https://pacs.example.org/fetched",
		server + "/Endpoint/absolute": "https://pacs.example.org/absolute",
		"Endpoint/included":           "https://pacs.example.org/included",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	if len(d.Studies) != 2 || d.Server.Token != "secret-token" || d.Server.BaseURL != server {
		t.Errorf("%d studies, server %+v", len(d.Studies), d.Server.BaseURL)
	}
	for _, c := range fake.Calls {
		if strings.Contains(c.Path, "elsewhere") {
			t.Errorf("followed a reference to another server: %s", c.Path)
		}
	}
}

func TestStudyResolvesItsEndpointsLazily(t *testing.T) {
	s := `{"resourceType":"ImagingStudy","id":"s1","status":"available","subject":{"reference":"Patient/p1"},"endpoint":[{"reference":"Endpoint/e"}]}`
	fake := &cdstest.FHIR{Responses: map[string]string{
		"ImagingStudy/s1": s,
		"Endpoint/e":      `{"resourceType":"Endpoint","id":"e","status":"active","connectionType":{"code":"dicom-wado-rs"},"payloadType":[{"text":"DICOM"}],"address":"https://pacs.example.org/wado"}`,
	}}
	r := &cds.Resolver{FHIR: fake, MaxPages: 2, MaxStudies: 10, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d, err := r.Study(t.Context(), cds.FHIRServer{BaseURL: server}, "ImagingStudy/s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.Calls) != 1 {
		t.Errorf("%d reads before the endpoints are wanted, want 1 (the study)", len(fake.Calls))
	}
	if d.FHIRServer != server || d.Patient != "" || *d.Study.Id != "s1" {
		t.Errorf("input: server %q, patient %q (want none: the study's subject), study %v", d.FHIRServer, d.Patient, d.Study.Id)
	}
	if eps := d.ResolveEndpoints(t.Context()); eps["Endpoint/e"].Address != "https://pacs.example.org/wado" {
		t.Errorf("endpoints %v", eps)
	}
	if _, err := r.Study(t.Context(), cds.FHIRServer{BaseURL: server}, "Patient/p1"); err == nil {
		t.Error("a Patient reference was read as a study")
	}
}

// prefetchOnly is a Resolver whose FHIR server holds nothing: calls are
// answered from their prefetch alone.
func prefetchOnly() *cds.Resolver {
	return &cds.Resolver{FHIR: &cdstest.FHIR{}, MaxPages: 2, MaxStudies: 10, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// resolvePrefetched resolves a hip patient-view call for Patient p1 whose
// prefetch holds the patient and the studies Bundle.
func resolvePrefetched(t *testing.T, r *cds.Resolver, studies string) cds.Data {
	t.Helper()
	req := request(cds.HookPatientView, "", `{"patient":`+patientRes+`,"studies":`+studies+`}`, `{"userId":"Practitioner/u","patientId":"p1"}`)
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	hc, _ := cds.Validate(svc, req)
	d, err := r.Resolve(t.Context(), svc, req, hc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestContainedEndpointsStayWithTheirStudy: two studies may each contain an
// Endpoint "#wado"; each study gets its own.
func TestContainedEndpointsStayWithTheirStudy(t *testing.T) {
	study := func(id, addr string) string {
		return `{"resourceType":"ImagingStudy","id":"` + id + `","status":"available","subject":{"reference":"Patient/p1"},` +
			`"contained":[{"resourceType":"Endpoint","id":"wado","status":"active","connectionType":{"code":"dicom-wado-rs"},"payloadType":[{"text":"DICOM"}],"address":"` + addr + `"}],` +
			`"endpoint":[{"reference":"#wado"}]}`
	}
	d := resolvePrefetched(t, prefetchOnly(), bundle("", study("a", "https://pacs-a.example.org"), study("b", "https://pacs-b.example.org")))
	if a, b := d.ResolveEndpoints[0](t.Context())["#wado"].Address, d.ResolveEndpoints[1](t.Context())["#wado"].Address; a != "https://pacs-a.example.org" || b != "https://pacs-b.example.org" {
		t.Errorf("study a's endpoint %q, study b's %q", a, b)
	}
}

// TestRememberedStudyIsNotWritten: calls sending the same prefetch bytes
// share one decoded ImagingStudy (memo.go); resolving its endpoints, as
// concurrent calls do, must only read it (under -race, a write into the
// shared Endpoint array's spare room fails here).
func TestRememberedStudyIsNotWritten(t *testing.T) {
	ep := func(id string) string {
		return `{"resourceType":"Endpoint","id":"` + id + `","status":"active","connectionType":{"code":"dicom-wado-rs"},"payloadType":[{"text":"DICOM"}],"address":"https://pacs.example.org/` + id + `"}`
	}
	// Three study endpoints (a decoder leaves room for a fourth) and one
	// of a series, appended after them.
	s := `{"resourceType":"ImagingStudy","id":"s1","status":"available","subject":{"reference":"Patient/p1"},` +
		`"contained":[` + ep("e1") + `,` + ep("e2") + `,` + ep("e3") + `,` + ep("e4") + `],` +
		`"endpoint":[{"reference":"#e1"},{"reference":"#e2"},{"reference":"#e3"}],` +
		`"series":[{"uid":"1.2.3.4","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"DX"},"endpoint":[{"reference":"#e4"}]}]}`
	r := prefetchOnly()
	var resolves []func(context.Context) map[string]models.Endpoint
	for range 4 { // remembered from the second sighting on
		resolves = append(resolves, resolvePrefetched(t, r, bundle("", s)).ResolveEndpoints[0])
	}
	var wg sync.WaitGroup
	got := make([]map[string]models.Endpoint, len(resolves))
	for i, resolve := range resolves {
		wg.Go(func() { got[i] = resolve(t.Context()) })
	}
	wg.Wait()
	for i, eps := range got {
		for _, id := range []string{"#e1", "#e2", "#e3", "#e4"} {
			if want := "https://pacs.example.org/" + id[1:]; eps[id].Address != want {
				t.Errorf("call %d: endpoint %s at %q, want %q", i, id, eps[id].Address, want)
			}
		}
	}
}

// TestStudiesBundleHoldsOnlyStudies: what else a studies Bundle holds (an
// included Patient, a DiagnosticReport of the same patient, an
// OperationOutcome) is not taken for an ImagingStudy.
func TestStudiesBundleHoldsOnlyStudies(t *testing.T) {
	report := `{"resourceType":"DiagnosticReport","id":"r1","status":"registered","code":{"text":"XR"},"subject":{"reference":"Patient/p1"}}`
	outcome := `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}`
	d := resolvePrefetched(t, prefetchOnly(), bundle("", report, patientRes, study("s1", "p1"), outcome))
	var ids []string
	for _, s := range d.Studies {
		ids = append(ids, *s.Id)
	}
	if len(ids) != 1 || ids[0] != "s1" {
		t.Errorf("studies %v, want only s1", ids)
	}
}

// TestBackendTokenWithCompletePrefetch: with everything prefetched no FHIR
// read happens, yet retrieval and write-back need the Backend Services
// token, so it is taken anyway.
func TestBackendTokenWithCompletePrefetch(t *testing.T) {
	r := &cds.Resolver{FHIR: &cdstest.FHIR{}, MaxPages: 2, MaxStudies: 10, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	body := `{"hook":"patient-view","hookInstance":"h1","fhirServer":"` + server + `","context":{"userId":"Practitioner/u","patientId":"p1"},` +
		`"prefetch":{"patient":` + patientRes + `,"studies":` + bundle("", study("s1", "p1")) + `}}`
	req, err := cds.ParseRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	hc, _ := cds.Validate(svc, req)
	ctx := cds.WithCaller(t.Context(), cds.Caller{Issuer: "i", FHIRServers: []string{server},
		BackendToken: func(context.Context) (string, error) { return "backend-token", nil }})
	d, err := r.Resolve(ctx, svc, req, hc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Server.Token != "backend-token" {
		t.Errorf("server token %q, want the Backend Services token", d.Server.Token)
	}
}

// TestStudiesOfTheContextPatientOnly: a study is kept only when its subject
// is the context patient as "Patient/{id}" or as the absolute URL of that
// Patient on the call's fhirServer; the same id on another server (or under
// a sibling path of the base) is another patient, and the study is dropped
// and logged without the patient id.
func TestStudiesOfTheContextPatientOnly(t *testing.T) {
	const pid = "pat-secret-123"
	withSubject := func(id, subject string) string {
		return `{"resourceType":"ImagingStudy","id":"` + id + `","status":"available","subject":{"reference":"` + subject + `"}}`
	}
	tests := []struct {
		name    string
		subject string
		kept    bool
	}{
		{name: "relative", subject: "Patient/" + pid, kept: true},
		{name: "absolute on fhirServer", subject: server + "/Patient/" + pid, kept: true},
		{name: "absolute on fhirServer, host in upper case and default port", subject: "https://EHR.example.org:443/fhir/Patient/" + pid, kept: true},
		{name: "absolute on another server", subject: "https://other.example/fhir/Patient/" + pid},
		{name: "absolute under a sibling path", subject: "https://ehr.example.org/fhir-admin/Patient/" + pid},
		{name: "absolute on another port", subject: "https://ehr.example.org:8443/fhir/Patient/" + pid},
		{name: "absolute with a dot-dot segment", subject: server + "/../other/Patient/" + pid},
		{name: "absolute with userinfo", subject: "https://u@ehr.example.org/fhir/Patient/" + pid},
		{name: "another type", subject: "Group/" + pid},
		{name: "nested path", subject: "x/Patient/" + pid},
		{name: "another patient", subject: "Patient/" + pid + "0"},
		{name: "empty", subject: ""},
	}
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			r := &cds.Resolver{FHIR: &cdstest.FHIR{}, MaxPages: 1, MaxStudies: 10, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
			req := request(cds.HookPatientView, server, `{"patient":null,"studies":`+bundle("", withSubject("s1", tt.subject))+`}`,
				`{"userId":"Practitioner/u","patientId":"`+pid+`"}`)
			hc, err := cds.Validate(svc, req)
			if err != nil {
				t.Fatal(err)
			}
			d, err := r.Resolve(t.Context(), svc, req, hc)
			if err != nil {
				t.Fatal(err)
			}
			if kept := len(d.Studies) == 1; kept != tt.kept {
				t.Errorf("study kept = %v, want %v", kept, tt.kept)
			}
			if !tt.kept && !strings.Contains(logs.String(), "skipping ImagingStudy of another subject") {
				t.Errorf("dropped study not logged: %s", logs.String())
			}
			if strings.Contains(logs.String(), pid) {
				t.Errorf("logs name the patient: %s", logs.String())
			}
		})
	}
}

// TestAbsoluteEndpointReferences: an absolute Endpoint reference is read
// when it lies under fhirServer after normalisation (host case, default
// port), never when it is under a sibling path or climbs out of the base.
func TestAbsoluteEndpointReferences(t *testing.T) {
	ep := `{"resourceType":"Endpoint","id":"e","status":"active","connectionType":{"code":"dicom-wado-rs"},"payloadType":[{"text":"DICOM"}],"address":"https://pacs.example.org/wado"}`
	tests := []struct {
		name    string
		ref     string
		fetched []string
	}{
		{name: "under fhirServer", ref: server + "/Endpoint/e", fetched: []string{"Endpoint/e"}},
		{name: "host in upper case, default port", ref: "https://EHR.example.org:443/fhir/Endpoint/e", fetched: []string{"Endpoint/e"}},
		{name: "sibling path", ref: "https://ehr.example.org/fhir-admin/Endpoint/e"},
		{name: "dot-dot segment", ref: server + "/../fhir-admin/Endpoint/e"},
		{name: "encoded dot-dot", ref: server + "/Endpoint/%2e%2e"},
		{name: "another server", ref: "https://other.example/fhir/Endpoint/e"},
		{name: "userinfo", ref: "https://u:p@ehr.example.org/fhir/Endpoint/e"},
	}
	svc, _ := cds.DefaultCatalog().Lookup("hip-radiograph-screening")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &cdstest.FHIR{Responses: map[string]string{"Endpoint/e": ep}}
			r := &cds.Resolver{FHIR: fake, MaxPages: 1, MaxStudies: 10, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			s := `{"resourceType":"ImagingStudy","id":"s1","status":"available","subject":{"reference":"Patient/p1"},"endpoint":[{"reference":"` + tt.ref + `"}]}`
			req := request(cds.HookPatientView, server, `{"patient":`+patientRes+`,"studies":`+bundle("", s)+`}`, `{"userId":"Practitioner/u","patientId":"p1"}`)
			hc, err := cds.Validate(svc, req)
			if err != nil {
				t.Fatal(err)
			}
			d, err := r.Resolve(t.Context(), svc, req, hc)
			if err != nil {
				t.Fatal(err)
			}
			got := d.ResolveEndpoints[0](t.Context())
			if diff := cmp.Diff(tt.fetched, fake.Paths()); diff != "" {
				t.Errorf("fetched (-want +got):\n%s", diff)
			}
			if _, ok := got[tt.ref]; ok != (tt.fetched != nil) {
				t.Errorf("endpoint resolved = %v", ok)
			}
		})
	}
}

// TestStudyClinicalDataOnlyForItsServersPatient: a precomputed study reads
// the nomogram's clinical data from its subject only when the subject is a
// Patient on the job's FHIR server.
func TestStudyClinicalDataOnlyForItsServersPatient(t *testing.T) {
	tests := []struct {
		name     string
		subject  string
		clinical bool
	}{
		{name: "relative", subject: "Patient/p1", clinical: true},
		{name: "absolute on the server", subject: server + "/Patient/p1", clinical: true},
		{name: "absolute on another server", subject: "https://other.example/fhir/Patient/p1"},
		{name: "absolute under a sibling path", subject: "https://ehr.example.org/fhir-admin/Patient/p1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &cdstest.FHIR{Responses: map[string]string{
				"ImagingStudy/s1": `{"resourceType":"ImagingStudy","id":"s1","status":"available","subject":{"reference":"` + tt.subject + `"}}`,
			}}
			r := &cds.Resolver{FHIR: fake, MaxPages: 1, MaxStudies: 10, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			d, err := r.Study(t.Context(), cds.FHIRServer{BaseURL: server}, "ImagingStudy/s1")
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Clinical != nil; got != tt.clinical {
				t.Errorf("clinical data read = %v, want %v", got, tt.clinical)
			}
		})
	}
}
