package cds

import (
	"encoding/json"
	"strings"
	"testing"
)

func validCard() Card {
	return Card{
		UUID:      "0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d",
		Summary:   "Possible right femoral neck fracture (97%): STAT read suggested",
		Indicator: IndicatorCritical,
		Source:    Source{Label: "orthotriage"},
	}
}

func TestMarshalEmptyCards(t *testing.T) {
	for _, r := range []Response{{}, {Cards: []Card{}}} {
		b, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != `{"cards":[]}` {
			t.Errorf("Marshal = %s, want {\"cards\":[]}", b)
		}
	}
}

func TestMarshalCardRules(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Card)
		wantErr string
	}{
		{name: "valid", mutate: func(*Card) {}},
		{name: "139 runes is fine", mutate: func(c *Card) { c.Summary = strings.Repeat("é", 139) }},
		{name: "140 runes", mutate: func(c *Card) { c.Summary = strings.Repeat("é", 140) }, wantErr: "summary has 140 characters"},
		{name: "no summary", mutate: func(c *Card) { c.Summary = " " }, wantErr: "summary is required"},
		{name: "bad indicator", mutate: func(c *Card) { c.Indicator = "hard-stop" }, wantErr: "indicator"},
		{name: "no source label", mutate: func(c *Card) { c.Source.Label = "" }, wantErr: "source.label"},
		{name: "suggestions need selectionBehavior", mutate: func(c *Card) {
			c.Suggestions = []Suggestion{{Label: "Order STAT read", Actions: []Action{{Type: "create", Resource: json.RawMessage(`{"resourceType":"Task"}`)}}}}
		}, wantErr: "selectionBehavior"},
		{name: "suggestions with selectionBehavior", mutate: func(c *Card) {
			c.Suggestions = []Suggestion{{Label: "Order STAT read"}}
			c.SelectionBehavior = "at-most-one"
		}},
		{name: "action without resource", mutate: func(c *Card) {
			c.Suggestions = []Suggestion{{Label: "x", Actions: []Action{{Type: "create"}}}}
			c.SelectionBehavior = "any"
		}, wantErr: "needs a resource"},
		{name: "appContext on an absolute link", mutate: func(c *Card) {
			c.Links = []Link{{Label: "Viewer", URL: "https://viewer.example.org", Type: "absolute", AppContext: "study=1"}}
		}, wantErr: "appContext is only allowed on smart links"},
		{name: "appContext on a smart link", mutate: func(c *Card) {
			c.Links = []Link{{Label: "Viewer", URL: "https://viewer.example.org/launch", Type: "smart", AppContext: "study=1"}}
		}},
		{name: "unknown link type", mutate: func(c *Card) {
			c.Links = []Link{{Label: "Viewer", URL: "https://viewer.example.org", Type: "web"}}
		}, wantErr: "links[0].type"},
		{name: "empty JSON object in a resource", mutate: func(c *Card) {
			c.Suggestions = []Suggestion{{Label: "x", Actions: []Action{{Type: "create", Resource: json.RawMessage(`{"resourceType":"Task","meta":{}}`)}}}}
			c.SelectionBehavior = "any"
		}, wantErr: "empty object"},
		{name: "null in a resource", mutate: func(c *Card) {
			c.Suggestions = []Suggestion{{Label: "x", Actions: []Action{{Type: "create", Resource: json.RawMessage(`{"resourceType":"Task","note":null}`)}}}}
			c.SelectionBehavior = "any"
		}, wantErr: "is null"},
		{name: "empty array in a resource", mutate: func(c *Card) {
			c.Suggestions = []Suggestion{{Label: "x", Actions: []Action{{Type: "create", Resource: json.RawMessage(`{"resourceType":"Task","input":[]}`)}}}}
			c.SelectionBehavior = "any"
		}, wantErr: "empty array"},
		{name: "empty string in a resource", mutate: func(c *Card) {
			c.Suggestions = []Suggestion{{Label: "x", Actions: []Action{{Type: "create", Resource: json.RawMessage(`{"resourceType":"Task","status":""}`)}}}}
			c.SelectionBehavior = "any"
		}, wantErr: "empty string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCard()
			tt.mutate(&c)
			b, err := Marshal(Response{Cards: []Card{c}})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				assertNoEmpty(t, b)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Marshal error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestEveryBuilderObeysTheRules drives every producer of CDS response bodies
// through Marshal. Card builders join this table as they are written.
func TestEveryBuilderObeysTheRules(t *testing.T) {
	bodies := map[string]any{
		"discovery":   DefaultCatalog().Discovery(),
		"empty cards": Response{},
	}
	for name, v := range bodies {
		t.Run(name, func(t *testing.T) {
			b, err := Marshal(v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			assertNoEmpty(t, b)
		})
	}
}

// assertNoEmpty checks the JSON rules independently of Marshal's own walk.
func assertNoEmpty(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	for _, bad := range []string{`null`, `""`, `{}`} {
		if strings.Contains(s, bad) {
			t.Errorf("body holds %s: %s", bad, s)
		}
	}
	if strings.Count(s, "[]") > strings.Count(s, `"cards":[]`) {
		t.Errorf("body holds an empty array other than cards: %s", s)
	}
}

func TestDiscovery(t *testing.T) {
	d := DefaultCatalog().Discovery()
	got := map[string]bool{}
	ids := map[string]int{}
	for _, s := range d.Services {
		got[s.ID+" on "+s.Hook] = true
		ids[s.ID]++
		if s.Prefetch[PrefetchPatient] != "Patient/{{context.patientId}}" || !strings.Contains(s.Prefetch[PrefetchStudies], "ImagingStudy?patient=Patient/{{context.patientId}}") {
			t.Errorf("%s on %s: prefetch %v", s.ID, s.Hook, s.Prefetch)
		}
		if s.Description == "" {
			t.Errorf("%s on %s: no description", s.ID, s.Hook)
		}
	}
	for _, want := range []string{
		"hip-radiograph-screening on patient-view",
		"hip-radiograph-screening-imagingstudy-available on org.orthotriage.imagingstudy-available",
		"vertebral-fracture-acuity on patient-view",
		"vertebral-fracture-acuity-imagingstudy-available on org.orthotriage.imagingstudy-available",
	} {
		if !got[want] {
			t.Errorf("discovery lacks %s", want)
		}
	}
	if len(d.Services) != 4 {
		t.Errorf("discovery has %d entries, want 4", len(d.Services))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("discovery lists id %s %d times; every (service, hook) needs its own id", id, n)
		}
	}
	for _, s := range d.Services {
		svc, ok := DefaultCatalog().Lookup(s.ID)
		if !ok || !svc.Offers(s.Hook) || len(svc.Hooks) != 1 {
			t.Errorf("Lookup(%s) = %+v, %v; want the service on %s only", s.ID, svc, ok, s.Hook)
		}
	}
}
