// Package auth verifies the JWTs with which EHRs (CDS clients) call the
// service, as CDS Hooks 2.0 requires: asymmetric signatures only, the key
// found by kid in the issuer's JWKS, aud equal to the URL called, exp and
// iat required, jti never accepted twice. Tokens never reach a log line or an
// error message.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/orthotriage/orthotriage/internal/textx"
	"golang.org/x/time/rate"
)

// Algorithms a CDS client may sign with: never none or a symmetric one.
var allowedAlgorithms = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// Issuer is one trusted CDS client (an EHR), by its iss claim.
type Issuer struct {
	ID            string   `yaml:"iss"`
	JWKSFile      string   `yaml:"jwks_file"`      // a JWK Set on disk, or
	JWKSURL       string   `yaml:"jwks_url"`       // a JWK Set fetched, cached and refreshed
	JKUAllowlist  []string `yaml:"jku_allowlist"`  // jku header values honoured for this issuer
	FHIRServers   []string `yaml:"fhir_servers"`   // FHIR servers this issuer may name
	DICOMwebBases []string `yaml:"dicomweb_bases"` // DICOMweb bases its studies may point at
}

// ReplayCache remembers token ids until they expire. FirstUse reports
// whether key was unseen, and records it until until.
type ReplayCache interface {
	FirstUse(ctx context.Context, key string, until time.Time) (bool, error)
}

// ErrUnauthorized is wrapped by every verification failure; the reason
// follows it and names no token content.
var ErrUnauthorized = errors.New("unauthorized")

// Verifier checks CDS client JWTs.
type Verifier struct {
	issuers map[string]*issuer
	replay  ReplayCache
	leeway  time.Duration
	log     *slog.Logger
	client  *http.Client
	ctx     context.Context // ends the JWKS refresh goroutines
}

type issuer struct {
	Issuer
	keys keyfunc.Keyfunc // from the file or URL
	mu   sync.Mutex
	jku  map[string]keyfunc.Keyfunc
}

// NewVerifier loads each issuer's JWKS (files now, URLs on first use with
// refresh on unknown kid at a limited rate). ctx bounds background refreshes.
func NewVerifier(ctx context.Context, issuers []Issuer, replay ReplayCache, leeway time.Duration, log *slog.Logger) (*Verifier, error) {
	v := &Verifier{issuers: map[string]*issuer{}, replay: replay, leeway: leeway, log: log, ctx: ctx,
		client: &http.Client{Timeout: 5 * time.Second}}
	for i, is := range issuers {
		if is.ID == "" {
			return nil, fmt.Errorf("auth: issuer %d has no iss", i)
		}
		if (is.JWKSFile == "") == (is.JWKSURL == "") {
			return nil, fmt.Errorf("auth: issuer %s: give exactly one of jwks_file and jwks_url", is.ID)
		}
		it := &issuer{Issuer: is, jku: map[string]keyfunc.Keyfunc{}}
		if is.JWKSFile != "" {
			raw, err := os.ReadFile(is.JWKSFile)
			if err != nil {
				return nil, fmt.Errorf("auth: issuer %s: %w", is.ID, err)
			}
			if it.keys, err = keyfunc.NewJWKSetJSON(json.RawMessage(raw)); err != nil {
				return nil, fmt.Errorf("auth: issuer %s: jwks_file %s: %w", is.ID, is.JWKSFile, err)
			}
		} else {
			k, err := v.remote(is.JWKSURL)
			if err != nil {
				return nil, fmt.Errorf("auth: issuer %s: %w", is.ID, err)
			}
			it.keys = k
		}
		v.issuers[is.ID] = it
	}
	return v, nil
}

