package smarttest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/orthotriage/orthotriage/internal/smarttest"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

const (
	upstreamToken = "upstream-secret"
	app           = "http://127.0.0.1:9/app/" // never dialled: redirects are read, not followed
)

// env is a smarttest server in front of a fresh FHIR test server.
type env struct {
	s        *smarttest.Server
	upstream string
}

func newEnv(t *testing.T) env {
	t.Helper()
	up := testenv.FHIRServer(t, upstreamToken)
	s := smarttest.Start(t, smarttest.Options{Upstream: up, UpstreamToken: upstreamToken, RedirectPrefix: app})
	return env{s: s, upstream: up}
}

// noRedirects is a client that hands back redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request and returns the response with its body read.
func do(t *testing.T, method, target, token string, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// pkce returns a code verifier and its S256 challenge.
func pkce(seed string) (verifier, challenge string) {
	verifier = base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%-40s", seed)))
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeParams is a good EHR-launch authorize request.
func authorizeParams(s *smarttest.Server, challenge, launch string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {"orthotriage"},
		"redirect_uri":          {app + "viewer.html"},
		"scope":                 {"launch openid fhirUser patient/ImagingStudy.rs patient/Patient.rs patient/Observation.cru not/understood"},
		"state":                 {"st-1"},
		"aud":                   {s.FHIRBase() + "/"},
		"launch":                {launch},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
}

// authorize sends an authorize request and returns its status and, for a
// redirect, the query it redirects with.
func authorize(t *testing.T, s *smarttest.Server, q url.Values) (int, url.Values) {
	t.Helper()
	resp, _ := do(t, http.MethodGet, s.URL()+"/auth/authorize?"+q.Encode(), "", "")
	if resp.StatusCode != http.StatusFound {
		return resp.StatusCode, nil
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), app) {
		t.Fatalf("authorize redirected to %q", resp.Header.Get("Location"))
	}
	return resp.StatusCode, loc.Query()
}

// exchange posts a token request and returns the status and JSON answer.
func exchange(t *testing.T, s *smarttest.Server, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(s.URL()+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("token answer: %v", err)
	}
	return resp, answer
}

// code runs a good authorization and returns the code.
func code(t *testing.T, s *smarttest.Server, challenge, launch string) string {
	t.Helper()
	status, q := authorize(t, s, authorizeParams(s, challenge, launch))
	if status != http.StatusFound || q.Get("code") == "" || q.Get("state") != "st-1" {
		t.Fatalf("authorize: %d %v", status, q)
	}
	return q.Get("code")
}

func tokenForm(code, verifier string) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {app + "viewer.html"},
		"client_id":     {"orthotriage"},
		"code_verifier": {verifier},
	}
}

const appContext = `{"imagingStudy":"ImagingStudy/123","studyInstanceUid":"1.2.3","card":"c-1","service":"hip-radiograph-screening"}`

