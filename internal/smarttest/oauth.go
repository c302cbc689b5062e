package smarttest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/orthotriage/orthotriage/internal/urlx"
)

// codeTTL is how long an authorization code may wait for its exchange.
const codeTTL = 60 * time.Second

// serveConfiguration is <FHIRBase>/.well-known/smart-configuration.
func (s *Server) serveConfiguration(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.URL(),
		"jwks_uri":                              s.URL() + "/auth/jwks",
		"authorization_endpoint":                s.URL() + "/auth/authorize",
		"token_endpoint":                        s.URL() + "/auth/token",
		"token_endpoint_auth_methods_supported": []string{"none"},
		"grant_types_supported":                 []string{"authorization_code"},
		"scopes_supported": append(append([]string(nil), contextScopes...),
			"patient/*.cruds", "patient/*.rs", "patient/*.read", "patient/*.write",
			"user/*.cruds", "user/*.rs", "user/*.read", "user/*.write"),
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"capabilities": []string{"launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
			"permission-v2", "permission-patient", "permission-user", "sso-openid-connect"},
	})
}

// serveJWKS is the JWK set holding the id_token key.
func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	pub := s.key.PublicKey
	b64 := base64.RawURLEncoding.EncodeToString
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.kid,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// problem is one bad authorize parameter: its OAuth error code and text.
type problem struct{ code, text string }

// serveAuthorize is the authorization endpoint. It approves every valid
// request at once and redirects back with a code; a request with a bad
// client_id or redirect_uri gets a 400 page, any other bad request is
// redirected back with an error naming each bad parameter.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := s.redirectURI(q)
	if err != nil {
		refuse(w, "invalid_request")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	g, problems := s.authorizeGrant(q)
	if len(problems) > 0 {
		texts := make([]string, len(problems))
		for i, p := range problems {
			texts[i] = p.text
		}
		refuse(w, problems[0].code)
		redirectWith(w, r, redirect, url.Values{"error": {problems[0].code}, "error_description": {strings.Join(texts, "; ")}, "state": {state}})
		return
	}
	code := randomString()
	s.mu.Lock()
	s.codes[code] = &authCode{grant: g, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), expires: time.Now().Add(codeTTL)}
	s.mu.Unlock()
	redirectWith(w, r, redirect, url.Values{"code": {code}, "state": {state}})
}

// redirectURI checks client_id and redirect_uri, the two parameters that
// decide whether errors may be sent back by redirect.
func (s *Server) redirectURI(q url.Values) (*url.URL, error) {
	var bad []string
	if len(q["client_id"]) != 1 || q.Get("client_id") != s.opts.ClientID {
		bad = append(bad, "client_id: unknown client")
	}
	uri := q.Get("redirect_uri")
	s.mu.Lock()
	prefix := s.opts.RedirectPrefix
	s.mu.Unlock()
	_, under := urlx.Under(prefix, uri)
	u, err := url.Parse(uri)
	switch {
	case len(q["redirect_uri"]) != 1 || uri == "":
		bad = append(bad, "redirect_uri: required, once")
	case prefix == "":
		bad = append(bad, "redirect_uri: the server has no Options.RedirectPrefix")
	case err != nil || u.Fragment != "" || !strings.HasPrefix(uri, prefix) || !under:
		bad = append(bad, fmt.Sprintf("redirect_uri: must lie under %s, without a fragment", prefix))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return u, nil
}

// authorizeGrant checks every authorize parameter but client_id and
// redirect_uri and returns the grant the request asks for.
func (s *Server) authorizeGrant(q url.Values) (grant, []problem) {
	var problems []problem
	bad := func(code, format string, args ...any) {
		problems = append(problems, problem{code, fmt.Sprintf(format, args...)})
	}
	for _, k := range []string{"response_type", "state", "aud", "scope", "launch", "code_challenge", "code_challenge_method"} {
		if len(q[k]) > 1 {
			bad("invalid_request", "%s: given more than once", k)
		}
	}
	if q.Get("response_type") != "code" {
		bad("unsupported_response_type", "response_type: must be code")
	}
	if q.Get("state") == "" {
		bad("invalid_request", "state: required")
	}
	if strings.TrimSuffix(q.Get("aud"), "/") != s.FHIRBase() {
		bad("invalid_request", "aud: must be %s", s.FHIRBase())
	}
	if c := q.Get("code_challenge"); len(c) != 43 || !isBase64URL(c) {
		bad("invalid_request", "code_challenge: required, the base64url SHA-256 of the code_verifier (PKCE)")
	}
	if q.Get("code_challenge_method") != "S256" {
		bad("invalid_request", "code_challenge_method: must be S256")
	}
	g, _ := newGrant(q.Get("scope"))
	if len(g.scopes) == 0 {
		bad("invalid_scope", "scope: no scope this server grants")
	}
	if id := q.Get("launch"); id != "" {
		s.mu.Lock()
		l, ok := s.launches[id]
		s.mu.Unlock()
		switch {
		case !ok:
			bad("invalid_request", "launch: unknown launch id")
		case !g.has("launch"):
			bad("invalid_scope", "scope: an EHR launch needs the launch scope")
		}
		g.launched, g.patient, g.encounter, g.appContext = true, l.Patient, l.Encounter, l.AppContext
	}
	return g, problems
}

// redirectWith redirects to u with params added to its query.
func redirectWith(w http.ResponseWriter, r *http.Request, u *url.URL, params url.Values) {
	to := *u
	q := to.Query()
	for k, v := range params {
		q[k] = v
	}
	to.RawQuery = q.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

// tokenError is an OAuth error answer of the token endpoint.
type tokenError struct {
	status     int
	code, text string
}

// serveToken is the token endpoint: it exchanges an authorization code for
// an access token, once.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.tokenFail(w, tokenError{http.StatusBadRequest, "invalid_request", "body: want a form"})
		return
	}
	g, tok, fail := s.exchange(r.PostForm)
	if fail != nil {
		s.tokenFail(w, *fail)
		return
	}
	resp := map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(s.opts.TokenTTL.Seconds()),
		"scope":        strings.Join(g.scopes, " "),
	}
	if g.launched {
		resp["need_patient_banner"] = false
		for k, v := range map[string]string{"patient": g.patient, "encounter": g.encounter, "appContext": g.appContext} {
			if v != "" {
				resp[k] = v
			}
		}
	}
	if g.has("openid") {
		id, err := s.idToken(g)
		if err != nil {
			s.tokenFail(w, tokenError{http.StatusInternalServerError, "server_error", "id_token: " + err.Error()})
			return
		}
		resp["id_token"] = id
	}
	writeJSON(w, http.StatusOK, resp)
}

