package cds

import "testing"

func TestResourceType(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"first member", `{"resourceType":"Patient","id":"p1","name":[{"family":"x"}]}`, "Patient"},
		{"spaced", " {\n \"resourceType\" : \"Bundle\" }", "Bundle"},
		{"not first", `{"id":"p1","meta":{"resourceType":"Nope"},"resourceType":"Observation"}`, "Observation"},
		{"absent", `{"id":"p1"}`, ""},
		{"not a string", `{"resourceType":5}`, ""},
		{"not an object", `["resourceType","Patient"]`, ""},
		{"empty", ``, ""},
		{"broken after a first member", `{"id":`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resourceType([]byte(tt.raw)); got != tt.want {
				t.Errorf("resourceType(%s) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func BenchmarkResourceType(b *testing.B) {
	raw := []byte(`{"resourceType":"ImagingStudy","id":"s1","status":"available","series":[` +
		`{"uid":"1.2.3","modality":{"code":"DX"},"instance":[{"uid":"1.2.3.4","sopClass":{"code":"x"}}]}],"subject":{"reference":"Patient/p1"}}`)
	for b.Loop() {
		resourceType(raw)
	}
}
