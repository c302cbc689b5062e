package cds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/orthotriage/orthotriage"
)

// Feedback outcomes.
const (
	OutcomeAccepted   = "accepted"
	OutcomeOverridden = "overridden"
)

// FeedbackRequest is the CDS Hooks 2.0 body of POST /cds-services/{id}/feedback.
type FeedbackRequest struct {
	Feedback []Feedback `json:"feedback"`
}

// Feedback reports what the clinician did with one card.
type Feedback struct {
	Card                string               `json:"card"`
	Outcome             string               `json:"outcome"`
	AcceptedSuggestions []AcceptedSuggestion `json:"acceptedSuggestions,omitempty"`
	OverrideReason      *OverrideReason      `json:"overrideReason,omitempty"`
	OutcomeTimestamp    string               `json:"outcomeTimestamp"`
}

// AcceptedSuggestion names an accepted suggestion by its uuid.
type AcceptedSuggestion struct {
	ID string `json:"id"`
}

// OverrideReason is why a card was overridden, with the user's comment.
type OverrideReason struct {
	Reason      *Coding `json:"reason,omitempty"`
	UserComment string  `json:"userComment,omitempty"`
}

// FeedbackEvent is one feedback item as kept: the service it was sent to,
// the item, a key that identifies duplicates, and when it arrived.
type FeedbackEvent struct {
	Service    string
	Feedback   Feedback
	Key        string
	ReceivedAt time.Time
}

// FeedbackLog keeps feedback events. Record reports false when an identical
// event was recorded before, which makes client retries idempotent.
type FeedbackLog interface {
	Record(ctx context.Context, e FeedbackEvent) (recorded bool, err error)
}

// maxFeedbackItems bounds the items of one feedback request.
const maxFeedbackItems = 100

// ParseFeedback decodes and validates a feedback body, reporting each bad
// field, and returns one event per item.
func ParseFeedback(service string, body []byte, now time.Time) ([]FeedbackEvent, error) {
	var req FeedbackRequest
	if err := decodeObject(body, &req); err != nil {
		return nil, err
	}
	var bad []orthotriage.FieldError
	add := func(field, format string, args ...any) {
		bad = append(bad, orthotriage.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(req.Feedback) == 0 {
		add("feedback", "required: a non-empty array")
	} else if len(req.Feedback) > maxFeedbackItems {
		add("feedback", "at most %d items per request", maxFeedbackItems)
	}
	for i, f := range req.Feedback {
		p := fmt.Sprintf("feedback[%d]", i)
		if f.Card == "" {
			add(p+".card", "required")
		} else if _, err := uuid.Parse(f.Card); err != nil {
			add(p+".card", "must be the uuid of a card")
		}
		switch f.Outcome {
		case OutcomeAccepted:
			if len(f.AcceptedSuggestions) == 0 {
				add(p+".acceptedSuggestions", "required when outcome is accepted")
			}
			if f.OverrideReason != nil {
				add(p+".overrideReason", "only allowed when outcome is overridden")
			}
		case OutcomeOverridden:
			if len(f.AcceptedSuggestions) > 0 {
				add(p+".acceptedSuggestions", "only allowed when outcome is accepted")
			}
		case "":
			add(p+".outcome", "required")
		default:
			add(p+".outcome", "must be accepted or overridden, got %q", f.Outcome)
		}
		for j, s := range f.AcceptedSuggestions {
			if s.ID == "" {
				add(fmt.Sprintf("%s.acceptedSuggestions[%d].id", p, j), "required")
			}
		}
		if r := f.OverrideReason; r != nil {
			if r.Reason == nil && r.UserComment == "" {
				add(p+".overrideReason", "needs a reason or a userComment")
			}
			if r.Reason != nil && r.Reason.Code == "" {
				add(p+".overrideReason.reason.code", "required")
			}
			if len(r.UserComment) > 4096 {
				add(p+".overrideReason.userComment", "longer than 4096 bytes")
			}
		}
		if f.OutcomeTimestamp == "" {
			add(p+".outcomeTimestamp", "required")
		} else if _, err := time.Parse(time.RFC3339Nano, f.OutcomeTimestamp); err != nil {
			add(p+".outcomeTimestamp", "must be an RFC 3339 date-time with a time zone")
		}
	}
	if len(bad) > 0 {
		return nil, orthotriage.Invalid("invalid CDS Hooks feedback", bad...)
	}
	events := make([]FeedbackEvent, len(req.Feedback))
	for i, f := range req.Feedback {
		events[i] = FeedbackEvent{Service: service, Feedback: f, Key: feedbackKey(service, f), ReceivedAt: now}
	}
	return events, nil
}

// feedbackKey identifies an event by its content, so that a client retrying
// the same feedback is recorded once.
func feedbackKey(service string, f Feedback) string {
	b, _ := json.Marshal(struct {
		S string
		F Feedback
	}{service, f}) // a struct of strings always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
