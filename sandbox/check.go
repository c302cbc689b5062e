package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/orthotriage/orthotriage/internal/fhirschema"
)

// Hooks orthotriage answers.
const (
	HookPatientView           = "patient-view"
	HookImagingStudyAvailable = "org.orthotriage.imagingstudy-available"
)

// pendingPrefix starts the info card of studies still in analysis.
const pendingPrefix = "AI triage in progress"

// CheckOptions says what to check and how.
type CheckOptions struct {
	Service   string // the service's base URL, exactly as its auth.public_base_url
	FHIR      string // the FHIR server the hooks name (fhirServer)
	FHIRToken string // the access token lent in fhirAuthorization and used by the kit
	Key       EHRKey
	Issuer    string // the JWTs' iss, as registered in the service's issuers file
	Patients  int
	Prefix    string
	Timeout   time.Duration // per request; 30 s when zero
	MaxPages  int           // prefetch pages followed; 5 when zero
	// Schema is the FHIR R4 JSON schema validator; nil skips that check.
	Schema *fhirschema.Validator
	// Strict fails a resource on any $validate issue, warnings included.
	Strict bool
	// NotificationToken, when set, makes the kit create a Subscription on
	// the FHIR server pointing at the service and check the precompute
	// path (the service's precompute.notification_token).
	NotificationToken string
	// SubscriptionWait is how long to wait for the FHIR server to deliver
	// a notification; 10 s when zero.
	SubscriptionWait time.Duration
	// PendingRetries is how often a hook answering "in progress" is asked
	// again (a second apart); 30 when zero.
	PendingRetries int
}

type checker struct {
	o       CheckOptions
	plan    Plan
	fhir    *fhirClient
	http    *http.Client
	pre     *Prefetcher
	r       *Report
	entries map[string]entry // discovery, by id
}

type entry struct {
	ID       string            `json:"id"`
	Hook     string            `json:"hook"`
	Title    string            `json:"title"`
	Desc     string            `json:"description"`
	Prefetch map[string]string `json:"prefetch"`
}

