package auth_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/auth/authtest"
	"github.com/orthotriage/orthotriage/store"
)

const (
	issA = "https://ehr-a.example.org"
	issB = "https://ehr-b.example.org"
	aud  = "https://cds.example.org/cds-services/hip-radiograph-screening"
)

type fixture struct {
	v          *auth.Verifier
	es, rs, ps authtest.Key
	rotated    authtest.Key
	remote     authtest.Key
	jkuURL     string
	otherJKU   string
	logs       *bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		es: authtest.NewKey(t, "es", "ES384"), rs: authtest.NewKey(t, "rs", "RS384"), ps: authtest.NewKey(t, "ps", "PS256"),
		rotated: authtest.NewKey(t, "rot", "ES256"), remote: authtest.NewKey(t, "remote", "ES512"), logs: &bytes.Buffer{},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/rotated.json", "/elsewhere.json":
			w.Write(authtest.JWKS(f.rotated))
		case "/b.json":
			w.Write(authtest.JWKS(f.remote))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	f.jkuURL, f.otherJKU = srv.URL+"/rotated.json", srv.URL+"/elsewhere.json"
	file := filepath.Join(t.TempDir(), "a.json")
	if err := os.WriteFile(file, authtest.JWKS(f.es, f.rs, f.ps), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(f.logs, nil))
	v, err := auth.NewVerifier(t.Context(), []auth.Issuer{
		{ID: issA, JWKSFile: file, JKUAllowlist: []string{f.jkuURL}},
		{ID: issB, JWKSURL: srv.URL + "/b.json"},
	}, store.NewMemoryReplay(1000), 30*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	with := func(mutate func(jwt.MapClaims)) jwt.MapClaims {
		c := authtest.Claims(issA, aud)
		mutate(c)
		return c
	}
	none := func(jwt.MapClaims) {}
	rsPublic, _ := x509.MarshalPKIXPublicKey(&f.rs.Private.(*rsa.PrivateKey).PublicKey)
	hsWithPublicKey := func(t *testing.T) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, authtest.Claims(issA, aud))
		tok.Header["kid"] = "rs"
		s, err := tok.SignedString(rsPublic)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	algNone := func(t *testing.T) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, authtest.Claims(issA, aud))
		tok.Header["kid"] = "es"
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tamper := func(t *testing.T) string {
		s := authtest.Sign(t, f.es, authtest.Claims(issA, aud), nil)
		parts := strings.Split(s, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = bytes.Replace(payload, []byte(`"sub":"ehr-client"`), []byte(`"sub":"ehr-clienX"`), 1)
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}
	tests := []struct {
		name   string
		token  func(t *testing.T) string
		aud    string
		reason string // empty: must verify
	}{
		{name: "ES384", token: func(t *testing.T) string { return authtest.Sign(t, f.es, with(none), nil) }},
		{name: "RS384", token: func(t *testing.T) string { return authtest.Sign(t, f.rs, with(none), nil) }},
		{name: "PS256", token: func(t *testing.T) string { return authtest.Sign(t, f.ps, with(none), nil) }},
		{name: "aud as an array", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["aud"] = []string{"https://other.example.org", aud} }), nil)
		}},
		{name: "extra claims", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["tenant"] = "north"; c["scope"] = "x" }), nil)
		}},
		{name: "jku on the allowlist", token: func(t *testing.T) string {
			return authtest.Sign(t, f.rotated, with(none), map[string]any{"jku": f.jkuURL})
		}},
		{name: "issuer with a JWKS URL", token: func(t *testing.T) string {
			return authtest.Sign(t, f.remote, authtest.Claims(issB, aud), nil)
		}},
		{name: "missing token", token: func(*testing.T) string { return "" }, reason: "no bearer token"},
		{name: "not a JWT", token: func(*testing.T) string { return "abc.def" }, reason: "not a JWT"},
		{name: "alg none", token: algNone, reason: "algorithm not allowed"},
		{name: "HS256 with the public key as secret", token: hsWithPublicKey, reason: "algorithm not allowed"},
		{name: "aud of another service", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["aud"] = "https://cds.example.org/cds-services/vertebral-fracture-acuity" }), nil)
		}, reason: "aud is not the URL called"},
		{name: "aud with a trailing slash", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["aud"] = aud + "/" }), nil)
		}, reason: "aud is not the URL called"},
		{name: "feedback aud on a hook call", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["aud"] = aud + "/feedback" }), nil)
		}, reason: "aud is not the URL called"},
		{name: "expired", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), nil)
		}, reason: "token expired"},
		{name: "no exp", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { delete(c, "exp") }), nil)
		}, reason: "required claim (exp)"},
		{name: "nbf in the future", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() }), nil)
		}, reason: "not valid yet"},
		{name: "iat in the future", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(10 * time.Minute).Unix() }), nil)
		}, reason: "issued in the future"},
		{name: "no iat", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { delete(c, "iat") }), nil)
		}, reason: "no iat"},
		{name: "no jti", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { delete(c, "jti") }), nil)
		}, reason: "no jti"},
		{name: "unknown kid", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(none), map[string]any{"kid": "nope"})
		}, reason: "no key to verify with"},
		{name: "no kid", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(none), map[string]any{"kid": nil})
		}, reason: "no kid"},
		{name: "key of another issuer", token: func(t *testing.T) string {
			return authtest.Sign(t, f.remote, with(none), nil)
		}, reason: "no key to verify with"},
		{name: "unknown iss", token: func(t *testing.T) string {
			return authtest.Sign(t, f.es, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.org" }), nil)
		}, reason: "not trusted"},
		{name: "jku not on the allowlist", token: func(t *testing.T) string {
			return authtest.Sign(t, f.rotated, with(none), map[string]any{"jku": f.otherJKU})
		}, reason: "not on the issuer's allowlist"},
		{name: "tampered payload", token: tamper, reason: "signature invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token(t)
			claims, err := f.v.Verify(t.Context(), token, aud)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.Issuer == "" || claims.ID == "" {
					t.Errorf("claims %+v", claims)
				}
				return
			}
			if !errors.Is(err, auth.ErrUnauthorized) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want unauthorized: %s", err, tt.reason)
			}
			if token != "" && strings.Contains(err.Error(), token) {
				t.Errorf("the error carries the token")
			}
		})
	}
}

