// Package smarttest is a SMART App Launch 2.x authorization server for
// tests, in front of the project's FHIR test server (testenv.FHIRServer).
//
// It plays the EHR: Launch makes the launch id an EHR puts in the app's
// launch URL, the authorization endpoint approves every well-formed request
// at once (the clinician is logged in and consents), and the token endpoint
// answers with the launch's patient and appContext and an OpenID Connect
// id_token. Only public clients with PKCE S256 are served.
//
// Its FHIR base (FHIRBase, the iss an app sees) is a proxy to the real test
// server that forwards only requests whose bearer token it issued, and only
// what the token's SMART scopes allow: the resource type and interaction,
// and for patient/ scopes the patient's compartment. Refusals are FHIR
// OperationOutcomes (401 without a valid token, 403 outside the scopes).
// Read, vread, search, create, update, delete and batch and transaction
// Bundles are authorized; other interactions (operations, history,
// conditional interactions, PATCH) are refused.
//
// Endpoints: <FHIRBase>/.well-known/smart-configuration and
// <FHIRBase>/metadata (no token needed), /auth/authorize, /auth/token and
// /auth/jwks (the id_token key). The FHIR proxy, the token endpoint and the
// JWK set answer CORS preflights from any origin.
//
// It is a test double: it keeps everything in memory and trusts its
// caller, but it treats what arrives over HTTP as untrusted.
package smarttest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/internal/urlx"
)

// fhirPath is the path of FHIRBase on the server.
const fhirPath = "/fhir/R4"

// maxLogged bounds the request log; Requests returns the latest.
const maxLogged = 10000

// Options configures Start.
type Options struct {
	// Upstream is the FHIR base of the real FHIR test server, such as
	// http://127.0.0.1:P/fhir/R4.
	Upstream string
	// UpstreamToken is the bearer token the upstream demands ("" for none).
	UpstreamToken string
	// ClientID is the one registered public client; "orthotriage" when empty.
	ClientID string
	// RedirectPrefix is where the client's redirect URIs lie, a folder URL
	// such as http://127.0.0.1:APP/app/: a redirect_uri must start with it
	// and lie below it. When empty, every authorize request is refused.
	RedirectPrefix string
	// TokenTTL is how long access tokens live; one hour when zero.
	TokenTTL time.Duration
	// Practitioner is the id of the logged-in clinician, the id_token's sub
	// and fhirUser; "test-practitioner" when empty.
	Practitioner string
}

// LaunchContext is what the EHR knows when it launches the app.
type LaunchContext struct {
	Patient    string // a Patient id, without "Patient/"
	Encounter  string // an Encounter id; "" for none
	AppContext string // passed to the app verbatim in the token response
}

// Logged is one request the server answered. It holds no query, tokens or
// codes, so tests may print it.
type Logged struct {
	Method string
	Path   string
	Status int
	// Error is the OAuth error code (invalid_request, invalid_grant, ...)
	// or the OperationOutcome issue code (login, forbidden, ...) of a
	// refusal; "" when the server did not refuse the request (an upstream
	// error answer is forwarded as it is).
	Error string
}

// Server is a running SMART authorization server with its FHIR proxy.
type Server struct {
	t        testing.TB
	opts     Options
	upstream string // Options.Upstream without a trailing slash
	srv      *httptest.Server
	client   *http.Client
	key      *rsa.PrivateKey
	kid      string

	mu       sync.Mutex
	launches map[string]LaunchContext
	codes    map[string]*authCode
	tokens   map[string]*accessToken
	log      []Logged
}

// SetRedirectPrefix sets Options.RedirectPrefix once the app's address is
// known (the server may start before the app).
func (s *Server) SetRedirectPrefix(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RedirectPrefix = prefix
}

// authCode is an issued authorization code with what the token request
// must match.
type authCode struct {
	grant       grant
	redirectURI string
	challenge   string
	expires     time.Time
	used        bool
	token       string // the access token it was exchanged for
}

// accessToken is an issued access token.
type accessToken struct {
	grant   grant
	expires time.Time
}

// Start starts a Server on a loopback port; it is closed when the test
// ends. Options.Upstream is required.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.ClientID == "" {
		o.ClientID = "orthotriage"
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.Practitioner == "" {
		o.Practitioner = "test-practitioner"
	}
	if urlx.Origin(o.Upstream) == "" {
		t.Fatalf("smarttest: Options.Upstream %q: want an absolute http(s) URL", o.Upstream)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("smarttest: generate the id_token key: %v", err)
	}
	sum := sha256.Sum256(key.N.Bytes())
	transport := http.DefaultTransport.(*http.Transport).Clone()
	s := &Server{
		t:        t,
		opts:     o,
		upstream: strings.TrimSuffix(o.Upstream, "/"),
		client: &http.Client{
			Transport:     transport,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		key:      key,
		kid:      base64.RawURLEncoding.EncodeToString(sum[:8]),
		launches: map[string]LaunchContext{},
		codes:    map[string]*authCode{},
		tokens:   map[string]*accessToken{},
	}
	s.srv = httptest.NewServer(s.routes())
	t.Cleanup(func() {
		s.srv.Close()
		transport.CloseIdleConnections()
	})
	return s
}

