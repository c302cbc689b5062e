package cds

import (
	"context"

	"github.com/orthotriage/orthotriage/analysis"
)

// Caller is the authenticated CDS client of a call: its issuer and the FHIR
// servers it may name. The api room puts it in the request context.
type Caller struct {
	Issuer      string
	FHIRServers []string
	// DICOMwebBases are where this caller's studies may be retrieved from;
	// retrieval passes them to imaging.Access.AllowedBases.
	DICOMwebBases []string
	// BackendToken, when set, gets an access token for FHIR calls of hooks
	// that carry no fhirAuthorization (SMART Backend Services).
	BackendToken func(ctx context.Context) (string, error)
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx, if authentication put one there.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// MayUse reports whether the caller registered fhirServer. URLs compare
// with a case-insensitive scheme and host and without a trailing slash.
func (c Caller) MayUse(fhirServer string) bool {
	want := analysis.NormalizeServer(fhirServer)
	for _, s := range c.FHIRServers {
		if analysis.NormalizeServer(s) == want {
			return true
		}
	}
	return false
}
