// Package cdstest holds hand-written fakes of the interfaces cds declares,
// for unit tests of logic. Integration tests use the real FHIR test server.
package cdstest

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
)

// FHIR is an in-memory cds.FHIRSource: it answers paths from a map and
// records every call.
type FHIR struct {
	mu        sync.Mutex
	Responses map[string]string // path or URL -> JSON body
	Err       error             // when set, every call fails with it
	Calls     []Call
	// Block makes each call wait for its context to end, then fail.
	Block bool
}

// Call is one recorded Get.
type Call struct {
	Server cds.FHIRServer
	Path   string
}

var _ cds.FHIRSource = (*FHIR)(nil)

// Get returns the canned body for path, or a not-found error.
func (f *FHIR) Get(ctx context.Context, server cds.FHIRServer, path string) (json.RawMessage, error) {
	f.mu.Lock()
	f.Calls = append(f.Calls, Call{server, path})
	body, ok := f.Responses[path]
	err, block := f.Err, f.Block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "FHIR server not reachable", Err: ctx.Err()}
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, orthotriage.Errorf(orthotriage.ENotFound, "GET %s: FHIR server answered 404 Not Found", path)
	}
	return json.RawMessage(body), nil
}

// Paths returns the paths asked for, in order.
func (f *FHIR) Paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.Calls {
		out = append(out, c.Path)
	}
	return out
}
