package fhir_test

import (
	"slices"
	"testing"

	"github.com/orthotriage/orthotriage/fhir"
)

func TestNotifiedStudies(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
		bad        bool
	}{
		{"R4 full resource", `{"resourceType":"ImagingStudy","id":"s1","status":"available"}`, []string{"ImagingStudy/s1"}, false},
		{"R4 without payload", ``, nil, false},
		{"backport id-only", `{"resourceType":"Bundle","type":"history","entry":[` +
			`{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Parameters","parameter":[]}},` +
			`{"fullUrl":"https://ehr.example.org/fhir/ImagingStudy/s2/_history/3","request":{"method":"PUT","url":"ImagingStudy/s2"}},` +
			`{"fullUrl":"https://ehr.example.org/fhir/Patient/p1"}]}`, []string{"ImagingStudy/s2"}, false},
		{"backport full-resource", `{"resourceType":"Bundle","type":"subscription-notification","entry":[` +
			`{"resource":{"resourceType":"SubscriptionStatus","status":"active"}},` +
			`{"fullUrl":"https://ehr.example.org/fhir/ImagingStudy/s3","resource":{"resourceType":"ImagingStudy","id":"s3"}}]}`, []string{"ImagingStudy/s3"}, false},
		{"heartbeat", `{"resourceType":"Parameters","parameter":[{"name":"type","valueCode":"heartbeat"}]}`, nil, false},
		{"id with a path in it", `{"resourceType":"Bundle","entry":[{"fullUrl":"https://x/ImagingStudy/..%2F..%2Fadmin"}]}`, nil, false},
		{"other resource", `{"resourceType":"Patient","id":"p"}`, nil, true},
		{"study without id", `{"resourceType":"ImagingStudy"}`, nil, true},
		{"not JSON", `<xml/>`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fhir.NotifiedStudies([]byte(tc.body))
			if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, %v; want %v (error: %v)", got, err, tc.want, tc.bad)
			}
		})
	}
}
