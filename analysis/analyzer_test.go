package analysis_test

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models/modeltest"
	"github.com/orthotriage/orthotriage/store"
	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// fakeRetriever returns one smooth image (a ramp; flat grey with flat,
// which the gate refuses) of the body part asked for and counts calls.
type fakeRetriever struct {
	bodyPart string
	err      error
	calls    int
	flat     bool
	modality string
}

func (f *fakeRetriever) Retrieve(_ context.Context, ep fhirmodels.Endpoint, ref imaging.InstanceRef, _ imaging.Access, _ int) ([]*imaging.Image, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	px := make([]float32, 300*400)
	for i := range px {
		px[i] = 0.5
		if !f.flat {
			px[i] = 0.1 + 0.8*float32(i%400)/400*float32(i/400)/300
		}
	}
	return []*imaging.Image{{Pixels: px, Meta: imaging.Metadata{Rows: 300, Columns: 400, BodyPart: f.bodyPart, Modality: f.modality,
		StudyInstanceUID: ref.StudyInstanceUID, SeriesInstanceUID: ref.SeriesInstanceUID, SOPInstanceUID: ref.SOPInstanceUID}}}, nil
}

// fakeClassifier answers each crop with the next canned probabilities and
// a uniform activation map.
type fakeClassifier struct {
	manifest *inference.Manifest
	probs    [][]float64
}

func (f *fakeClassifier) Manifest() *inference.Manifest { return f.manifest }

func (f *fakeClassifier) Classify(_ context.Context, _ []float32, n int) ([]inference.Output, error) {
	outs := make([]inference.Output, n)
	labels := len(f.manifest.Labels)
	for k := range outs {
		cam := make([]float32, labels*16)
		for i := range cam {
			cam[i] = float32(i % 16)
		}
		outs[k] = inference.Output{Probabilities: f.probs[k], CAM: cam, CAMSize: [2]int{4, 4}}
	}
	return outs, nil
}

func hipClassifier(t *testing.T, version string, probs ...[]float64) *fakeClassifier {
	t.Helper()
	m := modeltest.FixedCropHip(t) // the stand-in classifier reads fixed crops
	m.Version = version
	return &fakeClassifier{manifest: m, probs: probs}
}

// p gives probabilities in hip-000's label order: normal oa onfh fnf itf ddh tha fixation.
func p(v ...float64) []float64 { return v }

func studyWith(bodySite string) analysis.Input {
	id, uid, ep := "s1", "urn:oid:1.2.3", "Endpoint/e1"
	sys := "urn:dicom:uid"
	se := fhirmodels.ImagingStudySeries{Uid: "1.2.3.4", Modality: fhirmodels.Coding{Code: ptr("DX")},
		Instance: []fhirmodels.ImagingStudySeriesInstance{{Uid: "1.2.3.4.5", SopClass: fhirmodels.Coding{Code: ptr("urn:oid:" + imaging.SOPClassDXPresentation)}}}}
	if bodySite != "" {
		se.BodySite = &fhirmodels.Coding{Display: ptr(bodySite)}
	}
	return analysis.Input{Task: "hip", FHIRServer: "https://ehr.example.org/fhir",
		Study: fhirmodels.ImagingStudy{Id: &id, Identifier: []fhirmodels.Identifier{{System: &sys, Value: &uid}},
			Subject: fhirmodels.Reference{Reference: ptr("Patient/p1")}, Endpoint: []fhirmodels.Reference{{Reference: &ep}},
			BasedOn: []fhirmodels.Reference{{Reference: ptr("ServiceRequest/o1")}, {Reference: ptr("CarePlan/c1")}},
			Series:  []fhirmodels.ImagingStudySeries{se}},
		Endpoints: map[string]fhirmodels.Endpoint{ep: {Address: "https://pacs.example.org/wado"}}}
}

func ptr(s string) *string { return &s }

