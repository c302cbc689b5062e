package analysis_test

import (
	"context"
	"errors"
	"image"
	"math"
	"slices"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func reason(nr *analysis.NotRead) string {
	if nr == nil {
		return ""
	}
	return nr.Reason
}

func TestGateTags(t *testing.T) {
	hip := analysis.Gate{Task: inference.TaskHip, Thresholds: inference.DefaultGate(inference.TaskHip)}
	spine := analysis.Gate{Task: inference.TaskVertebral, Thresholds: inference.DefaultGate(inference.TaskVertebral)}
	for _, tc := range []struct {
		gate analysis.Gate
		meta imaging.Metadata
		want string
	}{
		{hip, imaging.Metadata{}, ""},
		{hip, imaging.Metadata{Modality: "DX", BodyPart: "PELVIS", ViewPosition: "AP"}, ""},
		{hip, imaging.Metadata{Modality: "cr", BodyPart: "Hip", ViewPosition: "pa"}, ""},
		{hip, imaging.Metadata{Modality: "CT", BodyPart: "PELVIS"}, analysis.ReasonModality},
		{hip, imaging.Metadata{Modality: "MR"}, analysis.ReasonModality},
		{hip, imaging.Metadata{Modality: "US"}, analysis.ReasonModality},
		{hip, imaging.Metadata{BodyPart: "CHEST"}, analysis.ReasonBodyPart},
		{hip, imaging.Metadata{BodyPart: "PELVIS", ViewPosition: "LL"}, analysis.ReasonView},
		{spine, imaging.Metadata{BodyPart: "LSPINE", ViewPosition: "LATERAL"}, ""},
		{spine, imaging.Metadata{BodyPart: "SPINE", ViewPosition: "AP"}, analysis.ReasonView},
		{spine, imaging.Metadata{BodyPart: "PELVIS"}, analysis.ReasonBodyPart},
	} {
		if got := reason(tc.gate.Tags(tc.meta)); got != tc.want {
			t.Errorf("%s %+v: %q, want %q", tc.gate.Task, tc.meta, got, tc.want)
		}
	}
}

// img is a rows x cols image of the given pixels.
func img(rows, cols int, px func(x, y int) float32) *imaging.Image {
	p := make([]float32, rows*cols)
	for y := range rows {
		for x := range cols {
			p[y*cols+x] = px(x, y)
		}
	}
	return &imaging.Image{Pixels: p, Meta: imaging.Metadata{Rows: rows, Columns: cols}}
}

func TestGateQuality(t *testing.T) {
	g := analysis.Gate{Task: inference.TaskHip, Thresholds: inference.DefaultGate(inference.TaskHip)}
	state := uint64(7)
	rnd := func() float32 {
		state = state*6364136223846793005 + 1442695040888963407
		return float32(state>>40) / (1 << 24)
	}
	disc := func(x, y int) float32 { // a bright disc on a dark ramp: a smooth image
		dx, dy := float64(x-100), float64(y-80)
		if dx*dx+dy*dy < 50*50 {
			return 0.8
		}
		return 0.1 + float32(x)/1000
	}
	for name, tc := range map[string]struct {
		im   *imaging.Image
		want string
	}{
		"smooth": {img(160, 200, disc), ""},
		"grey":   {img(160, 200, func(x, y int) float32 { return 0.5 }), analysis.ReasonBlank},
		"black":  {img(160, 200, func(x, y int) float32 { return 0 }), analysis.ReasonBlank},
		"white":  {img(160, 200, func(x, y int) float32 { return 1 }), analysis.ReasonBlank},
		"mostly black": {img(160, 200, func(x, y int) float32 {
			if x < 30 {
				return 0.2 + 0.6*float32(y)/160
			}
			return 0
		}), analysis.ReasonExposure},
		"mostly white": {img(160, 200, func(x, y int) float32 {
			if y < 20 {
				return 0.2 + 0.6*float32(x)/200
			}
			return 1
		}), analysis.ReasonExposure},
		"noise":   {img(160, 200, func(x, y int) float32 { return rnd() }), analysis.ReasonNoise},
		"NaN":     {img(160, 200, func(x, y int) float32 { return float32(math.NaN()) }), analysis.ReasonBlank},
		"huge":    {img(160, 200, func(x, y int) float32 { return float32(math.Inf(1)) }), analysis.ReasonBlank},
		"no rows": {&imaging.Image{}, analysis.ReasonBlank},
		"1 pixel": {img(1, 1, func(x, y int) float32 { return 0.5 }), analysis.ReasonBlank},
	} {
		if got := reason(g.Quality(tc.im)); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

// fakeLocaliser answers with canned joints.
type fakeLocaliser struct {
	h     inference.HipJoints
	calls int
}

func (f *fakeLocaliser) FindHips(_ []float32, _, _ int) (inference.HipJoints, error) {
	f.calls++
	return f.h, nil
}

// A hip model with a localiser: crops follow the joints, the result
// records them; no pelvis or no joint is not read, and the model is not
// run.
func TestReadHipWithLocaliser(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	c := hipClassifier(t, "0.2.0", probs, probs)
	m := *c.manifest
	m.Preprocess.Localiser = &inference.Localiser{File: "l.onnx", Input: "i", Output: "o", Width: 64, Height: 64, Levels: inference.HipLevels, MinPresence: 0.5}
	m.Preprocess.CropScale, m.Preprocess.Upright = 1.5, true
	m.Preprocess.Regions = []inference.Region{{Name: "right-hip", Laterality: "right"}, {Name: "left-hip", Laterality: "left", Mirror: true}}
	c.manifest = &m
	found := func(level string, p float64, box image.Rectangle) inference.Body {
		return inference.Body{Level: level, Presence: p, Box: box}
	}
	pelvis := found("pelvis", 0.95, image.Rect(40, 60, 360, 260))
	right, left := found("right", 0.9, image.Rect(80, 120, 140, 180)), found("left", 0.85, image.Rect(260, 130, 320, 190))
	fr := &fakeRetriever{bodyPart: "PELVIS"}
	a := analyzer(fr)
	ims, _ := fr.Retrieve(context.Background(), fhirmodels.Endpoint{}, imaging.InstanceRef{}, imaging.Access{}, 1)
	pic := ims[0]
	for name, tc := range map[string]struct {
		h    inference.HipJoints
		want string
	}{
		"both":        {inference.HipJoints{Right: right, Left: left, Pelvis: pelvis}, ""},
		"one":         {inference.HipJoints{Right: right, Left: found("left", 0.2, image.Rectangle{}), Pelvis: pelvis}, ""},
		"no pelvis":   {inference.HipJoints{Right: right, Left: left, Pelvis: found("pelvis", 0.3, image.Rectangle{})}, analysis.ReasonNotAPPelvis},
		"no joint":    {inference.HipJoints{Right: found("right", 0.1, image.Rectangle{}), Left: found("left", 0.1, image.Rectangle{}), Pelvis: pelvis}, analysis.ReasonNoJoint},
		"huge joints": {inference.HipJoints{Right: found("right", 0.9, image.Rect(0, 0, 5000, 5000)), Left: left, Pelvis: pelvis}, ""},
	} {
		loc := &fakeLocaliser{h: tc.h}
		c.probs = [][]float64{probs, probs}
		hr, err := a.ReadHip(context.Background(), &analysis.HipModel{Classifier: c, Localiser: loc}, pic)
		if name == "huge joints" {
			if err == nil {
				t.Errorf("%s: a crop over the limit was read", name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := hr.Result
		if got := reason(r.NotRead); got != tc.want || r.Hips == nil || r.Hips.Pelvis != tc.h.Pelvis.Presence {
			t.Errorf("%s: not read %q (want %q), hips %+v", name, got, tc.want, r.Hips)
		}
		if tc.want != "" && len(r.Findings) != 0 || tc.want == "" && len(r.Findings) != 2 {
			t.Errorf("%s: %d findings", name, len(r.Findings))
		}
		if name == "one" && (r.Hips.Inferred != "left" || hr.Findings[1].Crop.Centre[0] != 290) {
			t.Errorf("one joint: inferred %q, left crop %+v", r.Hips.Inferred, hr.Findings[1].Crop)
		}
		if name == "both" && (hr.Findings[0].Crop.Side != 90 || hr.Findings[0].Crop.Angle <= 0 || !hr.Findings[1].Crop.Mirror || r.Hips.Right.Box != [4]int{80, 120, 60, 60}) {
			t.Errorf("crops %+v %+v, hips %+v", hr.Findings[0].Crop, hr.Findings[1].Crop, r.Hips)
		}
	}
	// Without its localiser loaded, a localiser manifest is an error.
	if _, err := a.ReadHip(context.Background(), c, pic); err == nil {
		t.Error("a localiser manifest read without its localiser")
	}
}

// The service: a study whose only image the gate refuses gets a not-read
// result (no finding); one of another body part is still "no radiograph".
func TestAnalyzeNotRead(t *testing.T) {
	c := hipClassifier(t, "0.1.0")
	obs := &stages{}
	a := analyzer(&fakeRetriever{bodyPart: "PELVIS", flat: true}, c)
	a.Observer = obs
	r, err := a.Analyze(context.Background(), studyWith("Pelvis"))
	if err != nil || reason(r.NotRead) != analysis.ReasonBlank || len(r.Findings) != 0 || r.Study.UID != "1.2.3" || r.WorthACard(true) {
		t.Errorf("blank image: %+v %v", r, err)
	}
	if !slices.Contains(obs.list(), "refused hip blank") {
		t.Errorf("observer told %v", obs.list())
	}
	r, err = analyzer(&fakeRetriever{bodyPart: "PELVIS", modality: "CT"}, c).Analyze(context.Background(), studyWith("Pelvis"))
	if err != nil || reason(r.NotRead) != analysis.ReasonModality {
		t.Errorf("CT: %+v %v", r.NotRead, err)
	}
	if _, err := analyzer(&fakeRetriever{bodyPart: "CHEST"}, c).Analyze(context.Background(), studyWith("")); !errors.Is(err, analysis.ErrNoRadiograph) {
		t.Errorf("chest: %v", err)
	}
}