// Check plays the EHR against the service for the seeded patients and
// returns every check's outcome. It fails (an error) only when it cannot
// run at all; a failed check is in the report.
func Check(ctx context.Context, o CheckOptions) (*Report, error) {
	if o.Service == "" || o.FHIR == "" || o.Key.Private == nil {
		return nil, fmt.Errorf("check: --service, --fhir and --key are required")
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.SubscriptionWait == 0 {
		o.SubscriptionWait = 10 * time.Second
	}
	if o.PendingRetries == 0 {
		o.PendingRetries = 30
	}
	o.Service = strings.TrimRight(o.Service, "/")
	o.FHIR = strings.TrimRight(o.FHIR, "/")
	c := &checker{o: o, plan: NewPlan(o.Prefix, o.Patients), fhir: newFHIRClient(o.FHIR, o.FHIRToken, o.Timeout),
		http: &http.Client{Timeout: o.Timeout}, r: &Report{Service: o.Service, FHIR: o.FHIR}, entries: map[string]entry{}}
	c.pre = &Prefetcher{FHIR: c.fhir, MaxPages: o.MaxPages}

	if c.r.run("seeded data on the FHIR server", func() (string, string) { return c.seeded(ctx) }) == Fail {
		return c.r, nil
	}
	if c.r.run("discovery", func() (string, string) { return c.discovery(ctx) }) == Fail {
		return c.r, nil
	}
	c.r.run("a call without a JWT is refused", func() (string, string) { return c.unauthenticated(ctx) })
	if o.NotificationToken != "" {
		c.precompute(ctx)
	}
	ids := make([]string, 0, len(c.entries))
	for id := range c.entries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, p := range c.plan.Patients {
		for _, id := range ids {
			c.callService(ctx, p, c.entries[id])
		}
	}
	if o.Schema == nil {
		c.r.add(Result{Name: "FHIR R4 JSON schema", Status: Skip, Detail: "no schema given (--schema): resources were checked by the FHIR server's $validate only"})
	}
	return c.r, nil
}

func (c *checker) seeded(ctx context.Context) (string, string) {
	for _, p := range c.plan.Patients {
		for _, ref := range []string{"Patient/" + p.ID, "ImagingStudy/" + p.PelvisStudy, "ImagingStudy/" + p.SpineStudy} {
			status, body, err := c.fhir.do(ctx, http.MethodGet, ref, nil)
			if err != nil {
				return Fail, err.Error()
			}
			if status != http.StatusOK {
				return Fail, fmt.Sprintf("%s: %d %s (run `orthotriage sandbox seed` with the same --prefix and --patients first)", ref, status, snippet(body))
			}
		}
	}
	return Pass, fmt.Sprintf("%d patients, each with a pelvis and a spine study", len(c.plan.Patients))
}

// signedDo calls the service with a fresh JWT whose aud is the URL called.
func (c *checker) signedDo(ctx context.Context, method, url string, body []byte) (int, []byte, error) {
	jwt, err := c.o.Key.Sign(c.o.Issuer, url)
	if err != nil {
		return 0, nil, err
	}
	return c.serviceDo(ctx, method, url, body, "Bearer "+jwt)
}

func (c *checker) serviceDo(ctx context.Context, method, url string, body []byte, authorization string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, b, err
}

func (c *checker) discovery(ctx context.Context) (string, string) {
	status, body, err := c.signedDo(ctx, http.MethodGet, c.o.Service+"/cds-services", nil)
	if err != nil {
		return Fail, err.Error()
	}
	if status != http.StatusOK {
		return Fail, fmt.Sprintf("GET /cds-services: %d %s (is the kit's issuer %s registered with the JWKS it printed, and --service the service's auth.public_base_url?)", status, snippet(body), c.o.Issuer)
	}
	var d struct {
		Services []entry `json:"services"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return Fail, "discovery is not a CDS Hooks discovery document: " + err.Error()
	}
	var doc any
	_ = json.Unmarshal(body, &doc)
	problems := emptyValues("discovery", doc)
	for i, s := range d.Services {
		if s.ID == "" || s.Hook == "" || s.Desc == "" {
			problems = append(problems, fmt.Sprintf("services[%d]: id, hook and description required", i))
		}
		if _, dup := c.entries[s.ID]; dup {
			problems = append(problems, "services: id "+s.ID+" twice")
		}
		c.entries[s.ID] = s
	}
	for _, want := range []string{ServiceHip, ServiceVertebral, ServiceHip + "-imagingstudy-available", ServiceVertebral + "-imagingstudy-available"} {
		if _, ok := c.entries[want]; !ok {
			problems = append(problems, "services: no "+want)
		}
	}
	if len(problems) > 0 {
		return Fail, strings.Join(problems, "; ")
	}
	var list []string
	for _, s := range d.Services {
		list = append(list, s.ID+" ("+s.Hook+")")
	}
	return Pass, strings.Join(list, ", ")
}

func (c *checker) unauthenticated(ctx context.Context) (string, string) {
	status, body, err := c.serviceDo(ctx, http.MethodGet, c.o.Service+"/cds-services", nil, "")
	switch {
	case err != nil:
		return Fail, err.Error()
	case status == http.StatusUnauthorized && len(body) == 0:
		return Pass, "401, bare"
	case status == http.StatusUnauthorized:
		return Warn, "401 with a body (CDS Hooks answers a bad JWT with a bare 401)"
	case status == http.StatusOK:
		return Warn, "200: the service runs with authentication off (auth.disabled)"
	}
	return Fail, fmt.Sprintf("%d, want 401", status)
}

// hookContext is the context of a call on hook for p.
func hookContext(hook string, p PlannedPatient) map[string]any {
	if hook == HookImagingStudyAvailable {
		return map[string]any{"patientId": p.ID, "studies": []any{"ImagingStudy/" + p.PelvisStudy, "ImagingStudy/" + p.SpineStudy}}
	}
	return map[string]any{"userId": "Practitioner/" + clinician, "patientId": p.ID}
}

const clinician = "orthotriage-sandbox-clinician"

// request is a hook call's body; prefetch nil leaves it out.
func (c *checker) request(hook string, hc map[string]any, prefetch map[string]json.RawMessage) []byte {
	req := map[string]any{"hook": hook, "hookInstance": uuid.NewString(), "fhirServer": c.o.FHIR, "context": hc}
	if c.o.FHIRToken != "" {
		req["fhirAuthorization"] = map[string]any{"access_token": c.o.FHIRToken, "token_type": "Bearer", "expires_in": 300,
			"scope": "patient/Patient.read patient/ImagingStudy.read patient/Observation.read patient/Condition.read patient/Endpoint.read", "subject": "orthotriage-sandbox"}
	}
	if len(prefetch) > 0 {
		req["prefetch"] = prefetch
	}
	b, _ := json.Marshal(req)
	return b
}

// hook calls one service, asking again while it answers "in progress".
func (c *checker) hook(ctx context.Context, id string, body []byte) (Answer, []string, string, error) {
	url := c.o.Service + "/cds-services/" + id
	for try := 0; ; try++ {
		status, out, err := c.signedDo(ctx, http.MethodPost, url, body)
		if err != nil {
			return Answer{}, nil, "", err
		}
		if status != http.StatusOK {
			return Answer{}, nil, "", fmt.Errorf("POST /cds-services/%s: %d %s", id, status, snippet(out))
		}
		a, problems := CheckAnswer(out)
		pending := slices.ContainsFunc(a.Cards, func(c Card) bool { return strings.HasPrefix(c.Summary, pendingPrefix) })
		if !pending || try >= c.o.PendingRetries {
			note := ""
			if try > 0 {
				note = fmt.Sprintf(" (after %d in-progress answers)", try)
			}
			return a, problems, note, nil
		}
		// A new hookInstance: the service may dedupe by it.
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		m["hookInstance"] = uuid.NewString()
		body, _ = json.Marshal(m)
		select {
		case <-ctx.Done():
			return Answer{}, nil, "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func describe(a Answer) string {
	if len(a.Cards) == 0 {
		return "no cards"
	}
	var s []string
	for _, card := range a.Cards {
		s = append(s, card.Indicator+": "+card.Summary)
	}
	out := strings.Join(s, " | ")
	if n := len(a.SystemActions); n > 0 {
		out += fmt.Sprintf(" (+%d systemActions)", n)
	}
	return out
}

// stem is the service's patient-view id of a discovery id.
func stem(id string) string { return strings.TrimSuffix(id, "-imagingstudy-available") }

// callService runs every check of one service on one patient.
func (c *checker) callService(ctx context.Context, p PlannedPatient, e entry) {
	if e.Hook != HookPatientView && e.Hook != HookImagingStudyAvailable {
		c.r.add(Result{Name: e.ID + " " + p.ID, Status: Skip, Detail: "hook " + e.Hook + " is not one the kit knows"})
		return
	}
	label := e.ID + ", " + p.ID
	hc := hookContext(e.Hook, p)
	var prefetch map[string]json.RawMessage
	c.r.run("prefetch "+label, func() (string, string) {
		var keys []PrefetchKey
		prefetch, keys = c.pre.Fill(ctx, e.Prefetch, hc, "Practitioner/"+clinician)
		return describeKeys(keys)
	})
	var answer Answer
	ok := c.r.run("hook "+label+" (prefetch)", func() (string, string) {
		a, problems, note, err := c.hook(ctx, e.ID, c.request(e.Hook, hc, prefetch))
		if err != nil {
			return Fail, err.Error()
		}
		answer = a
		if want := p.Expect[stem(e.ID)]; want != "" && !slices.ContainsFunc(a.Cards, func(card Card) bool { return card.Indicator == want }) {
			problems = append(problems, "expected a "+want+" card for this phantom")
		}
		if len(problems) > 0 {
			return Fail, strings.Join(problems, "; ") + " | " + describe(a)
		}
		return Pass, describe(a) + note
	}) == Pass
	if !ok {
		return
	}
	if res := answer.Resources(); len(res) > 0 {
		c.r.run("resources "+label, func() (string, string) { return c.validate(ctx, res) })
	}
	if e.Hook != HookPatientView {
		return
	}
	c.r.run("hook "+label+" (no prefetch: the service fetches)", func() (string, string) {
		return c.checkFetched(ctx, e, hc, answer)
	})
	if p.ID == c.plan.Patients[0].ID {
		c.r.run("hook "+label+" (studies null: no data)", func() (string, string) {
			return c.checkNullStudies(ctx, e, hc, prefetch)
		})
	}
	for _, card := range answer.Cards {
		if len(card.Suggestions) == 0 || len(card.Suggestions[0].Actions) == 0 {
			continue
		}
		c.r.run("write-back "+label, func() (string, string) { return c.writeBack(ctx, card.Suggestions[0].Actions) })
		c.r.run("feedback "+label, func() (string, string) { return c.feedback(ctx, e, card) })
		break
	}
}

// describeKeys is the prefetch check's outcome: a warning when a key is
// missing (the service fetches it; worth knowing), and each key's state.
func describeKeys(keys []PrefetchKey) (string, string) {
	var parts []string
	status := Pass
	for _, k := range keys {
		s := k.Key + " " + k.State
		if k.Pages > 1 || k.Count > 0 {
			s += fmt.Sprintf(" (%d entries, %d pages)", k.Count, k.Pages)
		}
		if k.Reason != "" {
			s += ": " + k.Reason
		}
		if k.State == PrefetchMissing {
			status = Warn
		}
		parts = append(parts, s)
	}
	return status, strings.Join(parts, "; ")
}

// checkFetched calls the hook without prefetch (the service fetches): the
// answer must be the prefetched call's.
func (c *checker) checkFetched(ctx context.Context, e entry, hc map[string]any, prefetched Answer) (string, string) {
	a, problems, note, err := c.hook(ctx, e.ID, c.request(e.Hook, hc, nil))
	if err != nil {
		return Fail, err.Error()
	}
	if got, want := describe(a), describe(prefetched); got != want {
		problems = append(problems, "answer differs from the prefetched call's: "+got+" vs "+want)
	}
	if len(problems) > 0 {
		return Fail, strings.Join(problems, "; ")
	}
	return Pass, describe(a) + note
}

// checkNullStudies calls the hook with a null studies prefetch, which
// means no studies: no card may come.
func (c *checker) checkNullStudies(ctx context.Context, e entry, hc map[string]any, prefetch map[string]json.RawMessage) (string, string) {
	pf := map[string]json.RawMessage{}
	for k, v := range prefetch {
		pf[k] = v
	}
	pf["studies"] = json.RawMessage("null")
	a, problems, _, err := c.hook(ctx, e.ID, c.request(e.Hook, hc, pf))
	if err != nil {
		return Fail, err.Error()
	}
	if len(a.Cards) > 0 {
		problems = append(problems, "a null studies prefetch means no studies, yet: "+describe(a))
	}
	if len(problems) > 0 {
		return Fail, strings.Join(problems, "; ")
	}
	return Pass, "no cards"
}

// feedback sends the service's feedback endpoint that card's first
// suggestion was accepted.
func (c *checker) feedback(ctx context.Context, e entry, card Card) (string, string) {
	fb := map[string]any{"feedback": []any{map[string]any{"card": card.UUID, "outcome": "accepted",
		"acceptedSuggestions": []any{map[string]any{"id": card.Suggestions[0].UUID}},
		"outcomeTimestamp":    time.Now().UTC().Format(time.RFC3339)}}}
	b, _ := json.Marshal(fb)
	status, out, err := c.signedDo(ctx, http.MethodPost, c.o.Service+"/cds-services/"+e.ID+"/feedback", b)
	if err != nil {
		return Fail, err.Error()
	}
	if status != http.StatusOK {
		return Fail, fmt.Sprintf("%d %s", status, snippet(out))
	}
	return Pass, "accepted, card " + card.UUID
}

// validate checks resources with the FHIR server's $validate and, when
// given, the FHIR R4 JSON schema.
func (c *checker) validate(ctx context.Context, resources []json.RawMessage) (string, string) {
	var problems []string
	warnings := 0
	types := map[string]int{}
	for _, res := range resources {
		var head struct{ ResourceType, ID string }
		_ = json.Unmarshal(res, &head)
		types[head.ResourceType]++
		name := head.ResourceType + "/" + head.ID
		status, out, err := c.fhir.do(ctx, http.MethodPost, head.ResourceType+"/$validate", res)
		if err != nil {
			problems = append(problems, name+": $validate: "+err.Error())
			continue
		}
		var oo struct {
			ResourceType string `json:"resourceType"`
			Issue        []struct {
				Severity    string `json:"severity"`
				Diagnostics string `json:"diagnostics"`
				Expression  []string
				Details     struct{ Text string }
			} `json:"issue"`
		}
		if json.Unmarshal(out, &oo) != nil || oo.ResourceType != "OperationOutcome" {
			problems = append(problems, fmt.Sprintf("%s: $validate answered %d without an OperationOutcome", name, status))
			continue
		}
		for _, is := range oo.Issue {
			msg := is.Diagnostics
			if msg == "" {
				msg = is.Details.Text
			}
			switch {
			case is.Severity == "error" || is.Severity == "fatal":
				problems = append(problems, fmt.Sprintf("%s: %s %v", name, msg, is.Expression))
			case is.Severity == "warning" && c.o.Strict:
				problems = append(problems, fmt.Sprintf("%s: warning %s %v", name, msg, is.Expression))
			case is.Severity == "warning":
				warnings++
			}
		}
		if c.o.Schema != nil {
			if err := c.o.Schema.Validate(res); err != nil {
				problems = append(problems, name+": "+err.Error())
			}
		}
	}
	var kinds []string
	for t, n := range types {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, t))
	}
	sort.Strings(kinds)
	detail := strings.Join(kinds, ", ")
	if c.o.Schema != nil {
		detail += "; $validate and the R4 JSON schema"
	} else {
		detail += "; $validate"
	}
	if len(problems) > 0 {
		return Fail, strings.Join(problems, "; ")
	}
	if warnings > 0 {
		return Pass, fmt.Sprintf("%s (%d warnings)", detail, warnings)
	}
	return Pass, detail + ": no issues"
}

// writeBack stores a suggestion's resources as an EHR accepting it would:
// one transaction of PUTs (the resources reference each other by id), then
// reads the DiagnosticReport back.
func (c *checker) writeBack(ctx context.Context, actions []Action) (string, string) {
	var entries []any
	report := ""
	for _, a := range actions {
		var head struct{ ResourceType, ID string }
		if json.Unmarshal(a.Resource, &head) != nil || head.ID == "" {
			return Fail, "a create action without a resource id: the EHR cannot keep the references between them"
		}
		if head.ResourceType == "DiagnosticReport" {
			report = "DiagnosticReport/" + head.ID
		}
		entries = append(entries, map[string]any{"fullUrl": c.o.FHIR + "/" + head.ResourceType + "/" + head.ID, "resource": a.Resource,
			"request": map[string]any{"method": "PUT", "url": head.ResourceType + "/" + head.ID}})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	status, out, err := c.fhir.do(ctx, http.MethodPost, "", b)
	if err != nil {
		return Fail, err.Error()
	}
	if status != http.StatusOK {
		return Fail, fmt.Sprintf("transaction: %d %s", status, snippet(out))
	}
	if report == "" {
		return Pass, fmt.Sprintf("%d resources stored", len(entries))
	}
	if status, out, err = c.fhir.do(ctx, http.MethodGet, report, nil); err != nil || status != http.StatusOK {
		return Fail, fmt.Sprintf("read back %s: %d %v %s", report, status, err, snippet(out))
	}
	return Pass, fmt.Sprintf("transaction of %d PUTs; %s read back", len(entries), report)
}

// precompute creates a Subscription pointing at the service and checks
// that a notification reaches the precompute queue and is worked off.
func (c *checker) precompute(ctx context.Context) {
	p := c.plan.Patients[0]
	c.r.run("subscription created on the FHIR server", func() (string, string) {
		sub := map[string]any{
			"resourceType": "Subscription", "id": c.plan.Prefix + "-precompute", "status": "requested",
			"reason":   "orthotriage precompute: analyse new radiographs before the chart is opened",
			"criteria": "ImagingStudy?status=available",
			"channel": map[string]any{"type": "rest-hook", "endpoint": c.o.Service + "/fhir/subscription",
				"payload": "application/fhir+json", "header": []any{"Authorization: Bearer " + c.o.NotificationToken}},
		}
		if err := c.fhir.put(ctx, sub); err != nil {
			return Fail, err.Error()
		}
		return Pass, "Subscription/" + sub["id"].(string) + ": rest-hook to " + c.o.Service + "/fhir/subscription"
	})
	before, err := c.metric(ctx, `orthotriage_precompute_jobs_total{event="done"}`)
	if err != nil {
		c.r.add(Result{Name: "precompute", Status: Fail, Detail: err.Error()})
		return
	}
	delivered := c.r.run("precompute: notification delivered by the FHIR server", func() (string, string) {
		status, body, err := c.fhir.do(ctx, http.MethodGet, "ImagingStudy/"+p.PelvisStudy, nil)
		if err != nil || status != http.StatusOK {
			return Fail, fmt.Sprintf("read ImagingStudy/%s: %d %v", p.PelvisStudy, status, err)
		}
		// Store the study again, changed (a server may skip an update
		// that changes nothing): a server with rest-hook subscriptions
		// notifies on it.
		var study map[string]any
		if err := json.Unmarshal(body, &study); err != nil {
			return Fail, "ImagingStudy/" + p.PelvisStudy + " is not JSON"
		}
		delete(study, "meta")
		study["note"] = []any{map[string]any{"text": "orthotriage sandbox check, " + time.Now().UTC().Format(time.RFC3339)}}
		body, _ = json.Marshal(study)
		if status, out, err := c.fhir.do(ctx, http.MethodPut, "ImagingStudy/"+p.PelvisStudy, body); err != nil || status >= 300 {
			return Fail, fmt.Sprintf("update ImagingStudy/%s: %d %v %s", p.PelvisStudy, status, err, snippet(out))
		}
		if c.waitMetric(ctx, `orthotriage_precompute_jobs_total{event="done"}`, before, c.o.SubscriptionWait) {
			return Pass, "the study was analysed after its update was notified"
		}
		return Warn, fmt.Sprintf("no precompute job done within %s of the update: this server did not deliver the rest-hook (HAPI does with hapi.fhir.subscription.resthook_enabled; the FHIR test server does not)", c.o.SubscriptionWait)
	}) == Pass
	if delivered {
		return
	}
	c.r.run("precompute: rest-hook notification posted by the kit", func() (string, string) {
		body := []byte(`{"resourceType":"ImagingStudy","id":"` + p.PelvisStudy + `"}`)
		status, out, err := c.serviceDo(ctx, http.MethodPost, c.o.Service+"/fhir/subscription", body, "Bearer "+c.o.NotificationToken)
		if err != nil {
			return Fail, err.Error()
		}
		if status != http.StatusOK {
			return Fail, fmt.Sprintf("POST /fhir/subscription: %d %s (set precompute.fhir_server to %s and precompute.notification_token)", status, snippet(out), c.o.FHIR)
		}
		if !c.waitMetric(ctx, `orthotriage_precompute_jobs_total{event="done"}`, before, c.o.Timeout) {
			return Fail, fmt.Sprintf("queued, but no precompute job done within %s (the job reads the study with the issuer's backend_services token, or none)", c.o.Timeout)
		}
		return Pass, "queued and analysed (orthotriage_precompute_jobs_total{event=\"done\"} rose)"
	})
}

// metric reads one series from the service's /metrics.
func (c *checker) metric(ctx context.Context, series string) (float64, error) {
	status, body, err := c.serviceDo(ctx, http.MethodGet, c.o.Service+"/metrics", nil, "")
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d", status)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, nil
}

func (c *checker) waitMetric(ctx context.Context, series string, above float64, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if v, err := c.metric(ctx, series); err == nil && v > above {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return false
}
