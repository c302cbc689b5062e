package imaging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// unusedClassifier stands for a loaded hip model; retrieval fails first.
type unusedClassifier struct{ m *inference.Manifest }

func (c unusedClassifier) Manifest() *inference.Manifest { return c.m }
func (c unusedClassifier) Classify(context.Context, []float32, int) ([]inference.Output, error) {
	panic("classify called although retrieval failed")
}

// TestFailedRetrievalLogsNoPatientID runs the code path that logs a failed
// DICOMweb retrieval (the analyzer over the real Retriever) against a PACS
// that answers 404 and one that is down, with a patient id in the Endpoint
// address: the logs and the returned error name the operation, origin and
// status; the study UID appears only as its own attribute, the patient id
// nowhere.
func TestFailedRetrievalLogsNoPatientID(t *testing.T) {
	const secret, studyUID = "pat-secret-123", "2.25.777001"
	pacs := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(pacs.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	manifest, err := models.Manifest("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, address, want string }{
		{name: "404", address: pacs.URL + "/pacs/" + secret + "/dicom-web", want: "answered 404"},
		{name: "connection refused", address: down.URL + "/pacs/" + secret + "/dicom-web", want: "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			a := &analysis.Analyzer{Retriever: imaging.NewRetriever(imaging.RetrieverOptions{Retries: -1}),
				Models: []analysis.Classifier{unusedClassifier{manifest}},
				Log:    slog.New(slog.NewJSONHandler(&logs, nil))}
			_, err := a.Analyze(t.Context(), analysis.Input{Task: inference.TaskHip, FHIRServer: "https://ehr.example.org/fhir",
				Study:     study(secret, studyUID),
				Endpoints: map[string]fhirmodels.Endpoint{"Endpoint/e": {Address: tt.address, ConnectionType: fhirmodels.Coding{Code: ptr("dicom-wado-rs")}}},
				Access:    imaging.Access{FHIRBase: "https://ehr.example.org/fhir"}})
			if err == nil {
				t.Fatal("analysed")
			}
			if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, studyUID) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want %q, without the patient id or the study UID", msg, tt.want)
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs name the patient:\n%s", logs.String())
			}
			var line struct{ Msg, Study, Err string }
			if err := json.Unmarshal(bytes.SplitN(logs.Bytes(), []byte("\n"), 2)[0], &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if line.Msg != "image not retrieved" || line.Study != studyUID || strings.Contains(line.Err, studyUID) || !strings.Contains(line.Err, "WADO-RS retrieve instance") {
				t.Errorf("log line %+v: want the study as its own attribute and an error naming the operation only", line)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func study(patient, uid string) fhirmodels.ImagingStudy {
	sys, id, ep := "urn:dicom:uid", "is-1", "Endpoint/e"
	return fhirmodels.ImagingStudy{Id: &id, Identifier: []fhirmodels.Identifier{{System: &sys, Value: ptr("urn:oid:" + uid)}},
		Subject:  fhirmodels.Reference{Reference: ptr("Patient/" + patient)},
		Endpoint: []fhirmodels.Reference{{Reference: &ep}},
		Series: []fhirmodels.ImagingStudySeries{{Uid: uid + ".1", Modality: fhirmodels.Coding{Code: ptr("DX")}, BodySite: &fhirmodels.Coding{Display: ptr("PELVIS")},
			Instance: []fhirmodels.ImagingStudySeriesInstance{{Uid: uid + ".1.1", SopClass: fhirmodels.Coding{Code: ptr("urn:oid:" + imaging.SOPClassDXPresentation)}}}}}}
}
