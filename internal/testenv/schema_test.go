package testenv

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSchemaValidate(t *testing.T) {
	const report = `{"resourceType":"DiagnosticReport","id":"r1","status":%q,"code":{"text":"XR pelvis"},"subject":{"reference":"Patient/p1"}}`
	tests := []struct {
		name     string
		resource string
		want     string // part of the error; "" means valid
	}{
		{name: "valid DiagnosticReport", resource: strings.Replace(report, "%q", `"preliminary"`, 1)},
		{name: "status outside the required value set", resource: strings.Replace(report, "%q", `"bogus"`, 1), want: "/status"},
		{name: "status of the wrong JSON type", resource: strings.Replace(report, "%q", `7`, 1), want: "/status"},
		{name: "unknown element", resource: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"colour":"red"}`, want: "colour"},
		{name: "required element missing", resource: `{"resourceType":"Observation","status":"final"}`, want: "code"},
		{name: "id not a FHIR id", resource: `{"resourceType":"Device","id":"a b"}`, want: "/id"},
		{name: "unknown resourceType", resource: `{"resourceType":"Knee"}`, want: `"Knee" is not an R4 resource type`},
		{name: "not an object", resource: `[1]`, want: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SchemaValidate(t, json.RawMessage(tt.resource))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("valid resource refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("schema accepted %s", tt.resource)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not name %q", err, tt.want)
			}
		})
	}
}
