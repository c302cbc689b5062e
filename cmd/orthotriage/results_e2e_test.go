package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/auth/authtest"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/phantom"
)

// Phantom cases of the held-out test seed (3) used below; the test checks
// the generator still draws these truths.
const (
	fnfCase    = 13 // right hip osteoarthritis, left femoral neck fracture (both typical)
	normalCase = 7  // both hips normal
	oaCase     = 2  // right normal, left osteoarthritis
)

// resultsEnv is a FHIR test server and an Orthanc holding phantom studies,
// registered for one EHR issuer.
type resultsEnv struct {
	fhirBase, dicomweb, patient string
	studies                     map[int]string // phantom case -> ImagingStudy id
	issuers                     string         // issuers file
	sign                        func(url string) string
}

const resultsToken = "results-e2e-token"

func newResultsEnv(t testing.TB) *resultsEnv {
	t.Helper()
	return newResultsEnvWith(t, resultsToken)
}

// newResultsEnvWith is newResultsEnv with the token the FHIR server demands
// ("" for none: precompute jobs, which have no EHR token to lend).
func newResultsEnvWith(t testing.TB, serverToken string) *resultsEnv {
	t.Helper()
	e := &resultsEnv{fhirBase: testenv.FHIRServer(t, serverToken), studies: map[int]string{}}
	orthanc := testenv.Orthanc(t, "", "")
	e.dicomweb = orthanc + "/dicom-web"
	e.patient = fhirCreate(t, e.fhirBase, resultsToken, `{"resourceType":"Patient","gender":"female","birthDate":"1941-03-02"}`)
	endpoint := e.createEndpoint(t)
	for k, i := range []int{fnfCase, normalCase, oaCase} {
		pc := phantom.Pelvis(3, i)
		uploadDICOM(t, orthanc, pc.Image)
		im := pc.Image
		e.studies[i] = fhirCreate(t, e.fhirBase, resultsToken, fmt.Sprintf(`{"resourceType":"ImagingStudy","status":"available",`+
			`"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:%s"}],"subject":{"reference":"Patient/%s"},`+
			`"started":"2026-11-2%dT08:00:00Z","endpoint":[{"reference":"Endpoint/%s"}],`+
			`"series":[{"uid":"%s","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"%s"},`+
			`"bodySite":{"system":"http://snomed.info/sct","code":"12921003","display":"Pelvis"},`+
			`"instance":[{"uid":"%s","sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:%s"}}]}]}`,
			im.StudyInstanceUID, e.patient, k+1, endpoint, im.SeriesInstanceUID, im.Modality, im.SOPInstanceUID, im.SOPClassUID))
	}
	if pc := phantom.Pelvis(3, fnfCase); pc.Left.Class != "fnf" || pc.Left.Difficulty != "typical" {
		t.Fatalf("phantom case %d is now %+v: pick another typical femoral neck fracture", fnfCase, pc.Left)
	}
	if pc := phantom.Pelvis(3, normalCase); pc.Left.Class != "normal" || pc.Right.Class != "normal" {
		t.Fatalf("phantom case %d is no longer normal on both sides", normalCase)
	}
	const iss = "https://ehr.example.org"
	key := authtest.NewKey(t, "ehr-1", "ES384")
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	e.issuers = filepath.Join(dir, "issuers.yaml")
	os.WriteFile(jwks, authtest.JWKS(key), 0o600)
	os.WriteFile(e.issuers, []byte("- iss: "+iss+"\n  jwks_file: "+jwks+"\n  fhir_servers: ["+e.fhirBase+"]\n  dicomweb_bases: ["+e.dicomweb+"]\n"), 0o600)
	e.sign = func(url string) string { return authtest.Sign(t, key, authtest.Claims(iss, url), nil) }
	return e
}

// createEndpoint registers the Orthanc's DICOMweb base as an Endpoint.
func (e *resultsEnv) createEndpoint(t testing.TB) string {
	t.Helper()
	return fhirCreate(t, e.fhirBase, resultsToken, `{"resourceType":"Endpoint","status":"active",`+
		`"connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"dicom-wado-rs"},`+
		`"payloadType":[{"text":"DICOM"}],"address":"`+e.dicomweb+`"}`)
}

// uploadDICOM stores a radiograph in Orthanc.
func uploadDICOM(t testing.TB, orthanc string, img imaging.Radiograph) {
	t.Helper()
	var buf bytes.Buffer
	if err := imaging.WriteDICOM(&buf, img); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(orthanc+"/instances", "application/dicom", &buf)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Orthanc upload: %s", resp.Status)
	}
}