// URL is the server's origin, http://127.0.0.1:P: the id_token issuer.
func (s *Server) URL() string { return s.srv.URL }

// FHIRBase is the FHIR base the app is launched with (its iss): the proxy
// to Options.Upstream.
func (s *Server) FHIRBase() string { return s.srv.URL + fhirPath }

// PublicKey is the key id_tokens are signed with (also served as a JWK set
// at URL()+"/auth/jwks").
func (s *Server) PublicKey() *rsa.PublicKey { return &s.key.PublicKey }

// Launch registers what the EHR knows at launch and returns the launch id to
// pass to the app as its launch parameter. A launch id may be used for any
// number of authorizations.
func (s *Server) Launch(l LaunchContext) string {
	id := randomString()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.launches[id] = l
	return id
}

// Token mints an access token directly, as the token endpoint would after an
// authorization with these scopes, for API tests without a browser. patient
// is the token's patient id ("" for none: then patient/ scopes grant
// nothing). A scope may also be a space-separated list; one the server does
// not understand fails the test.
func (s *Server) Token(patient string, scopes ...string) string {
	g, unknown := newGrant(strings.Join(scopes, " "))
	if len(unknown) > 0 {
		s.t.Errorf("smarttest: Token: scopes not understood: %q", unknown)
	}
	g.patient = patient
	return s.mint(g)
}

// Revoke makes token invalid from now on.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
}

// Requests returns the requests answered so far (the latest 10000), oldest
// first.
func (s *Server) Requests() []Logged {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Logged(nil), s.log...)
}

// mint stores a new access token carrying g.
func (s *Server) mint(g grant) string {
	tok := randomString()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = &accessToken{grant: g, expires: time.Now().Add(s.opts.TokenTTL)}
	return tok
}

// bearer returns the grant of the request's unexpired access token.
func (s *Server) bearer(r *http.Request) (grant, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return grant{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.tokens[strings.TrimSpace(tok)]
	if a == nil || time.Now().After(a.expires) {
		return grant{}, false
	}
	return a.grant, true
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+fhirPath+"/.well-known/smart-configuration", s.serveConfiguration)
	mux.HandleFunc("GET "+fhirPath+"/metadata", s.serveMetadata)
	mux.HandleFunc(fhirPath, s.serveFHIR)
	mux.HandleFunc(fhirPath+"/", s.serveFHIR)
	mux.HandleFunc("GET /auth/authorize", s.serveAuthorize)
	mux.HandleFunc("POST /auth/token", s.serveToken)
	mux.HandleFunc("GET /auth/jwks", s.serveJWKS)
	return s.logged(cors(mux))
}

// cors lets browser apps of any origin call the FHIR proxy, the token
// endpoint and the JWK set: it answers preflights itself and marks every
// other response as readable by the requesting origin.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != fhirPath && !strings.HasPrefix(p, fhirPath+"/") && p != "/auth/token" && p != "/auth/jwks" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Location, Content-Location, ETag, Last-Modified")
		}
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Prefer")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// logged records every answered request in the server's log, before the
// answer goes out, so a test sees it as soon as it has the response.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lw := &loggingWriter{ResponseWriter: w, s: s, entry: Logged{Method: r.Method, Path: r.URL.Path}}
		next.ServeHTTP(lw, r)
		lw.record(http.StatusOK)
	})
}

// loggingWriter is the ResponseWriter handlers see; refuse notes the reason
// of a refusal in it.
type loggingWriter struct {
	http.ResponseWriter
	s        *Server
	entry    Logged
	recorded bool
}

func (w *loggingWriter) WriteHeader(status int) {
	w.record(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *loggingWriter) Write(b []byte) (int, error) {
	w.record(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *loggingWriter) record(status int) {
	if w.recorded {
		return
	}
	w.recorded = true
	w.entry.Status = status
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if len(w.s.log) == maxLogged {
		w.s.log = slices.Delete(w.s.log, 0, 1)
	}
	w.s.log = append(w.s.log, w.entry)
}

// refuse notes why the request is refused, for Requests.
func refuse(w http.ResponseWriter, reason string) {
	if lw, ok := w.(*loggingWriter); ok {
		lw.entry.Error = reason
	}
}

// randomString returns 32 random bytes, base64url: codes, tokens, launch ids.
func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
