package fhir_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/fhir"
)

const txToken = "tx-secret-token"

// flaky answers with the given statuses in turn (the last one repeats),
// with an OperationOutcome for errors, and counts the requests.
func flaky(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		status := statuses[min(i, len(statuses)-1)]
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/fhir":
			status = http.StatusNotFound
		case r.Header.Get("Content-Type") != "application/fhir+json":
			status = http.StatusUnsupportedMediaType
		case r.Header.Get("Authorization") != "Bearer "+txToken:
			status = http.StatusUnauthorized
		case !strings.Contains(string(body), `"transaction"`):
			status = http.StatusBadRequest
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[]}`)
			return
		}
		// A careless server echoing the credentials it got.
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",`+
			`"diagnostics":"Observation.status missing (request had `+r.Header.Get("Authorization")+`)"}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

const txBundle = `{"resourceType":"Bundle","type":"transaction","entry":[]}`

func TestTransactionRetries(t *testing.T) {
	fast := fhir.RetryPolicy{Attempts: 3, Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}
	c := fhir.NewClient(2*time.Second, 1<<20, nil)

	t.Run("503 twice then 200, default policy", func(t *testing.T) {
		srv, n := flaky(t, 503, 503, 200)
		start := time.Now()
		body, err := c.Transaction(t.Context(), cds.FHIRServer{BaseURL: srv.URL + "/fhir/", Token: txToken}, []byte(txBundle))
		if err != nil || !strings.Contains(string(body), "transaction-response") {
			t.Fatalf("Transaction = %s, %v", body, err)
		}
		if n.Load() != 3 {
			t.Errorf("%d requests, want 3", n.Load())
		}
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Errorf("retried after %v in all, want 500 ms + 1 s of backoff", d)
		}
	})
	tests := []struct {
		name     string
		statuses []int
		code     string
		requests int32
	}{
		{name: "400 is not retried", statuses: []int{400, 200}, code: orthotriage.EInvalid, requests: 1},
		{name: "422 is not retried", statuses: []int{422, 200}, code: orthotriage.EInvalid, requests: 1},
		{name: "429 is retried", statuses: []int{429, 200}, requests: 2},
		{name: "5xx until the tries run out", statuses: []int{500, 502, 504, 200}, code: orthotriage.EUnavailable, requests: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := flaky(t, tt.statuses...)
			_, err := c.TransactionRetry(t.Context(), cds.FHIRServer{BaseURL: srv.URL + "/fhir", Token: txToken}, []byte(txBundle), fast)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				if got := orthotriage.ErrorCode(err); got != tt.code {
					t.Fatalf("error = %v (%s), want %s", err, got, tt.code)
				}
				status := tt.statuses[min(int(tt.requests), len(tt.statuses))-1]
				if msg := err.Error(); !strings.Contains(msg, http.StatusText(status)) || !strings.Contains(msg, "Observation.status missing") {
					t.Errorf("error %q should name the status and the diagnostics", msg)
				}
				if strings.Contains(err.Error(), txToken) {
					t.Errorf("error carries the token: %v", err)
				}
			}
			if n.Load() != tt.requests {
				t.Errorf("%d requests, want %d", n.Load(), tt.requests)
			}
		})
	}
	t.Run("connection refused is retried, then unavailable", func(t *testing.T) {
		srv, _ := flaky(t, 200)
		base := srv.URL + "/fhir"
		srv.Close()
		start := time.Now()
		_, err := c.TransactionRetry(t.Context(), cds.FHIRServer{BaseURL: base, Token: txToken}, []byte(txBundle), fast)
		if orthotriage.ErrorCode(err) != orthotriage.EUnavailable || !strings.Contains(err.Error(), "after 3 tries") {
			t.Fatalf("error = %v, want unavailable after 3 tries", err)
		}
		if strings.Contains(err.Error(), txToken) {
			t.Errorf("error carries the token: %v", err)
		}
		if time.Since(start) < 15*time.Millisecond {
			t.Error("no backoff between tries")
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		srv, n := flaky(t, 503)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		slow := fhir.RetryPolicy{Attempts: 5, Initial: time.Hour, Max: time.Hour}
		_, err := c.TransactionRetry(ctx, cds.FHIRServer{BaseURL: srv.URL + "/fhir", Token: txToken}, []byte(txBundle), slow)
		if orthotriage.ErrorCode(err) != orthotriage.EUnavailable || n.Load() != 1 {
			t.Fatalf("error = %v after %d requests, want unavailable after 1", err, n.Load())
		}
	})
	t.Run("bad input is refused before sending", func(t *testing.T) {
		srv, n := flaky(t, 200)
		for _, tc := range []struct{ base, bundle string }{{"ftp://x/fhir", txBundle}, {srv.URL + "/fhir", "{not json"}} {
			_, err := c.TransactionRetry(t.Context(), cds.FHIRServer{BaseURL: tc.base, Token: txToken}, []byte(tc.bundle), fast)
			if orthotriage.ErrorCode(err) != orthotriage.EInvalid {
				t.Errorf("%s %q: error = %v, want invalid", tc.base, tc.bundle, err)
			}
		}
		if n.Load() != 0 {
			t.Errorf("%d requests sent", n.Load())
		}
	})
}
