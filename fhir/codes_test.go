package fhir

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/fhir/codes"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
)

// TestCodeTable checks that every key the builders use is in the code
// table (package codes checks the table itself).
func TestCodeTable(t *testing.T) {
	used := []string{
		codes.ExamHip, codes.ExamSpine, codes.CategoryRAD, codes.CategoryImaging,
		codes.InterpretationNormal, codes.InterpretationAbnormal, codes.InterpretationCritical, codes.SecurityAIAST,
		codes.BodyHipJoint, codes.LateralityRight, codes.LateralityLeft, codes.AcuityAcute, codes.AcuityChronic,
		codes.ObservationHipFinding, codes.ObservationVertebralFinding, codes.ComponentProbability, codes.ComponentLaterality, codes.ComponentFractureAcuity,
		codes.TaskReadStudy, codes.ProvenanceAuthor,
	}
	for _, v := range []string{"T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"} {
		used = append(used, codes.VertebraPrefix+v)
	}
	for _, k := range used {
		if _, ok := codes.Lookup(k); !ok {
			t.Errorf("key %q is not in the code table", k)
		}
	}
}

// emittedCoding is one (system, code, display) a resource carries.
type emittedCoding struct{ System, Code, Display string }

// verifiedCodings is every coding the report builders may write, each as
// the code system publishes it; the sources are in the code table's
// Verified field. Class-probability codings (the manifests' own label
// keys) are added from the manifests.
var verifiedCodings = []emittedCoding{
	{codes.SystemLOINC, "28561-9", "XR Pelvis Views"},
	{codes.SystemLOINC, "24969-8", "XR Lumbar spine Lateral"},
	{codes.SystemDiagnosticServiceSection, "RAD", "Radiology"},
	{codes.SystemObservationCategory, "imaging", "Imaging"},
	{codes.SystemInterpretation, "N", "Normal"},
	{codes.SystemInterpretation, "A", "Abnormal"},
	{codes.SystemInterpretation, "AA", "Critical abnormal"},
	{codes.SystemObservationValue, "AIAST", "Artificial Intelligence asserted"},
	{codes.SystemProvenanceParticipant, "author", "Author"},
	{codes.SystemSNOMED, "24136001", "Hip joint structure"},
	{codes.SystemSNOMED, "24028007", "Right"},
	{codes.SystemSNOMED, "7771000", "Left"},
	{codes.SystemSNOMED, "82687006", "Bone structure of T9"},
	{codes.SystemSNOMED, "7610001", "Bone structure of T10"},
	{codes.SystemSNOMED, "12989004", "Bone structure of T11"},
	{codes.SystemSNOMED, "23215003", "Bone structure of T12"},
	{codes.SystemSNOMED, "66794005", "Bone structure of L1"},
	{codes.SystemSNOMED, "14293000", "Bone structure of L2"},
	{codes.SystemSNOMED, "36470004", "Bone structure of L3"},
	{codes.SystemSNOMED, "11994002", "Bone structure of L4"},
	{codes.SystemSNOMED, "49668003", "Bone structure of L5"},
	{codes.SystemSNOMED, "373933003", "Acute onset"},
	{codes.SystemSNOMED, "90734009", "Chronic"},
	// The model labels' codes.
	{codes.SystemSNOMED, "17621005", "Normal"},
	{codes.SystemSNOMED, "239872002", "Osteoarthritis of hip"},
	{codes.SystemSNOMED, "5913000", "Fracture of neck of femur"},
	{codes.SystemSNOMED, "71620000", "Fracture of femur"},
	{codes.SystemSNOMED, "722810000", "Prosthesis in situ"},
	{codes.SystemSNOMED, "397578001", "Device in situ"},
	{codes.SystemSNOMED, "42942008", "Compression fracture of vertebral column"},
	{codes.SystemHipFindings, "onfh", "Osteonecrosis of the femoral head"},
	{codes.SystemHipFindings, "ddh", "Developmental dysplasia of the hip"},
	// orthotriage's own codes.
	{codes.SystemObservation, "hip-finding", "AI hip radiograph finding"},
	{codes.SystemObservation, "vertebral-finding", "AI vertebral fracture acuity finding"},
	{codes.SystemObservation, "probability", "Model probability of the reported class"},
	{codes.SystemObservation, "laterality", "Laterality of the region"},
	{codes.SystemObservation, "fracture-acuity", "Vertebral fracture acuity"},
	{codes.SystemTask, "read-study", "Read the imaging study"},
}

