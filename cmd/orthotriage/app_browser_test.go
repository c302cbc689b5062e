package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/orthotriage/orthotriage/internal/smarttest"
)

// appEnv is the SMART app under test: phantom studies on the FHIR test
// server behind a SMART authorization server (smarttest), and the built
// binary registered for that EHR.
type appEnv struct {
	*resultsEnv
	smart *smarttest.Server
	svc   *service
	iss   string // the FHIR base the EHR and the app see (smarttest's)
}

func newAppEnv(t *testing.T) *appEnv {
	t.Helper()
	e := &appEnv{resultsEnv: newResultsEnv(t)}
	// A name for the worklist to show (a synthetic one).
	if status, body := e.fhirDo(t, http.MethodPut, "Patient/"+e.patient, []byte(`{"resourceType":"Patient","id":"`+e.patient+
		`","name":[{"family":"Testpatient","given":["Ada"]}],"gender":"female","birthDate":"1941-03-02"}`)); status != http.StatusOK {
		t.Fatalf("naming the patient: %d %s", status, body)
	}
	e.smart = smarttest.Start(t, smarttest.Options{Upstream: e.fhirBase, UpstreamToken: resultsToken})
	e.iss = e.smart.FHIRBase()
	// The EHR is registered for the FHIR base its users' tokens work on.
	issuers := filepath.Join(t.TempDir(), "issuers.yaml")
	b, err := os.ReadFile(e.issuers)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(issuers, []byte(strings.Replace(string(b), "fhir_servers: ["+e.fhirBase+"]", "fhir_servers: ["+e.iss+"]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	smartOrigin := e.iss[:strings.Index(e.iss, "/fhir/")]
	// The report travels as a Binary (results.presented_form=binary): the
	// viewer's save then writes it too, the most a save asks of the EHR's
	// authorization server (the other forms save a subset).
	e.svc = startService(t, buildBinary(t), "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_APP_CONNECT_ORIGINS="+smartOrigin, "ORTHOTRIAGE_RESULTS_PRESENTED_FORM=binary")
	e.smart.SetRedirectPrefix(e.svc.base + "/app/")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service logs (end):\n%s", tail(e.svc.logText(), 4000))
		}
	})
	return e
}

// patientView calls patient-view as the EHR does (its JWT, the user's
// token as fhirAuthorization) until every study is analysed, and returns
// the answer.
func (e *appEnv) patientView(t *testing.T) hookAnswer {
	t.Helper()
	u := e.svc.base + "/cds-services/hip-radiograph-screening"
	token := e.smart.Token(e.patient, "patient/*.rs")
	body := fmt.Sprintf(`{"hook":"patient-view","hookInstance":"%d","fhirServer":%q,`+
		`"fhirAuthorization":{"access_token":%q,"token_type":"Bearer","expires_in":300,"scope":"patient/*.rs","subject":"orthotriage"},`+
		`"context":{"userId":"Practitioner/1","patientId":%q}}`, time.Now().UnixNano(), e.iss, token, e.patient)
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := e.callHook(t, u, body)
		pending := slices.ContainsFunc(a.Cards, func(c hookCard) bool { return strings.Contains(c.Summary, "in progress") })
		if !pending && len(a.Cards) > 0 || time.Now().After(deadline) {
			return a
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// browser is a headless Debian Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("Debian's chromium is not installed (scripts/setup.sh chromium installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline of its own
		t.Fatalf("chromium did not start: %v", err)
	}
	return ctx
}

// void runs a for its effect only.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, tg)
		return chromedp.Void{}, err
	}
}

// into stores a's value in *v.
func into[T any](a chromedp.Action[T], v *T) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		out, err := a(ctx, tg)
		*v = out
		return chromedp.Void{}, err
	}
}

