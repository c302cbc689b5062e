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
	"regexp"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/internal/urlx"
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
			// A redirect out of the FHIR base would carry the EHR's data and
			// token elsewhere (Go keeps Authorization on the same host, so
			// also to a sibling path such as /fhir-admin): refuse it.
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				base, _ := req.Context().Value(baseKey{}).(string)
				if _, ok := urlx.Under(base, req.URL.String()); !ok {
					return fmt.Errorf("redirect out of fhirServer (to %s) refused", urlx.Origin(req.URL.String()))
				}
				return nil
			},
		},
		timeout:  timeout,
		maxBytes: maxBytes,
	}
}

// baseKey carries a request's FHIR base to CheckRedirect.
type baseKey struct{}

// Get fetches a resource or search relative to server.BaseURL, or an
// absolute URL that must lie under server.BaseURL (a Bundle's next link).
// Errors name the interaction and resource type ("read Patient", "search
// ImagingStudy") and the status, never the URL's path or query: ids and
// search parameters name patients.
func (c *Client) Get(ctx context.Context, server cds.FHIRServer, pathOrURL string) (json.RawMessage, error) {
	target, op, err := resolve(server.BaseURL, pathOrURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, baseKey{}, server.BaseURL), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "%s: bad FHIR URL", op)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if server.Token != "" {
		req.Header.Set("Authorization", "Bearer "+server.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: op + ": FHIR server not reachable", Err: urlx.WithoutURL(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: op + ": reading the response failed", Err: urlx.WithoutURL(err)}
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

// resolve builds the URL of pathOrURL on base and names the request for
// errors (see operation). Relative or absolute, the URL must lie under base
// by urlx.Under: same origin, whole path segments, no dot segments.
func resolve(base, pathOrURL string) (*url.URL, string, error) {
	b, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || urlx.Origin(base) == "" {
		return nil, "", orthotriage.Errorf(orthotriage.EInvalid, "fhirServer is not an absolute http(s) URL without userinfo")
	}
	ref, err := url.Parse(pathOrURL)
	if err != nil {
		return nil, "", orthotriage.Errorf(orthotriage.EInvalid, "bad FHIR path")
	}
	var u *url.URL
	if ref.IsAbs() || ref.Host != "" {
		u = b.ResolveReference(ref)
	} else if u, err = url.Parse(b.String() + "/" + strings.TrimLeft(pathOrURL, "/")); err != nil {
		return nil, "", orthotriage.Errorf(orthotriage.EInvalid, "bad FHIR path")
	}
	rest, ok := urlx.Under(base, u.String())
	if !ok {
		return nil, "", orthotriage.Errorf(orthotriage.EForbidden, "link outside fhirServer refused")
	}
	return u, operation(rest, u.RawQuery != ""), nil
}

// resourceTypeName is the grammar of a FHIR resource type.
var resourceTypeName = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

// operation names a GET below the base by its interaction and resource
// type ("read Patient", "search ImagingStudy", "search page"), the only
// parts of a FHIR URL that may appear in errors and logs.
func operation(rest string, query bool) string {
	segs := strings.Split(rest, "/")
	typ := segs[0]
	switch {
	case rest == "" && query:
		return "search page"
	case rest == "":
		return "GET fhirServer base"
	case !resourceTypeName.MatchString(typ):
		return "GET fhirServer resource"
	case len(segs) == 1 || strings.HasPrefix(segs[1], "_"):
		return "search " + typ
	case len(segs) == 2 || segs[2] == "_history":
		return "read " + typ
	default:
		return "GET " + typ + " compartment or operation"
	}
}
