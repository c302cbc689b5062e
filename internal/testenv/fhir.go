package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// FHIRDo sends one request to the FHIR test server at base (path relative
// to it, "" for the base itself) with the bearer token and returns the
// status and body.
func FHIRDo(t testing.TB, base, token, method, path string, body []byte) (int, []byte) {
	t.Helper()
	url := base
	if path != "" {
		url += "/" + path
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// FHIRValidate runs Medplum's validateResource on resource through the test
// server's $validate and returns every issue, warnings included.
func FHIRValidate(t testing.TB, base, token string, resource json.RawMessage) []map[string]any {
	t.Helper()
	var head struct{ ResourceType string }
	_ = json.Unmarshal(resource, &head)
	status, b := FHIRDo(t, base, token, http.MethodPost, head.ResourceType+"/$validate", resource)
	var oo struct{ Issue []map[string]any }
	if status != http.StatusOK || json.Unmarshal(b, &oo) != nil {
		t.Fatalf("$validate %s: %d %s", head.ResourceType, status, b)
	}
	return oo.Issue
}

// NoIssues reports whether $validate's answer is its one "no issues" line.
func NoIssues(issues []map[string]any) bool {
	return len(issues) == 1 && issues[0]["severity"] == "information" && issues[0]["diagnostics"] == "No issues detected during validation"
}

// FHIRCreate posts a resource to the FHIR test server and returns the id
// the server gave it.
func FHIRCreate(t testing.TB, base, token, resource string) string {
	t.Helper()
	var r struct{ ResourceType string }
	if err := json.Unmarshal([]byte(resource), &r); err != nil {
		t.Fatal(err)
	}
	status, b := FHIRDo(t, base, token, http.MethodPost, r.ResourceType, []byte(resource))
	var created struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(b, &created) != nil || created.ID == "" {
		t.Fatalf("create %s: %d %s", r.ResourceType, status, b)
	}
	return created.ID
}
