package cds

import "testing"

func TestRender(t *testing.T) {
	hc := HookContext{PatientID: "p-1", UserID: "Practitioner/u", EncounterID: "e.2"}
	tests := []struct{ template, want string }{
		{"Patient/{{context.patientId}}", "Patient/p-1"},
		{"ImagingStudy?patient={{context.patientId}}&encounter={{context.encounterId}}&by={{context.userId}}", "ImagingStudy?patient=p-1&encounter=e.2&by=Practitioner/u"},
		{"Patient/{{context.unknown}}x", "Patient/x"},
		{"Patient?_count=5", "Patient?_count=5"},
		{"Patient/{{context.patientId", "Patient/{{context.patientId"},
		{"{{context.patientId}}{{context.patientId}}", "p-1p-1"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := render(tt.template, hc); got != tt.want {
			t.Errorf("render(%q) = %q, want %q", tt.template, got, tt.want)
		}
	}
	for key, template := range prefetchTemplates {
		if got := render(template, hc); got == template {
			t.Errorf("prefetch %s: template %q has no token rendered", key, template)
		}
	}
}