// hook calls the hip service's imaging-study-available hook on one case.
func (e *resultsEnv) hook(t *testing.T, s *service, phantomCase int) hookAnswer {
	t.Helper()
	url := s.base + "/cds-services/hip-radiograph-screening-imagingstudy-available"
	body := hookBody("org.orthotriage.imagingstudy-available", e.fhirBase, resultsToken,
		`{"patientId":"`+e.patient+`","studies":["ImagingStudy/`+e.studies[phantomCase]+`"]}`)
	return e.callHook(t, url, body)
}

// callHook posts a signed hook call and decodes the answer.
func (e *resultsEnv) callHook(t *testing.T, url, body string) hookAnswer {
	t.Helper()
	status, out := call(t, http.MethodPost, url, body, e.sign(url))
	if status != http.StatusOK {
		t.Fatalf("hook = %d %s", status, out)
	}
	var a hookAnswer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("hook answer %s: %v", out, err)
	}
	a.raw = out
	return a
}

type hookAnswer struct {
	Cards         []hookCard
	SystemActions []action
	raw           string
}

type hookCard struct {
	UUID, Summary, Detail, Indicator, SelectionBehavior string
	Source                                              struct{ Label string }
	Suggestions                                         []struct {
		Label, UUID string
		Actions     []action
	}
	OverrideReasons []struct{ Code string }
	Links           []struct{ Label, URL, Type, AppContext string }
}

type action struct {
	Type     string
	Resource json.RawMessage
}

func (e *resultsEnv) fhirDo(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	return testenv.FHIRDo(t, e.fhirBase, resultsToken, method, path, body)
}

// validate runs the FHIR test server's validateResource on each resource and
// fails on any issue, warnings included; and the FHIR R4 JSON schema, an
// independent second check.
func (e *resultsEnv) validate(t *testing.T, actions []action) {
	t.Helper()
	for _, a := range actions {
		if issues := testenv.FHIRValidate(t, e.fhirBase, resultsToken, a.Resource); !testenv.NoIssues(issues) {
			t.Errorf("%.80s...: $validate issues %v", a.Resource, issues)
		}
		if err := testenv.SchemaValidate(t, a.Resource); err != nil {
			t.Errorf("%.80s...: %v", a.Resource, err)
		}
	}
}

