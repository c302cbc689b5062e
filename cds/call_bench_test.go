package cds_test

import (
	"strconv"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
)

// BenchmarkCachedCall is one cached patient-view call through the engine
// (parse, validate, prefetch, the use case answering from its results,
// cards, encoding), without HTTP: "repeated" sends the same prefetch bytes
// each call (an EHR reopening the chart: the decoded Patient and
// ImagingStudy are remembered), "distinct" another version of them each
// call (every call decodes them).
func BenchmarkCachedCall(b *testing.B) {
	res := hips("is-a", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	body := func(version int) []byte {
		v := strconv.Itoa(version)
		return []byte(`{"hook":"patient-view","hookInstance":"h1","context":{"userId":"Practitioner/u","patientId":"p1"},` +
			`"prefetch":{"patient":{"resourceType":"Patient","id":"p1","meta":{"versionId":"` + v + `"},"gender":"female","birthDate":"1941-03-02"},"studies":` +
			bundle("", `{"resourceType":"ImagingStudy","id":"is-a","meta":{"versionId":"`+v+`"},"status":"available","subject":{"reference":"Patient/p1"},`+
				`"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:1.2.is-a"}],"started":"2026-11-21T08:00:00Z","endpoint":[{"reference":"Endpoint/e1"}],`+
				`"series":[{"uid":"1.2.3","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"DX"},`+
				`"bodySite":{"system":"http://snomed.info/sct","code":"12921003","display":"Pelvis"},`+
				`"instance":[{"uid":"1.2.3.4","sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:1.2.840.10008.5.1.4.1.1.1.1"}}]}]}`) + `}}`)
	}
	for _, mode := range []string{"repeated", "distinct"} {
		b.Run(mode, func(b *testing.B) {
			e, _ := engineFor(map[string]analysis.Result{"is-a": res}, cds.CardOptions{Source: cds.Source{Label: "orthotriage"}}, keepCards)
			bodies := [][]byte{body(0)}
			if mode == "distinct" {
				for i := 1; i < 4096; i++ {
					bodies = append(bodies, body(i))
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				resp, err := e.Call(b.Context(), "hip-radiograph-screening", bodies[i%len(bodies)])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := cds.Marshal(resp); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
