package cds

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage"
)

func TestParseFeedback(t *testing.T) {
	const card = `"card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d"`
	const ts = `"outcomeTimestamp":"2026-11-24T10:15:00Z"`
	tests := []struct {
		name string
		body string
		want []string // bad fields; nil: valid
	}{
		{name: "accepted", body: `{"feedback":[{` + card + `,"outcome":"accepted","acceptedSuggestions":[{"id":"s1"}],` + ts + `}]}`},
		{name: "overridden with reason", body: `{"feedback":[{` + card + `,"outcome":"overridden","overrideReason":{"reason":{"code":"already-known","system":"https://example.org"},"userComment":"seen"},` + ts + `}]}`},
		{name: "overridden bare", body: `{"feedback":[{` + card + `,"outcome":"overridden","outcomeTimestamp":"2026-11-24T10:15:00.123+01:00"}]}`},
		{name: "no items", body: `{"feedback":[]}`, want: []string{"feedback"}},
		{name: "no feedback key", body: `{}`, want: []string{"feedback"}},
		{name: "accepted without suggestions", body: `{"feedback":[{` + card + `,"outcome":"accepted",` + ts + `}]}`, want: []string{"feedback[0].acceptedSuggestions"}},
		{name: "unknown outcome", body: `{"feedback":[{` + card + `,"outcome":"ignored",` + ts + `}]}`, want: []string{"feedback[0].outcome"}},
		{name: "missing fields", body: `{"feedback":[{}]}`, want: []string{"feedback[0].card", "feedback[0].outcome", "feedback[0].outcomeTimestamp"}},
		{name: "card not a uuid", body: `{"feedback":[{"card":"abc","outcome":"overridden",` + ts + `}]}`, want: []string{"feedback[0].card"}},
		{name: "timestamp without zone", body: `{"feedback":[{` + card + `,"outcome":"overridden","outcomeTimestamp":"2026-11-24T10:15:00"}]}`, want: []string{"feedback[0].outcomeTimestamp"}},
		{name: "suggestions on overridden", body: `{"feedback":[{` + card + `,"outcome":"overridden","acceptedSuggestions":[{"id":"s"}],` + ts + `}]}`, want: []string{"feedback[0].acceptedSuggestions"}},
		{name: "override reason on accepted", body: `{"feedback":[{` + card + `,"outcome":"accepted","acceptedSuggestions":[{"id":"s"}],"overrideReason":{"userComment":"x"},` + ts + `}]}`, want: []string{"feedback[0].overrideReason"}},
		{name: "empty override reason", body: `{"feedback":[{` + card + `,"outcome":"overridden","overrideReason":{"reason":{}},` + ts + `}]}`, want: []string{"feedback[0].overrideReason.reason.code"}},
		{name: "suggestion without id", body: `{"feedback":[{` + card + `,"outcome":"accepted","acceptedSuggestions":[{}],` + ts + `}]}`, want: []string{"feedback[0].acceptedSuggestions[0].id"}},
		{name: "feedback not an array", body: `{"feedback":{}}`, want: []string{"feedback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := ParseFeedback("hip-radiograph-screening", []byte(tt.body), time.Unix(0, 0))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseFeedback: %v", err)
				}
				if len(events) != 1 || events[0].Key == "" || events[0].Service != "hip-radiograph-screening" {
					t.Errorf("events = %+v", events)
				}
				return
			}
			if orthotriage.ErrorCode(err) != orthotriage.EInvalid {
				t.Fatalf("error = %v, want invalid", err)
			}
			var got []string
			for _, f := range orthotriage.ErrorFields(err) {
				got = append(got, f.Field)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("bad fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFeedbackKeyIdentifiesDuplicates(t *testing.T) {
	a := []byte(`{"feedback":[{"card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","outcome":"overridden","outcomeTimestamp":"2026-11-24T10:15:00Z"}]}`)
	b := []byte(`{"feedback":[{"outcomeTimestamp":"2026-11-24T10:15:00Z","outcome":"overridden","card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d"}]}`)
	c := []byte(`{"feedback":[{"card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","outcome":"overridden","outcomeTimestamp":"2026-11-24T10:16:00Z"}]}`)
	ea, _ := ParseFeedback("s", a, time.Now())
	eb, _ := ParseFeedback("s", b, time.Now().Add(time.Hour))
	ec, _ := ParseFeedback("s", c, time.Now())
	eo, _ := ParseFeedback("other", a, time.Now())
	if ea[0].Key != eb[0].Key {
		t.Error("the same feedback, fields reordered and received later, got different keys")
	}
	if ea[0].Key == ec[0].Key || ea[0].Key == eo[0].Key {
		t.Error("different feedback got the same key")
	}
}

func FuzzParseFeedback(f *testing.F) {
	f.Add([]byte(`{"feedback":[{"card":"0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d","outcome":"accepted","acceptedSuggestions":[{"id":"s1"}],"outcomeTimestamp":"2026-11-24T10:15:00Z"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = ParseFeedback("s", body, time.Now())
	})
}