// TestHookAnswersWithCardsAndResources drives the whole hook path through
// the real binary: FHIR test server -> Endpoint -> Orthanc -> ONNX model ->
// card and FHIR resources, which the FHIR server then validates and stores.
func TestHookAnswersWithCardsAndResources(t *testing.T) {
	e := newResultsEnv(t)
	bin := buildBinary(t)
	s := startService(t, bin, "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_RESULTS_VIEWER_URL=https://viewer.example.org/launch")

	first := e.hook(t, s, fnfCase)
	if len(first.Cards) != 1 {
		t.Fatalf("fracture study: %d cards, want 1: %s\n%s", len(first.Cards), first.raw, s.logText())
	}
	// A lean answer: the HTML report travels as the card's link, not inside
	// every DiagnosticReport (results.presented_form=none).
	if n := len(first.raw); n > 16000 {
		t.Errorf("a two-hip card with its resources is %d bytes, want at most 16 KB (16,000)", n)
	}
	card := first.Cards[0]
	if card.Indicator != "critical" || !strings.Contains(card.Summary, "left hip") || !strings.Contains(card.Summary, "STAT read suggested") ||
		!strings.Contains(strings.ToLower(card.Summary), "fracture of neck of femur") {
		t.Errorf("card = %s %q, want a critical STAT card naming the left femoral neck fracture", card.Indicator, card.Summary)
	}
	if len([]rune(card.Summary)) > 139 || card.Source.Label == "" || len(card.OverrideReasons) != 3 || card.SelectionBehavior != "any" {
		t.Errorf("card conformance: summary %d runes, source %q, %d override reasons, selectionBehavior %q",
			len([]rune(card.Summary)), card.Source.Label, len(card.OverrideReasons), card.SelectionBehavior)
	}
	if !strings.Contains(card.Detail, "not for clinical use") || !strings.Contains(card.Detail, "hip-000") {
		t.Errorf("detail lacks the synthetic warning or the model:\n%s", card.Detail)
	}
	if len(card.Suggestions) != 1 || card.Suggestions[0].Label != "Save AI preliminary report" {
		t.Fatalf("suggestions = %+v", card.Suggestions)
	}
	actions := card.Suggestions[0].Actions
	types := map[string]int{}
	var task struct{ ID, Priority, Status string }
	for _, a := range actions {
		var r struct{ ResourceType string }
		json.Unmarshal(a.Resource, &r)
		types[r.ResourceType]++
		if r.ResourceType == "Task" {
			json.Unmarshal(a.Resource, &task)
		}
		if a.Type != "create" {
			t.Errorf("action type %q", a.Type)
		}
	}
	if types["Observation"] != 2 || types["DiagnosticReport"] != 1 || types["Device"] != 1 || types["Provenance"] != 1 || types["Task"] != 1 {
		t.Errorf("resources %v, want 2 Observations and one each of DiagnosticReport, Device, Provenance, Task", types)
	}
	if task.Priority != "stat" {
		t.Errorf("Task priority %q, want stat", task.Priority)
	}
	e.validate(t, actions)

	t.Run("a second call gives byte-identical resources", func(t *testing.T) {
		again := e.hook(t, s, fnfCase)
		if len(again.Cards) != 1 || len(again.Cards[0].Suggestions) != 1 {
			t.Fatalf("second answer %s", again.raw)
		}
		b := again.Cards[0].Suggestions[0].Actions
		if len(b) != len(actions) {
			t.Fatalf("%d actions, then %d", len(actions), len(b))
		}
		for i := range b {
			if !bytes.Equal(actions[i].Resource, b[i].Resource) {
				t.Errorf("action %d differs:\n%s\n%s", i, actions[i].Resource, b[i].Resource)
			}
		}
	})

	t.Run("the suggestion's resources are stored and read back", func(t *testing.T) {
		// An EHR accepting the suggestion keeps the resources' ids (they
		// reference each other): a transaction of PUTs does that.
		var entries []string
		for _, a := range actions {
			var r struct{ ResourceType, ID string }
			json.Unmarshal(a.Resource, &r)
			entries = append(entries, fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"%s/%s"}}`, a.Resource, r.ResourceType, r.ID))
		}
		bundle := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
		if status, out := e.fhirDo(t, http.MethodPost, "", []byte(bundle)); status != http.StatusOK {
			t.Fatalf("transaction = %d %s", status, out)
		}
		status, out := e.fhirDo(t, http.MethodGet, "Task/"+task.ID, nil)
		var got struct{ Priority, Status string }
		json.Unmarshal(out, &got)
		if status != http.StatusOK || got.Priority != "stat" {
			t.Errorf("Task read back = %d %s", status, out)
		}
	})

	t.Run("the report link serves the HTML report, only when signed", func(t *testing.T) {
		var link string
		for _, l := range card.Links {
			if l.Type == "absolute" {
				link = l.URL
			}
			if l.Type == "smart" && (!strings.Contains(l.AppContext, "ImagingStudy/"+e.studies[fnfCase]) || !strings.Contains(l.AppContext, "DiagnosticReport/")) {
				t.Errorf("smart link appContext %s", l.AppContext)
			}
		}
		if len(card.Links) != 2 || link == "" {
			t.Fatalf("links = %+v", card.Links)
		}
		status, html := call(t, http.MethodGet, link, "")
		if status != http.StatusOK || !strings.Contains(html, "data:image/png;base64,") {
			t.Errorf("report = %d (%d bytes), want HTML with heat-map thumbnails", status, len(html))
		}
		if status, _ := call(t, http.MethodGet, strings.Split(link, "?")[0]+"?sig=00", ""); status != http.StatusNotFound {
			t.Errorf("report with a bad signature = %d, want 404", status)
		}
	})

	t.Run("feedback is matched to the card", func(t *testing.T) {
		url := s.base + "/cds-services/hip-radiograph-screening-imagingstudy-available/feedback"
		fb := `{"feedback":[{"card":"` + card.UUID + `","outcome":"overridden","overrideReason":{"reason":{"code":"disagree","system":"https://orthotriage.github.io/fhir/CodeSystem/override-reason"}},"outcomeTimestamp":"2026-11-28T10:00:00Z"}]}`
		if status, out := call(t, http.MethodPost, url, fb, e.sign(url)); status != http.StatusOK {
			t.Fatalf("feedback = %d %s", status, out)
		}
		_, metrics := call(t, http.MethodGet, s.base+"/metrics", "")
		want := `orthotriage_card_feedback_total{card="critical",outcome="overridden",reason="disagree",service="hip-radiograph-screening-imagingstudy-available"} 1`
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
		if !strings.Contains(metrics, "orthotriage_analyses_total 1") {
			t.Errorf("the study was analysed more than once (or never): %s", grepLines(metrics, "orthotriage_analyses_total"))
		}
	})

	t.Run("a normal study gets no card by default", func(t *testing.T) {
		if a := e.hook(t, s, normalCase); len(a.Cards) != 0 {
			t.Errorf("normal study: %s", a.raw)
		}
	})
	if strings.Contains(s.logText(), resultsToken) {
		t.Error("the FHIR access token was logged")
	}
}

// TestWriteBackAndSystemActions: with write-back and systemActions on, the
// resources reach the FHIR server by themselves, once however often the
// study is analysed, and a normal study gets the configured info card.
// The HTML report travels as a Binary (results.presented_form=binary),
// which the DiagnosticReport references and the FHIR server keeps.
func TestWriteBackAndSystemActions(t *testing.T) {
	e := newResultsEnv(t)
	s := startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+e.issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_RESULTS_WRITE_BACK=true", "ORTHOTRIAGE_RESULTS_SYSTEM_ACTIONS=true", "ORTHOTRIAGE_RESULTS_NORMAL_CARD=true",
		"ORTHOTRIAGE_RESULTS_PRESENTED_FORM=binary")

	a := e.hook(t, s, fnfCase)
	if len(a.Cards) != 1 || len(a.Cards[0].Suggestions) != 0 || len(a.SystemActions) != 7 {
		t.Fatalf("want one card without suggestions and 7 systemActions (with the report's Binary): %s", a.raw)
	}
	t.Logf("answer with the report as a Binary: %d bytes", len(a.raw))
	e.validate(t, a.SystemActions)
	var report struct {
		ID            string
		PresentedForm []struct{ URL string }
	}
	var types []string
	var binary struct{ ID, ContentType, Data string }
	for _, act := range a.SystemActions {
		var head struct{ ResourceType string }
		json.Unmarshal(act.Resource, &head)
		types = append(types, head.ResourceType)
		switch head.ResourceType {
		case "DiagnosticReport":
			json.Unmarshal(act.Resource, &report)
		case "Binary":
			json.Unmarshal(act.Resource, &binary)
		}
	}
	if want := []string{"Device", "Observation", "Observation", "Binary", "DiagnosticReport", "Task", "Provenance"}; !slices.Equal(types, want) {
		t.Errorf("systemActions' resources %v, want %v", types, want)
	}
	if len(report.PresentedForm) != 1 || report.PresentedForm[0].URL != "Binary/"+binary.ID {
		t.Errorf("DiagnosticReport presentedForm %+v, want a reference to Binary/%s", report.PresentedForm, binary.ID)
	}
	if html, _ := base64.StdEncoding.DecodeString(binary.Data); binary.ContentType != "text/html; charset=utf-8" || !bytes.Contains(html, []byte("<html")) {
		t.Errorf("Binary %s (%d bytes of data) is not the HTML report", binary.ContentType, len(binary.Data))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, _ := e.fhirDo(t, http.MethodGet, "DiagnosticReport/"+report.ID, nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DiagnosticReport/%s not written back within 20 s:\n%s", report.ID, s.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for !s.logged(`"msg":"write-back stored"`) {
		if time.Now().After(deadline) {
			t.Fatalf("write-back not logged:\n%s", s.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The FHIR server keeps the report itself, as the Binary it was sent.
	if status, out := e.fhirDo(t, http.MethodGet, "Binary/"+binary.ID, nil); status != http.StatusOK ||
		!bytes.Contains(out, []byte(binary.Data[:min(len(binary.Data), 200)])) {
		t.Errorf("Binary/%s read back: %d %.200s", binary.ID, status, out)
	}
	// A second answer from the cache is not written again; were it
	// (another replica), the PUTs by id would update, not duplicate.
	e.hook(t, s, fnfCase)
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(s.logText(), `"msg":"write-back stored"`); n != 1 {
		t.Errorf("%d write-backs after two answers on one result, want 1", n)
	}
	_, out := e.fhirDo(t, http.MethodGet, "DiagnosticReport?subject=Patient/"+e.patient, nil)
	var found struct{ Entry []json.RawMessage }
	json.Unmarshal(out, &found)
	if len(found.Entry) != 1 {
		t.Errorf("%d DiagnosticReports for the patient, want 1", len(found.Entry))
	}
	n := e.hook(t, s, normalCase)
	if len(n.Cards) != 1 || n.Cards[0].Indicator != "info" || !strings.Contains(n.Cards[0].Summary, "no abnormality") {
		t.Errorf("normal study with results.normal_card: %s", n.raw)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
