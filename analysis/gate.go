package analysis

import (
	"fmt"
	"slices"
	"strings"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
)

// NotRead says why an image was refused by the gate: a machine reason
// (one of Reasons) and a sentence for people. A refused image gives no
// finding.
type NotRead struct {
	Reason string `json:"reason"`
	Text   string `json:"text"`
}

// The gate's reasons, the label values of the refusal metric.
const (
	ReasonModality    = "modality"      // DICOM Modality not one read (CT, MR, US ...)
	ReasonBodyPart    = "body-part"     // Body Part Examined of another region
	ReasonView        = "view"          // View Position not the model's
	ReasonBlank       = "blank"         // uniform: low standard deviation or range
	ReasonExposure    = "exposure"      // mostly black or mostly white
	ReasonNoise       = "noise"         // no spatial structure
	ReasonNotAPPelvis = "not-ap-pelvis" // the hip localiser finds no pelvis
	ReasonNoJoint     = "no-joint"      // the hip localiser finds no hip joint to crop
	ReasonNoVertebra  = "no-vertebra"   // too few vertebral levels localised
)

// Reasons are every reason the gate gives.
var Reasons = []string{ReasonModality, ReasonBodyPart, ReasonView, ReasonBlank, ReasonExposure, ReasonNoise,
	ReasonNotAPPelvis, ReasonNoJoint, ReasonNoVertebra}

// Gate decides whether an image is what a model is for, before any
// finding: the DICOM tags, then cheap image statistics, then (for a model
// with a localiser) the localiser's confidence. The service, `analyze` and
// `eval` all read images through Analyzer.ReadImage, which applies it.
type Gate struct {
	Task       string
	Thresholds inference.Gate
}

// GateFor is the gate of a model's manifest.
func GateFor(m *inference.Manifest) Gate {
	return Gate{Task: m.Task, Thresholds: m.GateThresholds()}
}

func refuse(reason, format string, args ...any) *NotRead {
	return &NotRead{Reason: reason, Text: fmt.Sprintf(format, args...)}
}

// Tags checks an image's modality, body part and view position; an absent
// tag passes.
func (g Gate) Tags(meta imaging.Metadata) *NotRead {
	norm := func(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }
	if mod := norm(meta.Modality); mod != "" && !slices.Contains(g.Thresholds.Modalities, mod) {
		return refuse(ReasonModality, "modality %s is not a projection radiograph (%s)", mod, strings.Join(g.Thresholds.Modalities, ", "))
	}
	if part := norm(meta.BodyPart); part != "" && !readsPart(g.Task, part) {
		return refuse(ReasonBodyPart, "body part %s is not one the %s model reads (%s)", part, g.Task, strings.Join(bodyParts[g.Task], ", "))
	}
	if view := norm(meta.ViewPosition); view != "" && !slices.Contains(g.Thresholds.Views, view) {
		return refuse(ReasonView, "view position %s is not one the %s model reads (%s)", view, g.Task, strings.Join(g.Thresholds.Views, ", "))
	}
	return nil
}

// readsPart reports whether a body part (upper case) names one of task's
// regions.
func readsPart(task, part string) bool {
	return slices.ContainsFunc(bodyParts[task], func(w string) bool { return strings.Contains(part, w) })
}

// Quality checks the image itself: blank, under- or over-exposed, noise.
func (g Gate) Quality(img *imaging.Image) *NotRead {
	q, err := inference.MeasureQuality(img.Pixels, img.Meta.Rows, img.Meta.Columns)
	if err != nil {
		return refuse(ReasonBlank, "the image has no readable pixels: %v", err)
	}
	return g.checkQuality(q)
}

func (g Gate) checkQuality(q inference.Quality) *NotRead {
	t := g.Thresholds
	switch {
	case q.Std < t.MinStd || q.Range < t.MinRange:
		return refuse(ReasonBlank, "the image is blank or uniform, or has no usable contrast (standard deviation %.3f, range %.3f of the display range)", q.Std, q.Range)
	case q.Dark > t.MaxClipped:
		return refuse(ReasonExposure, "the image is under-exposed or black (%.0f%% of pixels black)", 100*q.Dark)
	case q.Bright > t.MaxClipped:
		return refuse(ReasonExposure, "the image is over-exposed or white (%.0f%% of pixels white)", 100*q.Bright)
	case q.Correlation < t.MinCorrelation:
		return refuse(ReasonNoise, "the image is noise, not a radiograph (neighbouring pixels correlate %.2f)", q.Correlation)
	}
	return nil
}

// Hips checks a hip localiser's answer: the pelvis must be present, and
// the joints placeable (both found, or one and the pelvis).
func (g Gate) Hips(h inference.HipJoints) *NotRead {
	if !(h.Pelvis.Presence >= g.Thresholds.MinPelvis) || !h.Pelvis.Found() {
		return refuse(ReasonNotAPPelvis, "no AP pelvis found on the image (pelvis presence %.2f, below %.2f)", h.Pelvis.Presence, g.Thresholds.MinPelvis)
	}
	if _, _, _, err := h.Complete(); err != nil {
		return refuse(ReasonNoJoint, "no hip joint found (presence right %.2f, left %.2f)", h.Right.Presence, h.Left.Presence)
	}
	return nil
}

// Vertebrae checks the number of vertebral levels localised.
func (g Gate) Vertebrae(levels int) *NotRead {
	if levels < g.Thresholds.MinLevels {
		return refuse(ReasonNoVertebra, "%d vertebral levels localised, at least %d needed", levels, g.Thresholds.MinLevels)
	}
	return nil
}
