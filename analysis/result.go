// Package analysis is the use case of the service: a study in, a
// FHIR-agnostic Result out. It selects a study's radiographs, retrieves and
// decodes them (imaging), runs the model for the study's body part
// (inference) and applies the triage policy, once per study (Cached).
// Triage is the use case around it: a hook call's studies within the
// hook's budget, precompute jobs, and the write-back of the results worth a
// card. Cards (cds) and FHIR resources (fhir) are built from the Result at
// the edge.
package analysis

import (
	"fmt"
	"slices"
	"time"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// SchemaVersion is the version of Result's shape and meaning; a cached
// Result of another version is not served. 2: results are cached without
// what names a patient or study (bound per call), and codings carry the
// code system's display. 3: findings carry the box of the region read.
const SchemaVersion = 3

// Priorities are the FHIR request priorities, least urgent first.
var Priorities = []string{"routine", "urgent", "asap", "stat"}

// PriorityRank orders priorities: routine 1 ... stat 4; "" (none) is 0.
func PriorityRank(p string) int { return slices.Index(Priorities, p) + 1 }

// Result is the analysis of one imaging study by one model.
type Result struct {
	Schema int `json:"schema"`
	// Tenant is the issuer whose call or job produced the result.
	Tenant string `json:"tenant,omitempty"`
	// FHIRServer is the identity of the EHR's FHIR server the study came from.
	FHIRServer string `json:"fhirServer,omitempty"`
	Study      Study  `json:"study"`
	Model      Model  `json:"model"`
	// Images are the radiographs the findings were read from.
	Images   []Image   `json:"images"`
	Findings []Finding `json:"findings"`
	// Priority is the most urgent finding's triage priority; "" when no
	// finding called for one.
	Priority string `json:"priority,omitempty"`
	// Review is set when a finding's confidence is below the policy's
	// review threshold: a human should look before anyone relies on it.
	Review bool `json:"review,omitempty"`
	// Localised are the vertebral levels the localiser found (or the
	// caller gave), top to bottom; vertebral results only.
	Localised []string `json:"localised,omitempty"`
	// GivenBodies names the vertebral bodies the caller gave, which the
	// result was read with instead of the localiser's (a digest of their
	// levels and boxes); "" when the localiser found them. Two readings of
	// one study, with and without them, are two results (BoundKey).
	GivenBodies string `json:"givenBodies,omitempty"`
	// NotRead is set when the image gate refused the image: no finding
	// was made, and it says why.
	NotRead *NotRead `json:"notRead,omitempty"`
	// Hips is what the hip localiser found; hip models with a localiser
	// only.
	Hips *Hips `json:"hips,omitempty"`
	// Notes say what a reader must know about the result as a whole, e.g.
	// that nothing could be localised or that clinical data was missing.
	Notes    []string  `json:"notes,omitempty"`
	Analyzed time.Time `json:"analyzed"`
	Timings  Timings   `json:"timingsMs"`
}

// Study identifies the analysed study as the EHR knows it.
type Study struct {
	UID            string   `json:"uid,omitempty"`            // DICOM Study Instance UID
	ImagingStudyID string   `json:"imagingStudyId,omitempty"` // the ImagingStudy's id on FHIRServer
	Patient        string   `json:"patient,omitempty"`        // "Patient/{id}"
	Started        string   `json:"started,omitempty"`        // FHIR dateTime of the study
	BasedOn        []string `json:"basedOn,omitempty"`        // ServiceRequest references of the order
}

// Key is the study's identity for ids and caching: its Study Instance UID,
// else its ImagingStudy id.
func (s Study) Key() string {
	if s.UID != "" {
		return s.UID
	}
	return "ImagingStudy/" + s.ImagingStudyID
}

// Model names the model that produced a Result.
type Model struct {
	ID           string `json:"id"`
	Version      string `json:"version"`
	Task         string `json:"task"` // "hip" or "vertebral-fracture-acuity"
	Architecture string `json:"architecture,omitempty"`
	TrainingData string `json:"trainingData,omitempty"` // "synthetic" or a description
	Warning      string `json:"warning,omitempty"`      // e.g. synthetic training data - not for clinical use
	IntendedUse  string `json:"intendedUse,omitempty"`
}

// Synthetic reports whether the model was trained on synthetic data only.
func (m Model) Synthetic() bool { return m.TrainingData == "synthetic" }

// Image is one analysed radiograph.
type Image struct {
	SeriesUID    string `json:"seriesUid,omitempty"`
	SOPUID       string `json:"sopUid,omitempty"`
	ViewPosition string `json:"viewPosition,omitempty"`
	BodyPart     string `json:"bodyPart,omitempty"`
	Rows         int    `json:"rows"`
	Columns      int    `json:"columns"`
	Lossy        bool   `json:"lossy,omitempty"`
}

// Finding is the model's reading of one region: a hip, or a vertebra.
type Finding struct {
	Region     string `json:"region"`               // e.g. right-hip, L1
	Laterality string `json:"laterality,omitempty"` // right or left, for paired sites
	Image      int    `json:"image"`                // index into Result.Images
	// Class is the chosen label; Code is its coding from the manifest.
	Class       string  `json:"class"`
	Display     string  `json:"display"`
	Code        Code    `json:"code"`
	Probability float64 `json:"probability"`
	// Probabilities lists every label's probability, in manifest order.
	Probabilities []ClassProbability `json:"probabilities"`
	// Reported is false when the top class is below its threshold.
	Reported bool `json:"reported"`
	// Normal marks the class that means "nothing found".
	Normal   bool   `json:"normal,omitempty"`
	Priority string `json:"priority,omitempty"` // triage priority from the manifest's rules
	// PriorityClass is the label that triggered Priority (it may be
	// another than Class: see inference.Finding).
	PriorityClass string `json:"priorityClass,omitempty"`
	// LowConfidence is set below the policy's review threshold.
	LowConfidence bool `json:"lowConfidence,omitempty"`
	// Box is the region read (the crop of a hip, a vertebral body), x, y,
	// width, height in pixels of Images[Image]; the heat map covers it.
	Box [4]int `json:"box"`
	// Heatmap is a small PNG of the region with the activation map laid
	// over it; nil when the model has no activation output.
	Heatmap []byte `json:"heatmap,omitempty"`
	// Acuity is how a fractured vertebra's acuity was reached; vertebral
	// findings only.
	Acuity *Acuity `json:"acuity,omitempty"`
}

// Acuity is the vertebral fusion's reading of one fractured vertebra.
type Acuity struct {
	// Fracture is the network's probability that the body is fractured.
	Fracture float64 `json:"fracture"`
	// DLR is the deep-learning-radiomics score: P(acute) from the image.
	DLR float64 `json:"dlr"`
	// Nomogram is the nomogram's reading with the clinical data; nil when
	// a clinical value was missing (Missing says which) and the DLR score
	// alone gave the probability.
	Nomogram *spine.Score `json:"nomogram,omitempty"`
	Missing  []string     `json:"missing,omitempty"`
	// Box is the body's box in image pixels (x, y, width, height); Given
	// says the caller gave it rather than the localiser.
	Box   [4]int `json:"box"`
	Given bool   `json:"given,omitempty"`
}

// Method says which score gave the acuity probability.
func (a Acuity) Method() string {
	if a.Nomogram != nil {
		return "nomogram"
	}
	return "DLR score alone"
}

// Code is a coding from the model manifest's label table.
type Code struct {
	System   string `json:"system"`
	Code     string `json:"code"`
	Display  string `json:"display"`
	Verified string `json:"verified,omitempty"`
}

// ClassProbability is one label's probability.
type ClassProbability struct {
	Class       string  `json:"class"`
	Display     string  `json:"display"`
	Probability float64 `json:"probability"`
}

// Flagged is the class a reader should hear about: the one that triggered
// the finding's priority, else the top class.
func (f Finding) Flagged() ClassProbability {
	if f.PriorityClass != "" {
		for _, p := range f.Probabilities {
			if p.Class == f.PriorityClass {
				return p
			}
		}
	}
	return ClassProbability{Class: f.Class, Display: f.Display, Probability: f.Probability}
}

// Notable reports whether a finding matters for triage: it set a priority,
// or its top class is reported and not the normal one.
func (f Finding) Notable() bool { return f.Priority != "" || (f.Reported && !f.Normal) }

// Hips is the hip localiser's reading of an image: each joint's box and
// presence, and the pelvis's presence.
type Hips struct {
	Right  Joint   `json:"right"`
	Left   Joint   `json:"left"`
	Pelvis float64 `json:"pelvis"` // the pelvis level's presence
	// Inferred names the side the localiser missed, placed as the other's
	// mirror image across the pelvis.
	Inferred string `json:"inferred,omitempty"`
}

// Joint is one hip joint as the localiser found it.
type Joint struct {
	Presence float64 `json:"presence"`
	// Box is x, y, width, height in image pixels; zero when not found.
	Box [4]int `json:"box"`
}

func jointOf(b inference.Body) Joint {
	return Joint{Presence: b.Presence, Box: [4]int{b.Box.Min.X, b.Box.Min.Y, b.Box.Dx(), b.Box.Dy()}}
}

// Timings are the stages of one analysis, in milliseconds.
type Timings struct {
	Retrieve    float64 `json:"retrieve"`
	Preprocess  float64 `json:"preprocess"`
	Inference   float64 `json:"inference"`
	Postprocess float64 `json:"postprocess"`
}

// Top returns the most urgent notable finding (highest priority, then the
// highest flagged probability, then region order), or false when none is
// notable.
func (r Result) Top() (Finding, bool) {
	best, ok := Finding{}, false
	for _, f := range r.Findings {
		if !f.Notable() {
			continue
		}
		fr, br := PriorityRank(f.Priority), PriorityRank(best.Priority)
		if !ok || fr > br || (fr == br && f.Flagged().Probability > best.Flagged().Probability) {
			best, ok = f, true
		}
	}
	return best, ok
}

// WorthACard reports whether r is worth telling the clinician, on a card
// and by write-back: it has a notable finding, needs review, or is a
// vertebral study where no body could be localised (said, not guessed);
// with normal set (normal results get a card too), any result is. An
// image the gate refused is not, but for that vertebral case (its card
// predates the gate); the custom hook says "not read" on an info card of
// its own (cds).
func (r Result) WorthACard(normal bool) bool {
	_, notable := r.Top()
	unlocalised := r.Model.Task == inference.TaskVertebral && len(r.Localised) == 0
	if r.NotRead != nil {
		return unlocalised && r.NotRead.Reason == ReasonNoVertebra
	}
	return notable || r.Review || normal || unlocalised
}

// Percent writes a probability for people: whole percent, but never "100%"
// or "0%", which a model cannot honestly assert (">99%", "<1%").
func Percent(p float64) string {
	switch {
	case p >= 0.995:
		return ">99%"
	case p < 0.005:
		return "<1%"
	}
	return fmt.Sprintf("%.0f%%", 100*p)
}
