package cds

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage"
)

func TestValidate(t *testing.T) {
	hip, _ := DefaultCatalog().Lookup("hip-radiograph-screening")
	hipStudy, _ := DefaultCatalog().Lookup("hip-radiograph-screening-imagingstudy-available")
	const pv = `"hook":"patient-view","hookInstance":"d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"`
	const auth = `"fhirAuthorization":{"access_token":"t","token_type":"Bearer","expires_in":300,"scope":"patient/*.read","subject":"cds"}`
	tests := []struct {
		name string
		svc  Service // the service called; zero: hip on patient-view
		body string
		want []string // bad fields, in order; nil means valid
		msg  string   // a part of the first bad field's message
		ctx  HookContext
	}{
		{
			name: "valid patient-view",
			body: `{` + pv + `,"context":{"userId":"Practitioner/1","patientId":"p-1"}}`,
			ctx:  HookContext{PatientID: "p-1", UserID: "Practitioner/1"},
		},
		{
			name: "valid patient-view with server, token and encounter",
			body: `{` + pv + `,"fhirServer":"https://ehr.example.org/fhir",` + auth + `,"context":{"userId":"Practitioner/1","patientId":"p","encounterId":"e.1"}}`,
			ctx:  HookContext{PatientID: "p", UserID: "Practitioner/1", EncounterID: "e.1"},
		},
		{
			name: "valid imaging-study-available",
			svc:  hipStudy,
			body: `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"x","context":{"patientId":"p","studies":["ImagingStudy/a","ImagingStudy/b"]}}`,
			ctx:  HookContext{PatientID: "p", StudyIDs: []string{"a", "b"}},
		},
		{
			name: "everything missing",
			body: `{}`,
			want: []string{"hook", "hookInstance", "context"},
		},
		{
			name: "hook the service does not offer",
			body: `{"hook":"order-sign","hookInstance":"x","context":{}}`,
			want: []string{"hook"},
			msg:  `service hip-radiograph-screening does not answer hook "order-sign"; it answers patient-view`,
		},
		{
			name: "patient-view id called on the other hook names the id to use",
			body: `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"x","context":{"patientId":"p","studies":["ImagingStudy/a"]}}`,
			want: []string{"hook"},
			msg:  `for hook "org.orthotriage.imagingstudy-available" call service hip-radiograph-screening-imagingstudy-available`,
		},
		{
			name: "imaging-study-available id called on patient-view names the id to use",
			svc:  hipStudy,
			body: `{` + pv + `,"context":{"userId":"Practitioner/1","patientId":"p"}}`,
			want: []string{"hook"},
			msg:  `for hook "patient-view" call service hip-radiograph-screening`,
		},
		{
			name: "context not an object",
			body: `{` + pv + `,"context":"p"}`,
			want: []string{"context"},
		},
		{
			name: "context null",
			body: `{` + pv + `,"context":null}`,
			want: []string{"context"},
		},
		{
			name: "fhirAuthorization without fhirServer",
			body: `{` + pv + `,` + auth + `,"context":{"userId":"Practitioner/1","patientId":"p"}}`,
			want: []string{"fhirServer"},
		},
		{
			name: "fhirAuthorization incomplete",
			body: `{` + pv + `,"fhirServer":"https://ehr.example.org/fhir","fhirAuthorization":{"token_type":"MAC","expires_in":0},"context":{"userId":"Practitioner/1","patientId":"p"}}`,
			want: []string{"fhirAuthorization.access_token", "fhirAuthorization.token_type", "fhirAuthorization.expires_in", "fhirAuthorization.scope", "fhirAuthorization.subject"},
		},
		{
			name: "fhirServer not a URL",
			body: `{` + pv + `,"fhirServer":"ehr/fhir","context":{"userId":"Practitioner/1","patientId":"p"}}`,
			want: []string{"fhirServer"},
		},
		{
			name: "patient-view context fields missing",
			body: `{` + pv + `,"context":{}}`,
			want: []string{"context.patientId", "context.userId"},
		},
		{
			name: "patient-view context fields malformed",
			body: `{` + pv + `,"context":{"userId":"Device/1","patientId":"a b","encounterId":7}}`,
			want: []string{"context.patientId", "context.userId", "context.encounterId"},
		},
		{
			name: "imaging-study-available without studies",
			svc:  hipStudy,
			body: `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"x","context":{"patientId":"p"}}`,
			want: []string{"context.studies"},
		},
		{
			name: "imaging-study-available with bad references",
			svc:  hipStudy,
			body: `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"x","context":{"patientId":"p","studies":["Patient/1","ImagingStudy/ok"]}}`,
			want: []string{"context.studies[0]"},
		},
		{
			name: "imaging-study-available with empty studies",
			svc:  hipStudy,
			body: `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"x","context":{"patientId":"p","studies":[]}}`,
			want: []string{"context.studies"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			svc := tt.svc
			if svc.ID == "" {
				svc = hip
			}
			hc, err := Validate(svc, req)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if diff := cmp.Diff(tt.ctx, hc); diff != "" {
					t.Errorf("context (-want +got):\n%s", diff)
				}
				return
			}
			if orthotriage.ErrorCode(err) != orthotriage.EInvalid {
				t.Fatalf("Validate error code = %s (%v), want invalid", orthotriage.ErrorCode(err), err)
			}
			var got []string
			for _, f := range orthotriage.ErrorFields(err) {
				got = append(got, f.Field)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("bad fields (-want +got):\n%s", diff)
			}
			if fields := orthotriage.ErrorFields(err); tt.msg != "" && (len(fields) == 0 || !strings.Contains(fields[0].Message, tt.msg)) {
				t.Errorf("first field %v, want a message holding %q", fields, tt.msg)
			}
		})
	}
}