// steps runs browser actions with a deadline, failing with the page's
// status line when they do not complete.
func steps(t *testing.T, ctx context.Context, limit time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		var status, errText, loc string
		sctx, c2 := context.WithTimeout(ctx, 3*time.Second)
		defer c2()
		_ = chromedp.Do(sctx, into(chromedp.Evaluate[string](`(document.getElementById("status")||{}).textContent||""`), &status),
			into(chromedp.Evaluate[string](`document.body ? (document.body.dataset.error||"") : ""`), &errText), into(chromedp.Location(), &loc))
		t.Fatalf("%s: %v (page %s, status %q, error %q)", what, err, loc, status, errText)
	}
}

// screenshotDir is where the README's screenshots are written when
// ORTHOTRIAGE_SCREENSHOTS names a folder (docs/img), else a temporary one.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("ORTHOTRIAGE_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// screenshot saves the page at width as a JPEG.
func screenshot(t *testing.T, ctx context.Context, dir, name string, width int64) {
	t.Helper()
	var shot []byte
	steps(t, ctx, 20*time.Second, "screenshot "+name,
		chromedp.EmulateViewport(width, 900),
		chromedp.Sleep(300*time.Millisecond),
		into(chromedp.FullScreenshot(80), &shot))
	if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSMARTAppInBrowser launches the app from a card's SMART link as an
// EHR would (launch + iss, authorization code with PKCE), sees the
// radiograph with its overlay and the findings, disagrees with a reason
// (the feedback arrives), saves the report (it is on the FHIR server) and
// opens the worklist (standalone launch) with the STAT study first; then
// times ten launches from link to image shown.
func TestSMARTAppInBrowser(t *testing.T) {
	e := newAppEnv(t)
	a := e.patientView(t)
	var card hookCard
	var link struct{ Label, URL, Type, AppContext string }
	for _, c := range a.Cards {
		for _, l := range c.Links {
			if l.Type == "smart" && c.Indicator == "critical" {
				card, link = c, l
			}
		}
	}
	if link.URL == "" {
		t.Fatalf("no critical card with a SMART link: %s\nlogs:\n%s", a.raw, tail(e.svc.logText(), 3000))
	}
	if want := e.svc.base + "/app/launch.html"; link.URL != want {
		t.Errorf("the SMART link is %s, want the built-in app %s", link.URL, want)
	}
	var app struct{ ImagingStudy, DiagnosticReport, Card, Service, Model string }
	if err := json.Unmarshal([]byte(link.AppContext), &app); err != nil || app.Card != card.UUID {
		t.Fatalf("appContext %q (card %s): %v", link.AppContext, card.UUID, err)
	}
	launchURL := func() string {
		id := e.smart.Launch(smarttest.LaunchContext{Patient: e.patient, AppContext: link.AppContext})
		return link.URL + "?iss=" + url.QueryEscape(e.iss) + "&launch=" + url.QueryEscape(id)
	}
	shots := screenshotDir(t)
	ctx := browser(t)

	// The viewer, launched from the card.
	steps(t, ctx, 60*time.Second, "viewer",
		chromedp.Navigate(launchURL()),
		chromedp.WaitVisible(`body[data-ready="true"]`),
		chromedp.WaitVisible(`#image[data-loaded="true"][data-overlay="true"]`))
	var findings int
	var model, warning, patient string
	steps(t, ctx, 10*time.Second, "findings",
		into(chromedp.Evaluate[int](`document.querySelectorAll("#findings tr[data-finding]").length`), &findings),
		into(chromedp.Text(`#model`), &model), into(chromedp.Text(`#warning`), &warning), into(chromedp.Text(`#patient`), &patient))
	if findings != 2 || !strings.Contains(model, "hip-000") || warning == "" || !strings.Contains(patient, "Ada Testpatient") {
		t.Errorf("viewer shows %d findings (want 2), model %q, warning %q, patient %q", findings, model, warning, patient)
	}
	screenshot(t, ctx, shots, "viewer-full.jpg", 1280)
	screenshot(t, ctx, shots, "viewer-sidebar.jpg", 400)
	steps(t, ctx, 5*time.Second, "back to full width", chromedp.EmulateViewport(1280, 900))

	// Disagree with a reason: CDS Hooks feedback for the card.
	before := counterValue(t, e.svc, `orthotriage_card_feedback_total{card="critical",outcome="overridden",reason="disagree",service="hip-radiograph-screening"}`)
	steps(t, ctx, 20*time.Second, "disagree",
		chromedp.Click(`#disagree`),
		chromedp.SetValue(`#reason`, "0"), // the first override reason: disagree
		chromedp.SendKeys(`#comment`, "cortex intact on my read"),
		chromedp.Click(`#send-feedback`),
		chromedp.WaitVisible(`#feedback-status`),
		void(chromedp.Poll[bool](`document.getElementById("feedback-status").textContent.toLowerCase().includes("sent")`)))
	if after := counterValue(t, e.svc, `orthotriage_card_feedback_total{card="critical",outcome="overridden",reason="disagree",service="hip-radiograph-screening"}`); after != before+1 {
		t.Errorf("overridden/disagree feedback for the critical card: %v -> %v, want one more", before, after)
	}

	// Save the preliminary report with the user's token ("Report not
	// saved: ..." says "saved" too: the status's kind tells them apart).
	var saveKind, saveText string
	steps(t, ctx, 30*time.Second, "save",
		chromedp.Click(`#save`),
		void(chromedp.Poll[bool](`["ok", "error"].includes(document.getElementById("save-status").dataset.kind)`)),
		into(chromedp.Evaluate[string](`document.getElementById("save-status").dataset.kind`), &saveKind),
		into(chromedp.Text(`#save-status`), &saveText))
	if saveKind != "ok" {
		t.Errorf("save: %s %q", saveKind, saveText)
	}
	if status, body := e.fhirDo(t, http.MethodGet, app.DiagnosticReport, nil); status != http.StatusOK || !strings.Contains(string(body), "Patient/"+e.patient) {
		t.Errorf("the saved report %s on the FHIR server: %d %.300s", app.DiagnosticReport, status, body)
	}

	// The worklist, opened from the viewer (a standalone launch).
	var first chromedp.AttributeResult
	steps(t, ctx, 60*time.Second, "worklist",
		chromedp.Click(`#open-worklist`),
		chromedp.WaitVisible(`#worklist tr[data-study]`),
		into(chromedp.AttributeValue(`#worklist tr[data-study]`, "data-priority"), &first))
	if first.Value != "stat" {
		t.Errorf("the worklist's first row has priority %q, want stat", first.Value)
	}
	screenshot(t, ctx, shots, "worklist.jpg", 1280)

	// The card's study launched in another patient's chart: refused, no image.
	other := fhirCreate(t, e.fhirBase, resultsToken, `{"resourceType":"Patient","gender":"male","birthDate":"1950-01-01"}`)
	wrong, cancelWrong := chromedp.NewContext(ctx)
	if err := chromedp.Do(wrong); err != nil {
		t.Fatal(err)
	}
	id := e.smart.Launch(smarttest.LaunchContext{Patient: other, AppContext: link.AppContext})
	var refusal string
	var drawn bool
	steps(t, wrong, 60*time.Second, "launch in another patient's chart",
		chromedp.Navigate(link.URL+"?iss="+url.QueryEscape(e.iss)+"&launch="+url.QueryEscape(id)),
		chromedp.WaitVisible(`body[data-error]`),
		into(chromedp.Evaluate[string](`document.body.dataset.error`), &refusal),
		into(chromedp.Evaluate[bool](`document.getElementById("image").dataset.loaded === "true"`), &drawn))
	cancelWrong()
	if refusal == "" || drawn {
		t.Errorf("the study opened in another patient's chart: error %q, image drawn %v", refusal, drawn)
	}

	// Ten launches, each in a new tab: link to image shown.
	var took []time.Duration
	for range 10 {
		tab, cancel := chromedp.NewContext(ctx)
		if err := chromedp.Do(tab); err != nil { // opens the tab
			t.Fatal(err)
		}
		u := launchURL()
		start := time.Now()
		steps(t, tab, 60*time.Second, "launch", chromedp.Navigate(u), chromedp.WaitVisible(`#image[data-loaded="true"]`))
		took = append(took, time.Since(start))
		cancel()
	}
	slices.Sort(took)
	t.Logf("launch to image shown, 10 launches: median %v (min %v, max %v)", (took[4]+took[5])/2, took[0], took[9])
}

// TestAppAPIRefusesWithoutAccess: every endpoint the app calls answers
// nothing without a token the FHIR server accepts for the study: no
// token, a token it never issued, a revoked one, one for another patient.
func TestAppAPIRefusesWithoutAccess(t *testing.T) {
	e := newAppEnv(t)
	a := e.patientView(t)
	if len(a.Cards) == 0 {
		t.Fatalf("no cards: %s\nlogs:\n%s", a.raw, tail(e.svc.logText(), 3000))
	}
	other := fhirCreate(t, e.fhirBase, resultsToken, `{"resourceType":"Patient","gender":"male","birthDate":"1950-01-01"}`)
	study := "ImagingStudy/" + e.studies[fnfCase]
	card := ""
	for _, c := range a.Cards {
		for _, l := range c.Links {
			if l.Type == "smart" && strings.Contains(l.AppContext, `"imagingStudy":"`+study+`"`) {
				card = c.UUID
			}
		}
	}
	if card == "" {
		t.Fatalf("no card links %s: %s", study, a.raw)
	}
	revoked := e.smart.Token(e.patient, "patient/*.rs")
	e.smart.Revoke(revoked)
	tokens := map[string]struct {
		token string
		want  int
	}{
		"none":            {"", http.StatusUnauthorized},
		"not issued":      {"not-a-token-anyone-issued", http.StatusForbidden},
		"revoked":         {revoked, http.StatusForbidden},
		"another patient": {e.smart.Token(other, "patient/*.rs"), http.StatusForbidden},
		"the patient's":   {e.smart.Token(e.patient, "patient/*.rs"), http.StatusOK},
	}
	bodies := map[string]string{
		"study":    fmt.Sprintf(`{"fhirServer":%q,"imagingStudy":%q}`, e.iss, study),
		"image":    fmt.Sprintf(`{"fhirServer":%q,"imagingStudy":%q,"image":0}`, e.iss, study),
		"feedback": fmt.Sprintf(`{"fhirServer":%q,"imagingStudy":%q,"card":%q,"service":"hip-radiograph-screening","outcome":"accepted"}`, e.iss, study, card),
		"worklist": fmt.Sprintf(`{"fhirServer":%q}`, e.iss),
	}
	for endpoint, body := range bodies {
		for name, tk := range tokens {
			want := tk.want
			req, _ := http.NewRequest(http.MethodPost, e.svc.base+"/api/v1/app/"+endpoint, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tk.token != "" {
				req.Header.Set("Authorization", "Bearer "+tk.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var buf strings.Builder
			_, _ = fmt.Fprint(&buf, resp.Header.Get("Content-Type"))
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s with %s token: %d, want %d", endpoint, name, resp.StatusCode, want)
			}
			if resp.StatusCode != http.StatusOK && strings.HasPrefix(buf.String(), "image/") {
				t.Errorf("%s with %s token: refused but sent an image", endpoint, name)
			}
		}
	}
	// The pages: a strict CSP, and nothing but the app's own files.
	for page, want := range map[string]int{"/app/launch.html": 200, "/app/viewer.html": 200, "/app/worklist.js": 200,
		"/app/config.json": 200, "/app/README.md": 404, "/app/../go.mod": 404, "/app/nothing.js": 404} {
		resp, err := http.Get(e.svc.base + page)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != want || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") ||
			!strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: %d (want %d), CSP %q", page, resp.StatusCode, want, csp)
		}
	}
	// The access token is never logged.
	tok := tokens["the patient's"].token
	if strings.Contains(e.svc.logText(), tok) {
		t.Errorf("the service logged the app's access token")
	}
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	return s[max(0, len(s)-n):]
}

// counterValue is a counter series' value, 0 when not exported yet.
func counterValue(t *testing.T, s *service, series string) float64 {
	t.Helper()
	_, body := call(t, http.MethodGet, s.base+"/metrics", "")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
