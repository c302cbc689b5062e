// Package fhir is orthotriage's adapter to FHIR R4 servers: a REST client
// for reads and searches on the EHR's server (later also transactions) and,
// in later issues, the builders from analysis results to R4 resources.
package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
)

var _ cds.FHIRSource = (*Client)(nil)

// Client reads from FHIR servers named per call. It is safe for concurrent use.
type Client struct {
	http     *http.Client
	timeout  time.Duration
	maxBytes int64
}

// NewClient returns a client whose calls each have the given deadline and
// read at most maxBytes of a response body. transport (nil: Go's default)
// is where the egress policy and TLS roots come in.
func NewClient(timeout time.Duration, maxBytes int64, transport http.RoundTripper) *Client {
	return &Client{
		http: &http.Client{
			Transport: transport,
			// A redirect to another origin would carry the EHR's data (and,
			// with some clients, its token) elsewhere: refuse it.
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				if !sameOrigin(req.URL, via[0].URL) {
					return fmt.Errorf("redirect to another origin (%s) refused", req.URL.Host)
				}
				return nil
			},
		},
		timeout:  timeout,
		maxBytes: maxBytes,
	}
}

// Get fetches a resource or search relative to server.BaseURL, or an
// absolute URL that must lie under server.BaseURL (a Bundle's next link).
func (c *Client) Get(ctx context.Context, server cds.FHIRServer, pathOrURL string) (json.RawMessage, error) {
	target, err := resolve(server.BaseURL, pathOrURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "bad FHIR URL")
	}
	req.Header.Set("Accept", "application/fhir+json")
	if server.Token != "" {
		req.Header.Set("Authorization", "Bearer "+server.Token)
	}
	op := "GET " + redactQuery(target)
	resp, err := c.http.Do(req)
	if err != nil {
		// The url.Error text names the URL and the cause, never the header.
		return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: op + ": FHIR server not reachable", Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: op + ": reading the response failed", Err: err}
	}
	if int64(len(body)) > c.maxBytes {
		return nil, orthotriage.Errorf(orthotriage.ETooLarge, "%s: response larger than %d bytes", op, c.maxBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, orthotriage.Errorf(statusCode(resp.StatusCode), "%s: FHIR server answered %s", op, resp.Status)
	}
	if !json.Valid(body) {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "%s: response is not JSON", op)
	}
	return body, nil
}

func statusCode(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return orthotriage.EUnauthorized
	case status == http.StatusForbidden:
		return orthotriage.EForbidden
	case status == http.StatusNotFound || status == http.StatusGone:
		return orthotriage.ENotFound
	case status == http.StatusTooManyRequests || status >= 500:
		return orthotriage.EUnavailable
	default:
		return orthotriage.EInvalid
	}
}

// resolve builds the URL of pathOrURL on base, refusing absolute URLs that
// leave the base.
func resolve(base, pathOrURL string) (*url.URL, error) {
	b, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (b.Scheme != "http" && b.Scheme != "https") || b.Host == "" {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "fhirServer %q is not an absolute http(s) URL", base)
	}
	if strings.HasPrefix(pathOrURL, "http://") || strings.HasPrefix(pathOrURL, "https://") {
		u, err := url.Parse(pathOrURL)
		if err != nil || !sameOrigin(u, b) || !strings.HasPrefix(u.Path, b.Path) {
			return nil, orthotriage.Errorf(orthotriage.EForbidden, "link outside fhirServer refused")
		}
		return u, nil
	}
	u, err := url.Parse(b.String() + "/" + strings.TrimLeft(pathOrURL, "/"))
	if err != nil {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "bad FHIR path")
	}
	return u, nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// redactQuery drops the query of u for error messages: search parameters may
// name patients.
func redactQuery(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		c.RawQuery = "..."
	}
	return c.String()
}