// TestEmittedCodings builds the reports of every class of every shipped
// model and checks every coding in them against verifiedCodings: same
// system, code and display, and every verified coding is written by some
// report. The findings carry the manifest's wording as their code display,
// as the analyzer sets it, to show the code system's term wins.
func TestEmittedCodings(t *testing.T) {
	want := map[emittedCoding]bool{}
	for _, c := range verifiedCodings {
		want[c] = true
	}
	var results []analysis.Result
	for _, id := range models.IDs() {
		m, err := models.Manifest(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Labels {
			want[emittedCoding{codes.SystemClassProbability, l.Key, l.Display}] = true
		}
		results = append(results, manifestResults(t, m)...)
	}
	emitted := map[emittedCoding]bool{}
	for _, r := range results {
		rep, err := BuildReport(r, ReportOptions{})
		if err != nil {
			t.Fatalf("BuildReport %s: %v", r.Model.ID, err)
		}
		resources, err := rep.Resources()
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range resources {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			collectCodings(v, emitted)
		}
	}
	for c := range emitted {
		if !want[c] {
			t.Errorf("emitted coding %s|%s %q is not in the verified table", c.System, c.Code, c.Display)
		}
	}
	for _, c := range verifiedCodings {
		if !emitted[c] {
			t.Errorf("verified coding %s|%s %q is never emitted: a stale entry or a display that differs", c.System, c.Code, c.Display)
		}
	}
}

// TestIntertrochantericCode checks that the hip model's intertrochanteric
// class is not coded 208550004 (closed, two-part), and that no label uses
// a procedure concept (52734007 total hip replacement, 118470002 internal
// skeletal fixation) as an image finding.
func TestIntertrochantericCode(t *testing.T) {
	m, err := models.Manifest("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(m.Labels, func(l inference.Label) bool { return l.Key == "itf" })
	if i < 0 {
		t.Fatal("hip-000 has no itf label")
	}
	if got := m.Labels[i].Code; got == "208550004" {
		t.Errorf("itf is coded 208550004 |Closed fracture proximal femur, intertrochanteric, two part|: it asserts a closed two-part fracture")
	}
	for _, l := range m.Labels {
		if l.System == codes.SystemSNOMED && (l.Code == "52734007" || l.Code == "118470002") {
			t.Errorf("label %s uses the procedure concept %s as a finding", l.Key, l.Code)
		}
	}
}

// TestManifestCodes checks each shipped label against the code table: the
// code is known, the manifest's codeDisplay is the table's display (the
// code system's term, not the model's wording), and it says where it was
// verified.
func TestManifestCodes(t *testing.T) {
	for _, id := range models.IDs() {
		m, err := models.Manifest(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Labels {
			t.Run(id+"/"+l.Key, func(t *testing.T) {
				e, ok := codes.Find(l.System, l.Code)
				if !ok {
					t.Fatalf("%s|%s is not in the code table", l.System, l.Code)
				}
				if l.CodeDisplay != e.Display {
					t.Errorf("codeDisplay %q, want the code system's %q", l.CodeDisplay, e.Display)
				}
				if l.Verified == "" || strings.HasPrefix(l.Verified, "unverified") {
					t.Errorf("verified %q: say where the code was checked", l.Verified)
				}
				got := findingCoding(analysis.Code{System: l.System, Code: l.Code, Display: l.Display})
				if *got.Display != e.Display {
					t.Errorf("written display %q, want %q", *got.Display, e.Display)
				}
			})
		}
	}
}

// collectCodings adds every Coding found in v: an object with string
// system and code and no value (a Quantity has value, system and code).
func collectCodings(v any, into map[emittedCoding]bool) {
	switch x := v.(type) {
	case map[string]any:
		system, okS := x["system"].(string)
		code, okC := x["code"].(string)
		if _, quantity := x["value"]; okS && okC && !quantity {
			display, _ := x["display"].(string)
			into[emittedCoding{system, code, display}] = true
		}
		for _, child := range x {
			collectCodings(child, into)
		}
	case []any:
		for _, child := range x {
			collectCodings(child, into)
		}
	}
}

// manifestResults are results that together carry every class of m: for a
// hip model one result per class on the right hip (left hip normal), and
// one with a stat priority; for a vertebral model one result with every
// level, cycling through the classes, and a priority.
func manifestResults(t *testing.T, m *inference.Manifest) []analysis.Result {
	t.Helper()
	base := analysis.Result{
		Schema:     analysis.SchemaVersion,
		FHIRServer: "https://ehr.example.org/fhir",
		Study:      analysis.Study{UID: "1.2.3", Patient: "Patient/p1"},
		Model:      analysis.Model{ID: m.ID, Version: m.Version, Task: m.Task},
		Analyzed:   time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
	}
	finding := func(region, side string, l inference.Label) analysis.Finding {
		f := analysis.Finding{
			Region: region, Laterality: side, Class: l.Key, Display: l.Display,
			Code:        analysis.Code{System: l.System, Code: l.Code, Display: l.Display, Verified: l.Verified},
			Probability: 0.9, Reported: true, Normal: l.Normal,
		}
		for _, o := range m.Labels {
			f.Probabilities = append(f.Probabilities, analysis.ClassProbability{Class: o.Key, Display: o.Display, Probability: 0.1})
		}
		return f
	}
	normal := m.Labels[slices.IndexFunc(m.Labels, func(l inference.Label) bool { return l.Normal })]
	var out []analysis.Result
	if m.Task == inference.TaskVertebral {
		r := base
		for i, level := range []string{"T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"} {
			r.Findings = append(r.Findings, finding(level, "", m.Labels[i%len(m.Labels)]))
		}
		out = append(out, r)
		r.Findings = slices.Clone(r.Findings)
		r.Findings[1].Priority, r.Findings[1].PriorityClass, r.Priority = "stat", r.Findings[1].Class, "stat"
		return append(out, r)
	}
	for i, l := range m.Labels {
		r := base
		r.Study.UID = fmt.Sprintf("1.2.3.%d", i)
		r.Findings = []analysis.Finding{finding("right-hip", "right", l), finding("left-hip", "left", normal)}
		out = append(out, r)
	}
	r := out[0]
	r.Findings = slices.Clone(r.Findings)
	r.Findings[0].Priority, r.Findings[0].PriorityClass, r.Priority = "stat", r.Findings[0].Class, "stat"
	return append(out, r)
}
