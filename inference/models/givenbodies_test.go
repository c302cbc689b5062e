package models_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/fhir"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/inference/onnx/onnxtest"
	"github.com/orthotriage/orthotriage/phantom"
)

// TestGivenBodiesMakeAnotherResult: a lateral spine read with the bodies a
// caller gave and read with the localiser's in the same second are two
// results, so that what is kept per result (its card, its resources, its
// write-back, its report) is never the other reading's.
func TestGivenBodiesMakeAnotherResult(t *testing.T) {
	m, err := models.Manifest("spine-000")
	if err != nil {
		t.Fatal(err)
	}
	l, err := onnx.Open(m, onnx.Options{Library: onnxtest.Library(t), Session: onnx.SessionOptions{IntraOpThreads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	v := &analysis.VertebralModel{Classifier: l.Model, Pipeline: l.Pipeline}
	var b bytes.Buffer
	if err := imaging.WriteDICOM(&b, phantom.Spine(3, 0).Image); err != nil {
		t.Fatal(err)
	}
	img, err := imaging.Decode(b.Bytes(), imaging.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	second := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	a := &analysis.Analyzer{Now: func() time.Time { return second }}
	own, err := a.ReadImage(t.Context(), v, img, analysis.Input{})
	if err != nil {
		t.Fatal(err)
	}
	if own.GivenBodies != "" || len(own.Localised) == 0 {
		t.Fatalf("localiser's reading: given bodies %q, %d levels localised", own.GivenBodies, len(own.Localised))
	}
	readings, err := l.Pipeline.Read(t.Context(), img, nil, false)
	if err != nil || len(readings) == 0 {
		t.Fatalf("%d bodies localised: %v", len(readings), err)
	}
	one := []inference.Body{readings[0].Body}
	given, err := a.ReadImage(t.Context(), v, img, analysis.Input{Bodies: one})
	if err != nil {
		t.Fatal(err)
	}
	if given.GivenBodies == "" || !given.Analyzed.Equal(own.Analyzed) {
		t.Fatalf("given bodies' reading: given bodies %q, analysed %v (the localiser's %v)", given.GivenBodies, given.Analyzed, own.Analyzed)
	}
	if given.BoundKey() == own.BoundKey() {
		t.Error("the readings with and without given bodies share a BoundKey")
	}
	// Nor do they share a report: the earlier card's report link and
	// resources stay its own reading's.
	ownRead, givenRead := own, given
	ownRead.Study, givenRead.Study = analysis.Study{UID: "1.2.3", Patient: "Patient/p1"}, analysis.Study{UID: "1.2.3", Patient: "Patient/p1"}
	if fhir.ReportID(givenRead) == fhir.ReportID(ownRead) {
		t.Error("the readings with and without given bodies share a DiagnosticReport id")
	}
	moved := one[0]
	moved.Box.Min.X++
	again, err := a.ReadImage(t.Context(), v, img, analysis.Input{Bodies: []inference.Body{moved}})
	if err != nil {
		t.Fatal(err)
	}
	if again.BoundKey() == given.BoundKey() {
		t.Error("readings with two different given bodies share a BoundKey")
	}
}
