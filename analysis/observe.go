package analysis

import (
	"errors"
	"time"
)

// Observer is told what analyses cost, stage by stage, where the work
// happens; the service's metrics are one (app), and analysis itself knows
// no metrics library. Its methods must be cheap and safe for concurrent
// use.
type Observer interface {
	// Retrieved is one try at fetching and decoding an image for an
	// analysis (imaging.Retriever.Retrieve); ok is false when it failed.
	Retrieved(d time.Duration, ok bool)
	// Inferred is one model's run on the crops of one image, waiting for
	// its batch included; model is the manifest's id. A vertebral model's
	// run is its pipeline: localiser and network.
	Inferred(model string, d time.Duration)
	// Analysed is one analysis of a study for task, from the first look at
	// its images to the result; outcome is OutcomeComputed, OutcomeNotRead
	// or OutcomeFailed.
	Analysed(task, outcome string, d time.Duration)
	// Refused is one image the gate refused for task; reason is one of
	// Reasons.
	Refused(task, reason string)
}

// The outcomes of an analysis, as an Observer is told them.
const (
	OutcomeComputed = "computed" // a Result
	OutcomeNotRead  = "not_read" // nothing in the study a loaded model reads (ErrNoRadiograph)
	OutcomeFailed   = "failed"   // retrieval, decoding or a model failed, or the analysis was cancelled
)

// outcomeOf names the outcome of an analysis that returned err.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeComputed
	case errors.Is(err, ErrNoRadiograph), errors.Is(err, ErrOtherPatient):
		return OutcomeNotRead
	default:
		return OutcomeFailed
	}
}
