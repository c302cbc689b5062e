// Package sandbox is the integration kit: it seeds any FHIR R4 server and
// DICOMweb PACS with synthetic patients whose radiographs are phantoms
// with known truth (Seed), and it plays the EHR against a running
// orthotriage (Check): discovery, prefetch filled from the FHIR server,
// signed hook calls, the CDS Hooks rules on every card, the FHIR
// validators on every resource, write-back, feedback and the precompute
// path. `orthotriage sandbox` wires it to flags.
package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody bounds what the kit reads from one answer.
const maxBody = 64 << 20

// fhirClient is the kit's small FHIR REST client: the EHR's own access to
// its server, so it is not the service's client (no egress policy, the
// kit's token on every call).
type fhirClient struct {
	base  string // without a trailing slash
	token string
	http  *http.Client
}

func newFHIRClient(base, token string, timeout time.Duration) *fhirClient {
	return &fhirClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: timeout}}
}

// do sends one request; path is relative to the base or an absolute URL
// (a next link). It returns the status and body.
func (c *fhirClient) do(ctx context.Context, method, path string, body []byte, header ...string) (int, []byte, error) {
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = c.base
		if path != "" {
			u += "/" + path
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, redactQuery(u), err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, redactQuery(u), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read: %w", method, redactQuery(u), err)
	}
	return resp.StatusCode, b, nil
}

// put stores resource under its own type and id (update as create: the
// seed's stable ids make seeding idempotent).
func (c *fhirClient) put(ctx context.Context, resource map[string]any) error {
	rt, _ := resource["resourceType"].(string)
	id, _ := resource["id"].(string)
	b, err := json.Marshal(resource)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", rt, id, err)
	}
	status, out, err := c.do(ctx, http.MethodPut, rt+"/"+id, b)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("PUT %s/%s: %d %s", rt, id, status, snippet(out))
	}
	return nil
}

// redactQuery drops a URL's query, which may name a patient.
func redactQuery(u string) string {
	if p, err := url.Parse(u); err == nil {
		p.RawQuery = ""
		return p.String()
	}
	return "(bad URL)"
}

// snippet shortens a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// errNotFound is a read of a resource the server does not have.
var errNotFound = errors.New("not found")
