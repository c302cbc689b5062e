package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/sandbox"
)

// runKit runs the binary's sandbox subcommand and returns its stdout,
// stderr and exit error.
func runKit(t *testing.T, bin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"sandbox"}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestSandboxKit drives the integration kit through the real binary, as an
// integration team would: keys and an issuers file, seeding the FHIR test
// server and Orthanc (twice: nothing is duplicated), the service started on
// them, then `sandbox check` playing the EHR, which must pass every check;
// and a check signed with an unregistered key must fail with a non-zero exit.
func TestSandboxKit(t *testing.T) {
	bin := buildBinary(t)
	fhirBase := testenv.FHIRServer(t, "") // precompute jobs carry no EHR token
	orthanc := testenv.Orthanc(t, "", "")
	dicomweb := orthanc + "/dicom-web"
	dir := t.TempDir()
	key, jwks, issuers := filepath.Join(dir, "ehr.pem"), filepath.Join(dir, "jwks.json"), filepath.Join(dir, "issuers.yaml")

	out, errOut, err := runKit(t, bin, "keys", "--key", key, "--jwks", jwks, "--issuers", issuers, "--fhir", fhirBase, "--dicomweb", dicomweb)
	if err != nil || !strings.Contains(out, `"alg":"ES384"`) || !strings.Contains(errOut, "made a new ES384 key") {
		t.Fatalf("sandbox keys: %v\n%s\n%s", err, out, errOut)
	}
	for range 2 { // seeding again updates, never duplicates
		out, errOut, err := runKit(t, bin, "seed", "--fhir", fhirBase, "--dicomweb", dicomweb, "--patients", "2")
		if err != nil || !strings.Contains(out, "seeded 2 patients") {
			t.Fatalf("sandbox seed: %v\n%s\n%s", err, out, errOut)
		}
	}
	for resource, want := range map[string]int{"Patient": 2, "ImagingStudy": 4, "Endpoint": 1, "Observation": 2, "Condition": 4} {
		_, b := testenv.FHIRDo(t, fhirBase, "", http.MethodGet, resource+"?_count=100", nil)
		var bundle struct{ Entry []json.RawMessage }
		if json.Unmarshal(b, &bundle) != nil || len(bundle.Entry) != want {
			t.Errorf("%s after seeding twice: %d, want %d", resource, len(bundle.Entry), want)
		}
	}
	status, b := testenv.FHIRDo(t, orthanc, "", http.MethodGet, "instances", nil)
	var instances []string
	if status != http.StatusOK || json.Unmarshal(b, &instances) != nil || len(instances) != 4 {
		t.Errorf("Orthanc instances after seeding twice: %d %s, want 4", status, b)
	}

	const notify = "sandbox-notification-token-0123456789"
	s := startService(t, bin, "ORTHOTRIAGE_AUTH_ISSUERS_FILE="+issuers, "ORTHOTRIAGE_EGRESS_ALLOWED_CIDRS=127.0.0.0/8",
		"ORTHOTRIAGE_PRECOMPUTE_FHIR_SERVER="+fhirBase, "ORTHOTRIAGE_PRECOMPUTE_NOTIFICATION_TOKEN="+notify)
	check := []string{"check", "--service", s.base, "--fhir", fhirBase, "--key", key, "--patients", "2",
		"--notification-token", notify, "--subscription-wait", "1s", "--strict"}

	table, errOut, err := runKit(t, bin, check...)
	t.Logf("sandbox check:\n%s", table)
	if err != nil {
		t.Fatalf("sandbox check: %v\n%s\nservice logs:\n%s", err, errOut, s.logText())
	}
	for _, want := range []string{"discovery", "hook hip-radiograph-screening, orthotriage-sandbox-1 (prefetch)",
		"hook vertebral-fracture-acuity, orthotriage-sandbox-1 (no prefetch: the service fetches)",
		"write-back vertebral-fracture-acuity, orthotriage-sandbox-1", "precompute: rest-hook notification posted by the kit"} {
		if !hasRow(table, "PASS", want) {
			t.Errorf("the table has no passed row %q", want)
		}
	}
	if !strings.Contains(table, " 0 failed") {
		t.Error("the table's closing line does not say 0 failed")
	}
	if !strings.Contains(errOut, `"kid":`) {
		t.Errorf("the JWKS to register was not printed: %s", errOut)
	}

	out, _, err = runKit(t, bin, append(check, "--json")...)
	var report sandbox.Report
	if err != nil || json.Unmarshal([]byte(out), &report) != nil || !report.OK() || report.Passed < 20 {
		t.Errorf("sandbox check --json: %v, %d passed, %d failed:\n%s", err, report.Passed, report.Failed, out)
	}
	var schemaChecked bool
	for _, r := range report.Results {
		if strings.HasPrefix(r.Name, "resources ") && strings.Contains(r.Detail, "R4 JSON schema") {
			schemaChecked = true
		}
	}
	if !schemaChecked {
		t.Error("no resources were checked against the R4 JSON schema")
	}

	t.Run("an unregistered key fails the check", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.pem")
		out, _, err := runKit(t, bin, "check", "--service", s.base, "--fhir", fhirBase, "--key", other)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !hasRow(out, "FAIL", "discovery") {
			t.Errorf("check with an unregistered key: %v\n%s", err, out)
		}
	})
	if _, err := os.Stat(key); err != nil {
		t.Error(err)
	}
}

// hasRow reports whether the check's table has a row of status for check.
func hasRow(table, status, check string) bool {
	return regexp.MustCompile(`(?m)^` + status + `\s+` + regexp.QuoteMeta(check) + `\s`).MatchString(table)
}
