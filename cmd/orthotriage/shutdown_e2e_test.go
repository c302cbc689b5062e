package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
)

// holdingProxy forwards to target, holding the requests hold picks until
// released; one whose caller gives up first is counted as cancelled.
type holdingProxy struct {
	*httptest.Server
	held               chan string // the path of each request held
	release            chan struct{}
	cancelled, through atomic.Int32
}

func newHoldingProxy(t *testing.T, target string, hold func(*http.Request) bool) *holdingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = ""
	p := &holdingProxy{held: make(chan string, 10), release: make(chan struct{})}
	forward := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold(r) {
			p.held <- r.URL.Path
			select {
			case <-r.Context().Done():
				p.cancelled.Add(1)
				return
			case <-p.release:
			}
			p.through.Add(1)
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// base is target's URL as seen through the proxy.
func (p *holdingProxy) base(t *testing.T, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return p.URL + u.Path
}

// TestSIGTERMWithWorkInFlight sends SIGTERM to the binary while a
// write-back is held by the FHIR server, a hook's study is still being
// retrieved past the hook's budget, a precompute job's study is being
// retrieved and another job waits in the queue. The service must finish
// the write-back, cancel the retrievals rather than wait them out, never
// use a closed model session, and exit 0.
func TestSIGTERMWithWorkInFlight(t *testing.T) {
	e := newResultsEnvWith(t, "") // jobs have no EHR token to lend: an open FHIR server
	orthanc := strings.TrimSuffix(e.dicomweb, "/dicom-web")
	pacs := newHoldingProxy(t, orthanc, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/instances/") })
	ehr := newHoldingProxy(t, e.fhirBase, func(r *http.Request) bool { return r.Method == http.MethodPost })
	fhirBase, slowDICOMweb := ehr.base(t, e.fhirBase), pacs.URL+"/dicom-web"

	// Studies whose pixels come through the holding PACS proxy.
	endpoint := fhirCreate(t, e.fhirBase, "", `{"resourceType":"Endpoint","status":"active",`+
		`"connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"dicom-wado-rs"},`+
		`"payloadType":[{"text":"DICOM"}],"address":"`+slowDICOMweb+`"}`)
	slow := map[string]string{}
	for name, i := range map[string]int{"hook": normalCase, "job": oaCase, "queued": 4} {
		pc := phantom.Pelvis(3, i)
		if i == 4 {
			uploadDICOM(t, orthanc, pc.Image)
		}
		slow[name] = fhirCreate(t, e.fhirBase, "", studyOn(e.patient, endpoint, pc.Image))
	}
	issuers, err := os.ReadFile(e.issuers)
	if err != nil {
		t.Fatal(err)
	}
	reg := strings.NewReplacer("fhir_servers: ["+e.fhirBase+"]", "fhir_servers: ["+fhirBase+"]",
		"dicomweb_bases: ["+e.dicomweb+"]", "dicomweb_bases: ["+e.dicomweb+", "+slowDICOMweb+"]").Replace(string(issuers))
	issuersFile := filepath.Join(t.TempDir(), "issuers.yaml")
	os.WriteFile(issuersFile, []byte(reg), 0o600)
	const admin = "admin-secret-0123456789abcdef"
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+issuersFile, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_RESULTS_WRITE_BACK=true", "ORTHOTRIAGE_PRECOMPUTE_ADMIN_TOKEN="+admin, "ORTHOTRIAGE_PRECOMPUTE_WORKERS=1",
		"ORTHOTRIAGE_ONNXRUNTIME_MODELS=hip-000")

	// A fracture: a critical card, and its write-back held by the FHIR server.
	url := s.base + "/cds-services/hip-radiograph-screening-imagingstudy-available"
	a := e.callHook(t, url, hookBody("org.orthotriage.imagingstudy-available", fhirBase, resultsToken,
		`{"patientId":"`+e.patient+`","studies":["ImagingStudy/`+e.studies[fnfCase]+`"]}`))
	if len(a.Cards) != 1 || a.Cards[0].Indicator != "critical" {
		t.Fatalf("fracture study: %s\n%s", a.raw, s.logText())
	}
	waitHeld(t, ehr, s)
	// A study whose retrieval outlasts the hook's budget: answered pending.
	_, study := testenv.FHIRDo(t, e.fhirBase, "", http.MethodGet, "ImagingStudy/"+slow["hook"], nil)
	url = s.base + "/cds-services/hip-radiograph-screening"
	e.callHook(t, url, strings.TrimSuffix(hookBody("patient-view", fhirBase, resultsToken, `{"userId":"Practitioner/1","patientId":"`+e.patient+`"}`), "}")+
		`,"prefetch":{"patient":{"resourceType":"Patient","id":"`+e.patient+`"},"studies":{"resourceType":"Bundle","type":"searchset","entry":[{"resource":`+string(study)+`}]}}}`)
	// Two precompute jobs: one being retrieved, one queued behind it.
	body := `{"fhirServer":"` + fhirBase + `","studies":["ImagingStudy/` + slow["job"] + `","ImagingStudy/` + slow["queued"] + `"]}`
	if status, out := call(t, http.MethodPost, s.base+"/api/v1/studies/analyze", body, admin); status != 202 {
		t.Fatalf("analyze = %d %s", status, out)
	}
	waitHeld(t, pacs, s)
	waitHeld(t, pacs, s)

	time.AfterFunc(300*time.Millisecond, func() { close(ehr.release) }) // the write-back ends during the drain
	start := time.Now()
	s.stop(t) // SIGTERM; exit 0 and "stopped" within 30 s
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	logs := s.logText()
	if !strings.Contains(logs, `"msg":"write-back stored"`) || ehr.through.Load() != 1 {
		t.Errorf("the write-back in flight did not finish (%d through the FHIR proxy):\n%s", ehr.through.Load(), logs)
	}
	if n := pacs.cancelled.Load(); n != 2 {
		t.Errorf("%d held retrievals ended by their caller, want 2 (the hook's, the job's)", n)
	}
	for _, bad := range []string{"session closed", "used after close", "left open"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the logs say %q:\n%s", bad, logs)
		}
	}
	if !strings.Contains(logs, `"msg":"precompute job given back: worker stopping"`) {
		t.Errorf("the job in progress was not given back:\n%s", logs)
	}
}

// waitHeld waits for one more request held by p.
func waitHeld(t *testing.T, p *holdingProxy, s *service) {
	t.Helper()
	select {
	case <-p.held:
	case <-time.After(20 * time.Second):
		t.Fatalf("no request reached the holding proxy within 20 s:\n%s", s.logText())
	}
}

// studyOn is an ImagingStudy of patient with img's one instance, behind
// endpoint.
func studyOn(patient, endpoint string, im imaging.Radiograph) string {
	return fmt.Sprintf(`{"resourceType":"ImagingStudy","status":"available",`+
		`"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:%s"}],"subject":{"reference":"Patient/%s"},`+
		`"started":"2026-11-25T08:00:00Z","endpoint":[{"reference":"Endpoint/%s"}],`+
		`"series":[{"uid":"%s","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"%s"},`+
		`"bodySite":{"system":"http://snomed.info/sct","code":"12921003","display":"Pelvis"},`+
		`"instance":[{"uid":"%s","sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:%s"}}]}]}`,
		im.StudyInstanceUID, patient, endpoint, im.SeriesInstanceUID, im.Modality, im.SOPInstanceUID, im.SOPClassUID)
}