func TestCodeFlow(t *testing.T) {
	e := newEnv(t)
	s := e.s
	patient := testenv.FHIRCreate(t, e.upstream, upstreamToken, `{"resourceType":"Patient","name":[{"family":"Launch"}]}`)
	launch := s.Launch(smarttest.LaunchContext{Patient: patient, AppContext: appContext})

	t.Run("EHR launch with PKCE", func(t *testing.T) {
		verifier, challenge := pkce("good")
		resp, answer := exchange(t, s, tokenForm(code(t, s, challenge, launch), verifier))
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("token: %d %s %v", resp.StatusCode, resp.Header.Get("Cache-Control"), answer)
		}
		token, _ := answer["access_token"].(string)
		idToken, _ := answer["id_token"].(string)
		delete(answer, "access_token")
		delete(answer, "id_token")
		want := map[string]any{
			"token_type":          "Bearer",
			"expires_in":          float64(3600),
			"scope":               "launch openid fhirUser patient/ImagingStudy.rs patient/Patient.rs patient/Observation.cru",
			"patient":             patient,
			"appContext":          appContext,
			"need_patient_banner": false,
		}
		if d := cmp.Diff(want, answer); d != "" {
			t.Errorf("token answer (-want +got):\n%s", d)
		}

		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(idToken, claims, func(*jwt.Token) (any, error) { return s.PublicKey(), nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(s.URL()), jwt.WithAudience("orthotriage"))
		if err != nil {
			t.Fatalf("id_token: %v", err)
		}
		if claims["sub"] != "test-practitioner" || claims["fhirUser"] != "Practitioner/test-practitioner" {
			t.Errorf("id_token claims: %v", claims)
		}

		r, b := do(t, http.MethodGet, s.FHIRBase()+"/Patient/"+patient, token, "")
		if r.StatusCode != http.StatusOK {
			t.Errorf("read the launch patient with the token: %d %s", r.StatusCode, b)
		}
	})

	t.Run("standalone launch has no patient", func(t *testing.T) {
		verifier, challenge := pkce("standalone")
		q := authorizeParams(s, challenge, "")
		q.Del("launch")
		q.Set("scope", "openid user/ImagingStudy.rs")
		status, got := authorize(t, s, q)
		if status != http.StatusFound || got.Get("code") == "" {
			t.Fatalf("authorize: %d %v", status, got)
		}
		resp, answer := exchange(t, s, tokenForm(got.Get("code"), verifier))
		if resp.StatusCode != http.StatusOK || answer["patient"] != nil || answer["need_patient_banner"] != nil || answer["scope"] != "openid user/ImagingStudy.rs" {
			t.Errorf("token: %d %v", resp.StatusCode, answer)
		}
	})

	t.Run("an encounter when the launch has one", func(t *testing.T) {
		verifier, challenge := pkce("encounter")
		l := s.Launch(smarttest.LaunchContext{Patient: patient, Encounter: "enc-1"})
		q := authorizeParams(s, challenge, l)
		q.Set("scope", "launch patient/Patient.rs")
		_, got := authorize(t, s, q)
		resp, answer := exchange(t, s, tokenForm(got.Get("code"), verifier))
		if resp.StatusCode != http.StatusOK || answer["encounter"] != "enc-1" || answer["appContext"] != nil || answer["id_token"] != nil {
			t.Errorf("token: %d %v", resp.StatusCode, answer)
		}
	})

	t.Run("authorize refusals", func(t *testing.T) {
		_, challenge := pkce("refused")
		tests := []struct {
			name   string
			change func(url.Values)
			status int
			error  string
		}{
			{name: "no code_challenge", change: func(q url.Values) { q.Del("code_challenge") }, status: http.StatusFound, error: "invalid_request"},
			{name: "plain PKCE", change: func(q url.Values) { q.Set("code_challenge_method", "plain") }, status: http.StatusFound, error: "invalid_request"},
			{name: "no state", change: func(q url.Values) { q.Del("state") }, status: http.StatusFound, error: "invalid_request"},
			{name: "wrong aud", change: func(q url.Values) { q.Set("aud", e.upstream) }, status: http.StatusFound, error: "invalid_request"},
			{name: "implicit grant", change: func(q url.Values) { q.Set("response_type", "token") }, status: http.StatusFound, error: "unsupported_response_type"},
			{name: "unknown launch", change: func(q url.Values) { q.Set("launch", "made-up") }, status: http.StatusFound, error: "invalid_request"},
			{name: "launch without the launch scope", change: func(q url.Values) { q.Set("scope", "openid patient/ImagingStudy.rs") }, status: http.StatusFound, error: "invalid_scope"},
			{name: "no scope it grants", change: func(q url.Values) { q.Set("scope", "system/*.rs") }, status: http.StatusFound, error: "invalid_scope"},
			{name: "redirect_uri elsewhere", change: func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9/evil/") }, status: http.StatusBadRequest},
			{name: "redirect_uri climbing out", change: func(q url.Values) { q.Set("redirect_uri", app+"../evil") }, status: http.StatusBadRequest},
			{name: "unknown client", change: func(q url.Values) { q.Set("client_id", "other") }, status: http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := authorizeParams(s, challenge, launch)
				tt.change(q)
				status, got := authorize(t, s, q)
				if status != tt.status || got.Get("code") != "" || got.Get("error") != tt.error {
					t.Errorf("authorize: %d %v, want %d error %q", status, got, tt.status, tt.error)
				}
				if tt.status == http.StatusFound && got.Get("state") != q.Get("state") {
					t.Errorf("state %q, want %q", got.Get("state"), q.Get("state"))
				}
			})
		}
		var refused bool
		for _, l := range s.Requests() {
			refused = refused || l == smarttest.Logged{Method: http.MethodGet, Path: "/auth/authorize", Status: http.StatusFound, Error: "invalid_request"}
		}
		if !refused {
			t.Errorf("Requests() shows no refused authorize: %+v", s.Requests())
		}
	})

	t.Run("token refusals", func(t *testing.T) {
		verifier, challenge := pkce("token")
		tests := []struct {
			name   string
			change func(url.Values)
			status int
			error  string
		}{
			{name: "wrong code_verifier", change: func(f url.Values) { f.Set("code_verifier", strings.Repeat("x", 43)) }, status: http.StatusBadRequest, error: "invalid_grant"},
			{name: "no code_verifier", change: func(f url.Values) { f.Del("code_verifier") }, status: http.StatusBadRequest, error: "invalid_grant"},
			{name: "other redirect_uri", change: func(f url.Values) { f.Set("redirect_uri", app+"worklist.html") }, status: http.StatusBadRequest, error: "invalid_grant"},
			{name: "unknown code", change: func(f url.Values) { f.Set("code", "made-up") }, status: http.StatusBadRequest, error: "invalid_grant"},
			{name: "other client", change: func(f url.Values) { f.Set("client_id", "other") }, status: http.StatusUnauthorized, error: "invalid_client"},
			{name: "refresh grant", change: func(f url.Values) { f.Set("grant_type", "refresh_token") }, status: http.StatusBadRequest, error: "unsupported_grant_type"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := tokenForm(code(t, s, challenge, launch), verifier)
				tt.change(f)
				resp, answer := exchange(t, s, f)
				if resp.StatusCode != tt.status || answer["error"] != tt.error || answer["access_token"] != nil {
					t.Errorf("token: %d %v, want %d %s", resp.StatusCode, answer, tt.status, tt.error)
				}
			})
		}
	})

	t.Run("a code is spent once and its reuse revokes its token", func(t *testing.T) {
		verifier, challenge := pkce("reuse")
		c := code(t, s, challenge, launch)
		resp, answer := exchange(t, s, tokenForm(c, verifier))
		token, _ := answer["access_token"].(string)
		if resp.StatusCode != http.StatusOK || token == "" {
			t.Fatalf("first exchange: %d %v", resp.StatusCode, answer)
		}
		resp, answer = exchange(t, s, tokenForm(c, verifier))
		if resp.StatusCode != http.StatusBadRequest || answer["error"] != "invalid_grant" {
			t.Errorf("second exchange: %d %v", resp.StatusCode, answer)
		}
		if r, b := do(t, http.MethodGet, s.FHIRBase()+"/Patient/"+patient, token, ""); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("the first token after the reuse: %d %s", r.StatusCode, b)
		}
	})
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	s := e.s

	resp, b := do(t, http.MethodGet, s.FHIRBase()+"/.well-known/smart-configuration", "", "", "Origin", "http://127.0.0.1:9")
	var conf struct {
		Issuer                 string   `json:"issuer"`
		AuthorizationEndpoint  string   `json:"authorization_endpoint"`
		TokenEndpoint          string   `json:"token_endpoint"`
		CodeChallengeMethods   []string `json:"code_challenge_methods_supported"`
		Capabilities           []string `json:"capabilities"`
		TokenEndpointAuthMeths []string `json:"token_endpoint_auth_methods_supported"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &conf) != nil || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9" {
		t.Fatalf("smart-configuration: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	if conf.AuthorizationEndpoint != s.URL()+"/auth/authorize" || conf.TokenEndpoint != s.URL()+"/auth/token" ||
		!cmp.Equal(conf.CodeChallengeMethods, []string{"S256"}) || !cmp.Equal(conf.TokenEndpointAuthMeths, []string{"none"}) ||
		len(conf.Capabilities) != 8 {
		t.Errorf("smart-configuration: %s", b)
	}

	resp, b = do(t, http.MethodGet, s.FHIRBase()+"/metadata", "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"resourceType":"CapabilityStatement"`) {
		t.Errorf("metadata without a token: %d %s", resp.StatusCode, b)
	}

	for _, path := range []string{"/fhir/R4/ImagingStudy", "/auth/token"} {
		resp, _ = do(t, http.MethodOptions, s.URL()+path, "", "", "Origin", "http://127.0.0.1:9",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type")
		got := map[string]string{}
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
			got[h] = resp.Header.Get(h)
		}
		want := map[string]string{
			"Access-Control-Allow-Origin":  "http://127.0.0.1:9",
			"Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
			"Access-Control-Allow-Headers": "Authorization, Content-Type, Accept, Prefer",
		}
		if resp.StatusCode != http.StatusNoContent || !cmp.Equal(want, got) {
			t.Errorf("preflight of %s: %d %v", path, resp.StatusCode, got)
		}
	}

	resp, _ = do(t, http.MethodGet, s.FHIRBase()+"/Patient/x", "", "", "Origin", "http://127.0.0.1:9")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9" {
		t.Errorf("a refusal lacks CORS: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestProxy(t *testing.T) {
	e := newEnv(t)
	s := e.s
	create := func(resource string) string { return testenv.FHIRCreate(t, e.upstream, upstreamToken, resource) }
	own := create(`{"resourceType":"Patient","name":[{"family":"Own"}]}`)
	other := create(`{"resourceType":"Patient","name":[{"family":"Other"}]}`)
	study := func(patient string) string {
		return create(`{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/` + patient + `"}}`)
	}
	ownStudy, otherStudy := study(own), study(other)
	otherObs := create(observation("", other))

	patientToken := s.Token(own, "patient/ImagingStudy.rs patient/Patient.rs", "patient/Observation.cru", "patient/Provenance.cru")
	userToken := s.Token("", "user/ImagingStudy.rs", "user/Observation.write")
	revoked := s.Token(own, "patient/ImagingStudy.rs")
	s.Revoke(revoked)

	tests := []struct {
		name   string
		token  string
		method string
		path   string
		body   string
		status int
	}{
		{name: "no token", method: http.MethodGet, path: "ImagingStudy/" + ownStudy, status: http.StatusUnauthorized},
		{name: "a token it did not issue", token: upstreamToken, method: http.MethodGet, path: "ImagingStudy/" + ownStudy, status: http.StatusUnauthorized},
		{name: "a revoked token", token: revoked, method: http.MethodGet, path: "ImagingStudy/" + ownStudy, status: http.StatusUnauthorized},
		{name: "own patient's study", token: patientToken, method: http.MethodGet, path: "ImagingStudy/" + ownStudy, status: http.StatusOK},
		{name: "another patient's study", token: patientToken, method: http.MethodGet, path: "ImagingStudy/" + otherStudy, status: http.StatusForbidden},
		{name: "own Patient", token: patientToken, method: http.MethodGet, path: "Patient/" + own, status: http.StatusOK},
		{name: "another Patient", token: patientToken, method: http.MethodGet, path: "Patient/" + other, status: http.StatusForbidden},
		{name: "a missing study", token: patientToken, method: http.MethodGet, path: "ImagingStudy/nope", status: http.StatusNotFound},
		{name: "a type without a scope", token: patientToken, method: http.MethodGet, path: "DiagnosticReport/x", status: http.StatusForbidden},
		{name: "search without patient", token: patientToken, method: http.MethodGet, path: "ImagingStudy", status: http.StatusForbidden},
		{name: "search of another patient", token: patientToken, method: http.MethodGet, path: "ImagingStudy?patient=" + other, status: http.StatusForbidden},
		{name: "search of two patients", token: patientToken, method: http.MethodGet, path: "ImagingStudy?patient=" + own + "," + other, status: http.StatusForbidden},
		{name: "search by patient reference", token: patientToken, method: http.MethodGet, path: "ImagingStudy?patient=Patient/" + own, status: http.StatusOK},
		{name: "search by subject id", token: patientToken, method: http.MethodGet, path: "ImagingStudy?subject=" + own, status: http.StatusOK},
		{name: "an operation", token: patientToken, method: http.MethodGet, path: "Patient/" + own + "/$everything", status: http.StatusForbidden},
		{name: "create for own patient", token: patientToken, method: http.MethodPost, path: "Observation", body: observation("", own), status: http.StatusCreated},
		{name: "create for another patient", token: patientToken, method: http.MethodPost, path: "Observation", body: observation("", other), status: http.StatusForbidden},
		{name: "update taking another patient's resource", token: patientToken, method: http.MethodPut, path: "Observation/" + otherObs, body: observation(otherObs, own), status: http.StatusForbidden},
		{name: "delete without a scope", token: patientToken, method: http.MethodDelete, path: "Observation/" + otherObs, status: http.StatusForbidden},
		{name: "user scope reads any study", token: userToken, method: http.MethodGet, path: "ImagingStudy/" + otherStudy, status: http.StatusOK},
		{name: "user scope searches all", token: userToken, method: http.MethodGet, path: "ImagingStudy", status: http.StatusOK},
		{name: "user scope v1 write updates", token: userToken, method: http.MethodPut, path: "Observation/" + otherObs, body: observation(otherObs, other), status: http.StatusOK},
		{name: "user scope without read of Patient", token: userToken, method: http.MethodGet, path: "Patient/" + own, status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := do(t, tt.method, s.FHIRBase()+"/"+tt.path, tt.token, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, resp.StatusCode, b, tt.status)
			}
			if tt.status >= 400 && tt.status != http.StatusNotFound && !strings.Contains(string(b), `"resourceType":"OperationOutcome"`) {
				t.Errorf("refusal is not an OperationOutcome: %s", b)
			}
		})
	}

	t.Run("search answers link to the proxy", func(t *testing.T) {
		resp, b := do(t, http.MethodGet, s.FHIRBase()+"/ImagingStudy?patient=Patient/"+own, patientToken, "")
		var found struct {
			Total int
			Link  []struct{ URL string }
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &found) != nil || found.Total != 1 || len(found.Link) == 0 ||
			!strings.HasPrefix(found.Link[0].URL, s.FHIRBase()+"/") {
			t.Errorf("search: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		tests := []struct {
			name    string
			entries []string // PUT Observation/id entries: id for patient
			status  int
			written bool
		}{
			{name: "for another patient", entries: []string{"tx-own-1", own, "tx-other-1", other}, status: http.StatusForbidden},
			{name: "for its own patient", entries: []string{"tx-own-2", own, "tx-own-3", own}, status: http.StatusOK, written: true},
			{name: "over another patient's resource", entries: []string{otherObs, own}, status: http.StatusForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var entries []string
				for i := 0; i+1 < len(tt.entries); i += 2 {
					id := tt.entries[i]
					entries = append(entries, `{"resource":`+observation(id, tt.entries[i+1])+`,"request":{"method":"PUT","url":"Observation/`+id+`"}}`)
				}
				bundle := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
				resp, b := do(t, http.MethodPost, s.FHIRBase(), patientToken, bundle)
				if resp.StatusCode != tt.status {
					t.Fatalf("transaction: %d %s, want %d", resp.StatusCode, b, tt.status)
				}
				if !tt.written {
					return
				}
				for i := 0; i < len(tt.entries); i += 2 {
					if status, b := testenv.FHIRDo(t, e.upstream, upstreamToken, http.MethodGet, "Observation/"+tt.entries[i], nil); status != http.StatusOK {
						t.Errorf("Observation/%s upstream: %d %s", tt.entries[i], status, b)
					}
				}
			})
		}
		if status, _ := testenv.FHIRDo(t, e.upstream, upstreamToken, http.MethodGet, "Observation/tx-own-1", nil); status != http.StatusNotFound {
			t.Errorf("a refused transaction wrote Observation/tx-own-1: %d", status)
		}
	})
}

// observation is an Observation of the patient, with id when not "".
func observation(id, patient string) string {
	idField := ""
	if id != "" {
		idField = `"id":"` + id + `",`
	}
	return `{"resourceType":"Observation",` + idField + `"status":"preliminary","code":{"text":"hip fracture"},"subject":{"reference":"Patient/` + patient + `"}}`
}