// remote returns a keyfunc over a JWKS URL, cached, refreshed hourly and on
// an unknown kid at most once every 30 seconds.
func (v *Verifier) remote(url string) (keyfunc.Keyfunc, error) {
	no := true
	return keyfunc.NewDefaultOverrideCtx(v.ctx, []string{url}, keyfunc.Override{
		Client:                    v.client,
		HTTPTimeout:               5 * time.Second,
		NoErrorReturnFirstHTTPReq: &no, // an unreachable JWKS fails calls, not the start
		RefreshUnknownKID:         rateLimiter(),
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				v.log.WarnContext(ctx, "jwks refresh failed", "url", u, "err", err)
			}
		},
	})
}

// rateLimiter bounds JWKS refreshes on unknown kids to one per 30 seconds.
func rateLimiter() *rate.Limiter { return rate.NewLimiter(rate.Every(30*time.Second), 1) }

// Claims are what a verified token says of its caller, with the FHIR
// servers its issuer registered.
type Claims struct {
	Issuer        string
	Subject       string
	Tenant        string
	ID            string
	FHIRServers   []string
	DICOMwebBases []string
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Tenant string `json:"tenant,omitempty"`
}

// Verify checks a compact JWT for a call to audience, the exact URL called.
func (v *Verifier) Verify(ctx context.Context, raw, audience string) (Claims, error) {
	if raw == "" {
		return Claims{}, fmt.Errorf("%w: no bearer token", ErrUnauthorized)
	}
	var unverified tokenClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil {
		return Claims{}, fmt.Errorf("%w: token is not a JWT", ErrUnauthorized)
	}
	is, ok := v.issuers[unverified.Issuer]
	if !ok {
		return Claims{}, fmt.Errorf("%w: issuer %q is not trusted", ErrUnauthorized, textx.Clip(unverified.Issuer, 100))
	}
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) { return is.keyFor(ctx, v, t) },
		jwt.WithValidMethods(allowedAlgorithms),
		jwt.WithIssuer(is.ID),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnauthorized, textx.Clip(reason(err), 200))
	}
	// golang-jwt checks iat only when present; CDS Hooks 2.0 requires it.
	if claims.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: no iat", ErrUnauthorized)
	}
	if claims.ID == "" {
		return Claims{}, fmt.Errorf("%w: no jti", ErrUnauthorized)
	}
	first, err := v.replay.FirstUse(ctx, is.ID+"|"+claims.ID, claims.ExpiresAt.Add(v.leeway))
	if err != nil {
		return Claims{}, fmt.Errorf("replay cache: %w", err)
	}
	if !first {
		return Claims{}, fmt.Errorf("%w: jti already used", ErrUnauthorized)
	}
	return Claims{Issuer: is.ID, Subject: claims.Subject, Tenant: claims.Tenant, ID: claims.ID, FHIRServers: is.FHIRServers, DICOMwebBases: is.DICOMwebBases}, nil
}

// keyFor finds the verification key: by kid in the issuer's JWKS, or in the
// JWKS at the header's jku when the issuer allows that URL.
func (is *issuer) keyFor(ctx context.Context, v *Verifier, t *jwt.Token) (any, error) {
	if _, ok := t.Header["kid"].(string); !ok {
		return nil, errors.New("no kid in the token header")
	}
	keys := is.keys
	if jku, ok := t.Header["jku"].(string); ok {
		if !slices.Contains(is.JKUAllowlist, jku) {
			return nil, fmt.Errorf("jku %s is not on the issuer's allowlist", jku)
		}
		is.mu.Lock()
		k, ok := is.jku[jku]
		if !ok {
			var err error
			if k, err = v.remote(jku); err != nil {
				is.mu.Unlock()
				return nil, err
			}
			is.jku[jku] = k
		}
		is.mu.Unlock()
		keys = k
	}
	return keys.KeyfuncCtx(ctx)(t)
}

// reason turns a jwt error into a short reason without token content.
func reason(err error) string {
	switch {
	case strings.Contains(err.Error(), "signing method"):
		return "algorithm not allowed (ES, RS or PS 256/384/512 only)"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "aud is not the URL called"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim (exp) is missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature invalid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "no key to verify with: " + err.Error()
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token malformed"
	}
	return err.Error()
}