func TestReplayedTokenRefused(t *testing.T) {
	f := newFixture(t)
	token := authtest.Sign(t, f.es, authtest.Claims(issA, aud), nil)
	if _, err := f.v.Verify(t.Context(), token, aud); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(t.Context(), token, aud); !errors.Is(err, auth.ErrUnauthorized) || !strings.Contains(err.Error(), "jti already used") {
		t.Fatalf("replay: %v", err)
	}
}

func TestTenantClaim(t *testing.T) {
	f := newFixture(t)
	c := authtest.Claims(issA, aud)
	c["tenant"] = "north"
	claims, err := f.v.Verify(t.Context(), authtest.Sign(t, f.es, c, nil), aud)
	if err != nil || claims.Tenant != "north" || claims.Subject != "ehr-client" {
		t.Fatalf("claims %+v, %v", claims, err)
	}
}

// TestJWKSRefreshOnUnknownKid rotates a key into an issuer's JWKS URL: a
// token with the new kid is accepted after one refresh.
func TestJWKSRefreshOnUnknownKid(t *testing.T) {
	old, rotated := authtest.NewKey(t, "old", "ES384"), authtest.NewKey(t, "new", "ES384")
	var served atomic.Value
	served.Store(authtest.JWKS(old))
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(served.Load().([]byte))
	}))
	t.Cleanup(srv.Close)
	v, err := auth.NewVerifier(t.Context(), []auth.Issuer{{ID: issB, JWKSURL: srv.URL}}, store.NewMemoryReplay(100), 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), authtest.Sign(t, old, authtest.Claims(issB, aud), nil), aud); err != nil {
		t.Fatalf("old key: %v", err)
	}
	served.Store(authtest.JWKS(old, rotated))
	if _, err := v.Verify(t.Context(), authtest.Sign(t, rotated, authtest.Claims(issB, aud), nil), aud); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (start, then one refresh for the unknown kid)", n)
	}
}
