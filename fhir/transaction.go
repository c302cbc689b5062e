package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/internal/urlx"
)

// RetryPolicy says how often and how patiently a write is retried. A retry
// follows a connection error, 429 or a 5xx answer, never another 4xx.
type RetryPolicy struct {
	Attempts int           // tries in all, the first included; < 1 means 1
	Initial  time.Duration // wait before the second try, doubled for each next
	Max      time.Duration // cap of one wait, Retry-After included
}

// DefaultRetry is what Transaction uses: 3 tries, waiting 500 ms then 1 s.
var DefaultRetry = RetryPolicy{Attempts: 3, Initial: 500 * time.Millisecond, Max: 5 * time.Second}

// maxDiagnostics bounds the server's diagnostics quoted in an error.
const maxDiagnostics = 300

// Transaction POSTs a transaction (or batch) Bundle to server.BaseURL and
// returns the response Bundle, retrying with DefaultRetry. Report
// transactions are idempotent (PUT by deterministic id), so a retry after
// a lost response writes nothing twice.
func (c *Client) Transaction(ctx context.Context, server cds.FHIRServer, bundle []byte) (json.RawMessage, error) {
	return c.TransactionRetry(ctx, server, bundle, DefaultRetry)
}

// TransactionRetry is Transaction with a given retry policy. Each try has
// the client's deadline; waits end early when ctx does. Errors carry an
// orthotriage code and name the status and the OperationOutcome's
// diagnostics, never the token.
func (c *Client) TransactionRetry(ctx context.Context, server cds.FHIRServer, bundle []byte, p RetryPolicy) (json.RawMessage, error) {
	target, _, err := resolve(server.BaseURL, "")
	if err != nil {
		return nil, err
	}
	if !json.Valid(bundle) {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "transaction bundle is not JSON")
	}
	url := strings.TrimRight(target.String(), "/")
	wait := p.Initial
	for attempt := 1; ; attempt++ {
		body, again, retryAfter, err := c.post(ctx, server, url, bundle)
		if err == nil {
			return body, nil
		}
		if attempt >= p.Attempts || !again || ctx.Err() != nil {
			if attempt > 1 {
				return nil, fmt.Errorf("after %d tries: %w", attempt, err)
			}
			return nil, err
		}
		d := min(max(wait, retryAfter), p.Max)
		select {
		case <-ctx.Done():
			return nil, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "POST transaction: gave up waiting to retry", Err: errors.Join(ctx.Err(), err)}
		case <-time.After(d):
		}
		wait *= 2
	}
}

// post makes one try. With an error it says whether another try may
// succeed (again) and after how long the server asked to be called again.
func (c *Client) post(ctx context.Context, server cds.FHIRServer, url string, bundle []byte) (body json.RawMessage, again bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, baseKey{}, server.BaseURL), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bundle))
	if err != nil {
		return nil, false, 0, orthotriage.Errorf(orthotriage.EInvalid, "bad FHIR URL")
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	if server.Token != "" {
		req.Header.Set("Authorization", "Bearer "+server.Token)
	}
	const op = "POST transaction"
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, true, 0, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: op + ": FHIR server not reachable", Err: urlx.WithoutURL(err)}
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, true, 0, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: op + ": reading the response failed", Err: urlx.WithoutURL(err)}
	}
	if int64(len(body)) > c.maxBytes {
		return nil, false, 0, orthotriage.Errorf(orthotriage.ETooLarge, "%s: response larger than %d bytes", op, c.maxBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := orthotriage.Errorf(statusCode(resp.StatusCode), "%s: FHIR server answered %s%s", op, resp.Status, diagnostics(body, server.Token))
		again := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return nil, again, retryAfter(resp.Header.Get("Retry-After")), e
	}
	if !json.Valid(body) {
		return nil, false, 0, orthotriage.Errorf(orthotriage.EInvalid, "%s: response is not JSON", op)
	}
	return body, false, 0, nil
}

// diagnostics quotes an OperationOutcome body's issues (": ..."), or
// nothing for another body. The token is cut out should a server echo it,
// and so are resource ids ("Patient/123" becomes "Patient/[id]"): servers
// name the references they could not resolve, and patient ids are PHI.
func diagnostics(body []byte, token string) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string `json:"severity"`
			Diagnostics string `json:"diagnostics"`
			Details     struct {
				Text string `json:"text"`
			} `json:"details"`
			Expression []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return ""
	}
	var parts []string
	for _, is := range oo.Issue {
		text := is.Diagnostics
		if text == "" {
			text = is.Details.Text
		}
		if len(is.Expression) > 0 && !strings.Contains(text, is.Expression[0]) {
			text += " at " + strings.Join(is.Expression, ", ")
		}
		if text != "" {
			parts = append(parts, text)
		}
	}
	s := strings.Join(parts, "; ")
	if token != "" {
		s = strings.ReplaceAll(s, token, "[token]")
	}
	s = referenceID.ReplaceAllString(s, "$1/[id]")
	if len(s) > maxDiagnostics {
		s = s[:maxDiagnostics] + "..."
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

// referenceID matches "Type/id" in a server's diagnostics.
var referenceID = regexp.MustCompile(`\b([A-Z][A-Za-z]{1,63})/[A-Za-z0-9\-.]{1,64}`)

// retryAfter reads a Retry-After of delay seconds; dates and junk read as 0.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