func TestParseRequestRejectsNonObjects(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{name: "empty", body: ""},
		{name: "array", body: `[1]`},
		{name: "truncated", body: `{"hook":`},
		{name: "two values", body: `{} {}`},
		{name: "trailing bytes", body: `{"hook":"patient-view"}x`},
		// A name given twice is refused, not one of its values chosen:
		// two readers of the same bytes must not see two patients.
		{name: "hook named twice", body: `{"hook":"patient-view","hook":"order-select"}`},
		{name: "prefetch patient id named twice", body: `{"prefetch":{"patient":{"resourceType":"Patient","id":"a","id":"b"}}}`},
		{name: "invalid UTF-8", body: "{\"hookInstance\":\"\xff\"}"},
		{name: "prefetch is an array", body: `{"prefetch":[]}`, field: "prefetch"},
		{name: "expires_in out of range", body: `{"fhirAuthorization":{"expires_in":1e400}}`, field: "fhirAuthorization.expires_in"},
		{name: "long name twice", body: `{"prefetch":{"` + strings.Repeat("n", 5000) + `":1,"` + strings.Repeat("n", 5000) + `":2}}`},
		{name: "hook is a number", body: `{"hook":5}`, field: "hook"},
		{name: "expires_in is a string", body: `{"fhirAuthorization":{"expires_in":"5"}}`, field: "fhirAuthorization.expires_in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(tt.body))
			if orthotriage.ErrorCode(err) != orthotriage.EInvalid {
				t.Fatalf("error = %v, want invalid", err)
			}
			if len(err.Error()) > 400 {
				t.Errorf("a %d-byte error: the request is echoed unbounded", len(err.Error()))
			}
			fields := orthotriage.ErrorFields(err)
			if tt.field != "" && (len(fields) != 1 || fields[0].Field != tt.field) {
				t.Errorf("fields = %v, want %s", fields, tt.field)
			}
		})
	}
}

func FuzzParseAndValidate(f *testing.F) {
	f.Add([]byte(`{"hook":"patient-view","hookInstance":"x","context":{"userId":"Practitioner/1","patientId":"p"}}`))
	f.Add([]byte(`{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"x","context":{"patientId":"p","studies":["ImagingStudy/a"]},"prefetch":{"studies":null}}`))
	f.Add([]byte(`{"fhirAuthorization":{"expires_in":1e400}}`))
	svc, _ := DefaultCatalog().Lookup("vertebral-fracture-acuity")
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body)
		if err != nil {
			return
		}
		_, _ = Validate(svc, req)
	})
}
