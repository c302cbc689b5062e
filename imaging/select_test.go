package imaging

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func TestSelectInstances(t *testing.T) {
	const study = `{
	  "resourceType": "ImagingStudy", "status": "available", "subject": {"reference": "Patient/p"},
	  "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:2.25.10"}],
	  "endpoint": [{"reference": "Endpoint/study-level"}],
	  "series": [
	    {"uid": "2.25.11", "modality": {"code": "DX"}, "bodySite": {"code": "12921003", "display": "Pelvis"},
	     "instance": [
	       {"uid": "2.25.11.1", "sopClass": {"code": "urn:oid:1.2.840.10008.5.1.4.1.1.88.22"}},
	       {"uid": "2.25.11.2", "sopClass": {"code": "urn:oid:1.2.840.10008.5.1.4.1.1.1.1"}},
	       {"uid": "2.25.11.3", "sopClass": {"code": "urn:oid:1.2.840.10008.5.1.4.1.1.1.1"}}]},
	    {"uid": "2.25.12", "modality": {"code": "CT"},
	     "instance": [{"uid": "2.25.12.1", "sopClass": {"code": "urn:oid:1.2.840.10008.5.1.4.1.1.2"}}]},
	    {"uid": "2.25.13", "modality": {"code": "CR"}, "bodySite": {"display": "Chest"}, "endpoint": [{"reference": "Endpoint/series-level"}]},
	    {"uid": "2.25.14", "modality": {"code": "PR"}}
	  ]}`
	s, err := models.UnmarshalImagingStudy([]byte(study))
	if err != nil {
		t.Fatal(err)
	}
	if got := StudyInstanceUID(s); got != "2.25.10" {
		t.Fatalf("StudyInstanceUID = %s", got)
	}
	ids := func(refs []InstanceRef) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.SeriesInstanceUID+"/"+r.SOPInstanceUID+" via "+*r.Endpoints[0].Reference)
		}
		return out
	}
	tests := []struct {
		name  string
		opts  SelectOptions
		want  []string
		skips int
	}{
		{name: "defaults: one image per radiograph series", opts: SelectOptions{},
			want: []string{"2.25.11/2.25.11.2 via Endpoint/study-level", "2.25.13/ via Endpoint/series-level"}, skips: 3},
		{name: "two per series", opts: SelectOptions{PerSeries: 2},
			want: []string{"2.25.11/2.25.11.2 via Endpoint/study-level", "2.25.11/2.25.11.3 via Endpoint/study-level", "2.25.13/ via Endpoint/series-level"}, skips: 3},
		{name: "study cap", opts: SelectOptions{PerSeries: 5, MaxPerStudy: 1},
			want: []string{"2.25.11/2.25.11.2 via Endpoint/study-level"}, skips: 3},
		{name: "body part filter", opts: SelectOptions{BodyParts: []string{"pelvis", "hip"}},
			want: []string{"2.25.11/2.25.11.2 via Endpoint/study-level"}, skips: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs, skips := SelectInstances(s, tt.opts)
			if diff := cmp.Diff(tt.want, ids(refs)); diff != "" {
				t.Errorf("selected (-want +got):\n%s", diff)
			}
			if len(skips) != tt.skips {
				b, _ := json.Marshal(skips)
				t.Errorf("%d skips, want %d: %s", len(skips), tt.skips, b)
			}
		})
	}
}
