package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/orthotriage/orthotriage/auth"
)

// tokenEndpoint is a small OAuth token endpoint that verifies client
// assertions against the client's published JWKS, as an EHR's
// authorization server does.
func tokenEndpoint(t *testing.T, jwks []byte, clientID string, issued *atomic.Int32) *httptest.Server {
	t.Helper()
	keys, err := keyfunc.NewJWKSetJSON(jwks)
	if err != nil {
		t.Fatal(err)
	}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(reason string) {
			t.Logf("token endpoint refuses: %s", reason)
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		}
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" ||
			r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			fail("bad form")
			return
		}
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(r.Form.Get("client_assertion"), &claims, keys.Keyfunc,
			jwt.WithValidMethods([]string{"ES384", "RS384"}), jwt.WithAudience(srv.URL+"/token"),
			jwt.WithIssuer(clientID), jwt.WithSubject(clientID), jwt.WithExpirationRequired())
		if err != nil || claims.ID == "" {
			fail("assertion: " + strings.TrimSpace(err.Error()))
			return
		}
		issued.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"access_token": "backend-token-" + r.Form.Get("scope"), "token_type": "Bearer", "expires_in": 300})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBackendServicesTokens(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, priv := range map[string]any{"ES384": ec, "RS384": rs} {
		t.Run(name, func(t *testing.T) {
			key, err := auth.NewClientKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			var issued atomic.Int32
			srv := tokenEndpoint(t, key.JWKS(), "orthotriage-client", &issued)
			src := auth.NewTokenSource(key, srv.Client())
			reg := auth.BackendService{TokenURL: srv.URL + "/token", ClientID: "orthotriage-client", Scope: "system/ImagingStudy.rs"}
			for range 3 {
				tok, err := src.Token(t.Context(), reg)
				if err != nil || tok != "backend-token-system/ImagingStudy.rs" {
					t.Fatalf("Token = %q, %v", tok, err)
				}
			}
			if issued.Load() != 1 {
				t.Errorf("%d tokens issued for 3 calls, want 1 (cached)", issued.Load())
			}
			other := reg
			other.ClientID = "someone-else"
			if _, err := src.Token(t.Context(), other); err == nil || !strings.Contains(err.Error(), "invalid_client") {
				t.Errorf("a registration the server refuses: %v", err)
			}
		})
	}
}

func TestClientKeyRejectsWeakKeys(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, k := range map[string]any{"P-256": p256, "RSA 1024": small, "a string": "key"} {
		if _, err := auth.NewClientKey(k); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
