package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/auth"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
)

// outboundTransport is the HTTP transport for URLs named in requests: the
// egress policy checks every resolved address, and TLS trusts the system
// roots plus egress.ca_file.
func outboundTransport(cfg config.Config) (*http.Transport, error) {
	eg := auth.Egress{AllowPrivate: cfg.Egress.AllowPrivate}
	for _, c := range cfg.Egress.AllowedCIDRs {
		eg.Allowed = append(eg.Allowed, netip.MustParsePrefix(c)) // validated by config
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if cfg.Egress.CAFile != "" {
		pem, err := os.ReadFile(cfg.Egress.CAFile)
		if err != nil {
			return nil, fmt.Errorf("egress.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("egress.ca_file %s: no PEM certificate in it", cfg.Egress.CAFile)
		}
	}
	return eg.Transport(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}), nil
}

// clientKey is this service's SMART Backend Services key; nil when
// auth.private_key_file is not set.
func clientKey(cfg config.Config) (*auth.ClientKey, error) {
	if cfg.Auth.PrivateKeyFile == "" {
		return nil, nil
	}
	k, err := auth.LoadClientKey(cfg.Auth.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("auth.private_key_file: %w", err)
	}
	return k, nil
}

// tokenFunc gets a bearer token.
type tokenFunc func(ctx context.Context) (string, error)

// backendTokens gives, by issuer, the SMART Backend Services access token
// of each issuer registered with backend_services; hook calls without
// fhirAuthorization and precompute jobs share them (one token source, one
// cache). None without a client key.
func backendTokens(cfg config.Config, key *auth.ClientKey, outbound http.RoundTripper) map[string]tokenFunc {
	if key == nil {
		return nil
	}
	source := auth.NewTokenSource(key, &http.Client{Transport: outbound})
	tokens := map[string]tokenFunc{}
	for _, is := range cfg.Auth.Issuers {
		if bs := is.BackendServices; bs != nil {
			reg := auth.BackendService{TokenURL: bs.TokenURL, ClientID: bs.ClientID, Scope: bs.Scope}
			tokens[is.Iss] = func(ctx context.Context) (string, error) { return source.Token(ctx, reg) }
		}
	}
	return tokens
}

// authenticator is the CDS client JWT check the router runs.
type authenticator = func(ctx context.Context, token, aud string) (cds.Caller, error)

// newAuthenticator builds the CDS client JWT check, or returns nil when
// authentication is switched off.
func newAuthenticator(ctx context.Context, cfg config.Config, replay auth.ReplayCache, tokens map[string]tokenFunc, log *slog.Logger) (authenticator, error) {
	if cfg.Auth.Disabled {
		log.Error("CDS client authentication is DISABLED (auth.disabled): any caller can use this service; for a local demo only")
		return nil, nil
	}
	var issuers []auth.Issuer
	for _, is := range cfg.Auth.Issuers {
		issuers = append(issuers, auth.Issuer{ID: is.Iss, JWKSFile: is.JWKSFile, JWKSURL: is.JWKSURL, JKUAllowlist: is.JKUAllowlist,
			FHIRServers: is.FHIRServers, DICOMwebBases: is.DICOMwebBases})
	}
	if len(issuers) == 0 {
		log.Error("no trusted issuers (auth.issuers_file): every CDS call will be refused with 401")
	}
	v, err := auth.NewVerifier(ctx, issuers, replay, cfg.Auth.Leeway, log)
	if err != nil {
		return nil, fmt.Errorf("auth.issuers_file: %w", err)
	}
	return func(ctx context.Context, token, aud string) (cds.Caller, error) {
		c, err := v.Verify(ctx, token, aud)
		if err != nil {
			return cds.Caller{}, err
		}
		caller := cds.Caller{Issuer: c.Issuer, FHIRServers: c.FHIRServers, DICOMwebBases: c.DICOMwebBases}
		if t, ok := tokens[c.Issuer]; ok {
			caller.BackendToken = t
		}
		return caller, nil
	}, nil
}

// tenantsFrom says, for a FHIR server named by a precompute job, whether an
// issuer registered it, and gives that issuer's DICOMweb bases and its SMART
// Backend Services token (when configured). With authentication off every
// server is accepted, without a token or DICOMweb binding (demo only).
func tenantsFrom(cfg config.Config, tokens map[string]tokenFunc) func(string) (analysis.Tenant, bool) {
	if cfg.Auth.Disabled {
		return func(string) (analysis.Tenant, bool) { return analysis.Tenant{}, true }
	}
	return func(server string) (analysis.Tenant, bool) {
		for _, is := range cfg.Auth.Issuers {
			if !(cds.Caller{FHIRServers: is.FHIRServers}).MayUse(server) {
				continue
			}
			t := analysis.Tenant{Issuer: is.Iss, DICOMwebBases: append([]string{}, is.DICOMwebBases...)}
			if tok, ok := tokens[is.Iss]; ok {
				t.Token = tok
			}
			return t, true
		}
		return analysis.Tenant{}, false
	}
}

// jwksOf is the public JWK Set of key, served for SMART Backend Services;
// nil without a key.
func jwksOf(k *auth.ClientKey) []byte {
	if k == nil {
		return nil
	}
	return k.JWKS()
}