// exchange checks a token request and, when it is good, mints the access
// token. A code is spent by its first use, good or bad; using it again also
// revokes the token it gave.
func (s *Server) exchange(f url.Values) (grant, string, *tokenError) {
	switch {
	case f.Get("grant_type") == "":
		return grant{}, "", &tokenError{http.StatusBadRequest, "invalid_request", "grant_type: required"}
	case f.Get("grant_type") != "authorization_code":
		return grant{}, "", &tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type: must be authorization_code"}
	case f.Get("client_id") != s.opts.ClientID:
		return grant{}, "", &tokenError{http.StatusUnauthorized, "invalid_client", "client_id: unknown client"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.codes[f.Get("code")]
	invalid := func(text string) (grant, string, *tokenError) {
		return grant{}, "", &tokenError{http.StatusBadRequest, "invalid_grant", text}
	}
	switch {
	case c == nil:
		return invalid("code: unknown")
	case c.used:
		delete(s.tokens, c.token)
		return invalid("code: already used")
	}
	c.used = true
	switch {
	case time.Now().After(c.expires):
		return invalid("code: expired")
	case f.Get("redirect_uri") != c.redirectURI:
		return invalid("redirect_uri: must be the one of the authorize request")
	case !verifies(f.Get("code_verifier"), c.challenge):
		return invalid("code_verifier: does not match the code_challenge")
	}
	c.token = randomString()
	s.tokens[c.token] = &accessToken{grant: c.grant, expires: time.Now().Add(s.opts.TokenTTL)}
	return c.grant, c.token, nil
}

// verifies reports whether verifier is a PKCE code verifier (RFC 7636: 43 to
// 128 unreserved characters) whose S256 challenge is challenge.
func verifies(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || strings.Trim(verifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != "" {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// isBase64URL reports whether s uses only the base64url alphabet.
func isBase64URL(s string) bool {
	return strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

func (s *Server) tokenFail(w http.ResponseWriter, e tokenError) {
	refuse(w, e.code)
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.text})
}

// idToken is the OpenID Connect id_token of the logged-in clinician, with
// the fhirUser claim when the fhirUser scope was granted.
func (s *Server) idToken(g grant) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": s.URL(),
		"aud": s.opts.ClientID,
		"sub": s.opts.Practitioner,
		"iat": now.Unix(),
		"exp": now.Add(s.opts.TokenTTL).Unix(),
	}
	if g.has("fhirUser") {
		claims["fhirUser"] = "Practitioner/" + s.opts.Practitioner
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = s.kid
	return tok.SignedString(s.key)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "smarttest: encode the answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