func analyzer(r analysis.Retriever, c ...analysis.Classifier) *analysis.Analyzer {
	return &analysis.Analyzer{Retriever: r, Models: c, Policy: analysis.Policy{ReviewBelow: 0.6, HeatmapSide: 32},
		Now: func() time.Time { return time.Date(2026, 11, 28, 9, 30, 15, 500, time.UTC) }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestAnalyzeAppliesTheManifestAndPolicy(t *testing.T) {
	// Right hip: normal read, but fnf 0.35 passes the STAT rule (0.3).
	// Left hip: osteoarthritis at 0.55, below the review threshold.
	c := hipClassifier(t, "0.1.0", p(0.6, 0.05, 0, 0.35, 0, 0, 0, 0), p(0.4, 0.55, 0, 0, 0, 0.05, 0, 0))
	r, err := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, c).Analyze(context.Background(), studyWith("Pelvis"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Study.UID != "1.2.3" || r.Study.Patient != "Patient/p1" || len(r.Study.BasedOn) != 1 || r.FHIRServer == "" || r.Model.ID != "hip-000" {
		t.Errorf("result identity %+v %+v", r.Study, r.Model)
	}
	if r.Priority != "stat" || !r.Review || !r.Analyzed.Equal(time.Date(2026, 11, 28, 9, 30, 15, 0, time.UTC)) {
		t.Errorf("priority %q review %v analyzed %v", r.Priority, r.Review, r.Analyzed)
	}
	right, left := r.Findings[0], r.Findings[1]
	if right.Laterality != "right" || right.Class != "normal" || !right.Normal || right.Priority != "stat" || right.Flagged().Class != "fnf" || right.Flagged().Probability != 0.35 {
		t.Errorf("right %+v", right)
	}
	if left.Laterality != "left" || left.Class != "oa" || !left.LowConfidence || left.Priority != "routine" || left.Code.Code != "239872002" {
		t.Errorf("left %+v", left)
	}
	if top, ok := r.Top(); !ok || top.Region != "right-hip" {
		t.Errorf("top = %+v", top)
	}
	img, err := png.Decode(bytes.NewReader(right.Heatmap))
	if err != nil || img.Bounds().Dx() != 32 {
		t.Errorf("heat map thumbnail: %v", err)
	}
}

func TestAnalyzeSkipsWhatNoModelReads(t *testing.T) {
	c := hipClassifier(t, "0.1.0", p(1, 0, 0, 0, 0, 0, 0, 0), p(1, 0, 0, 0, 0, 0, 0, 0))
	fr := &fakeRetriever{bodyPart: "PELVIS"}
	if _, err := analyzer(fr, c).Analyze(context.Background(), studyWith("Chest")); !errors.Is(err, analysis.ErrNoRadiograph) || fr.calls != 0 {
		t.Errorf("chest series: err %v after %d retrievals", err, fr.calls)
	}
	// Unknown series body site: retrieved, then the image's own body part decides.
	fr = &fakeRetriever{bodyPart: "CHEST"}
	if _, err := analyzer(fr, c).Analyze(context.Background(), studyWith("")); !errors.Is(err, analysis.ErrNoRadiograph) || fr.calls != 1 {
		t.Errorf("chest image: err %v after %d retrievals", err, fr.calls)
	}
	// Images that cannot be had are an error worth retrying, not "no
	// radiograph".
	fr = &fakeRetriever{err: errors.New("pacs down")}
	if _, err := analyzer(fr, c).Analyze(context.Background(), studyWith("Pelvis")); err == nil || errors.Is(err, analysis.ErrNoRadiograph) || !strings.Contains(err.Error(), "pacs down") {
		t.Errorf("retrieval failure: %v", err)
	}
	in := studyWith("Pelvis")
	in.Task = "vertebral-fracture-acuity"
	if _, err := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, c).Analyze(context.Background(), in); !errors.Is(err, analysis.ErrNoRadiograph) {
		t.Errorf("no spine model: %v", err)
	}
}

func TestCachedComputesOncePerModelVersion(t *testing.T) {
	fr := &fakeRetriever{bodyPart: "PELVIS"}
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	a := analyzer(fr, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, store.NewMemoryResults(10), nil, analysis.CacheOptions{}, a.Log)
	for range 3 {
		if _, err := c.Analyze(context.Background(), studyWith("Pelvis")); err != nil {
			t.Fatal(err)
		}
	}
	if c.Stats().Computed != 1 || fr.calls != 1 {
		t.Errorf("computed %d, retrieved %d, want 1 and 1", c.Stats().Computed, fr.calls)
	}
	other := studyWith("Pelvis")
	other.FHIRServer = "https://other-ehr.example.org/fhir"
	c.Analyze(context.Background(), other)
	tenant := studyWith("Pelvis")
	tenant.Tenant = "https://another-issuer.example.org"
	if r, _ := c.Analyze(context.Background(), tenant); r.Tenant != tenant.Tenant {
		t.Errorf("result of tenant %q", r.Tenant)
	}
	a.Models = []analysis.Classifier{hipClassifier(t, "0.2.0", probs, probs)}
	r, _ := c.Analyze(context.Background(), studyWith("Pelvis"))
	if c.Stats().Computed != 4 || r.Model.Version != "0.2.0" {
		t.Errorf("computed %d (want 4: another server, another tenant, another model version), version %s", c.Stats().Computed, r.Model.Version)
	}
}

func TestPercent(t *testing.T) {
	for p, want := range map[float64]string{0.97: "97%", 0.9996: ">99%", 1: ">99%", 0.003: "<1%", 0: "<1%", 0.355: "36%", 0.994: "99%"} {
		if got := analysis.Percent(p); got != want {
			t.Errorf("Percent(%v) = %q, want %q", p, got, want)
		}
	}
}
