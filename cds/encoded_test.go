package cds_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
)

// plain re-encodes a response through the general path (a copy of its
// fields, without the engine's encoded bytes), checking it as Marshal does.
func plain(t *testing.T, resp cds.Response) []byte {
	t.Helper()
	b, err := json.Marshal(resp) // the encoded bytes are unexported: not written
	if err != nil {
		t.Fatal(err)
	}
	var fields cds.Response
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	out, err := cds.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// keepCards keeps results' resources and encoded cards.
func keepCards(ec *cds.EngineConfig, _ *analysis.TriageConfig) {
	ec.Kept.Encoded, ec.Kept.Built = 10, 10
}

// TestEncodedCardsAreTheCardsOfTheCall: a card encoded once and reused
// writes the same bytes as the card built for the call, with the call's own
// uuids, in both card modes.
func TestEncodedCardsAreTheCardsOfTheCall(t *testing.T) {
	for _, systemActions := range []bool{false, true} {
		res := hips("is-a", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
		e, _ := engineFor(map[string]analysis.Result{"is-a": res}, cds.CardOptions{SystemActions: systemActions, Source: cds.Source{Label: "orthotriage"}}, keepCards)
		first := callFor(t, e, "p1", "is-a")
		body := func(hookInstance string) []byte {
			return []byte(`{"hook":"patient-view","hookInstance":"` + hookInstance + `","context":{"userId":"Practitioner/u","patientId":"p1"},` +
				`"prefetch":{"patient":{"resourceType":"Patient","id":"p1"},"studies":` + bundle("", study("is-a", "p1")) + `}}`)
		}
		again, err := e.Call(t.Context(), "hip-radiograph-screening", body("h1"))
		if err != nil {
			t.Fatal(err)
		}
		other, err := e.Call(t.Context(), "hip-radiograph-screening", body("h2"))
		if err != nil {
			t.Fatal(err)
		}
		for name, resp := range map[string]cds.Response{"first": first, "again": again, "other hookInstance": other} {
			got, err := cds.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			if want := plain(t, resp); !bytes.Equal(got, want) {
				t.Errorf("system actions %v, %s: encoded answer differs from the checked encoding:\n%s\n%s", systemActions, name, got, want)
			}
			// Appended to a reused buffer (the api keeps answer buffers
			// between calls), the answer is the same bytes after whatever
			// the buffer held, and the buffer's own bytes are not touched.
			used := append(make([]byte, 0, 64<<10), "previous answer"...)
			appended, err := cds.AppendMarshal(used, resp)
			if err != nil || string(appended[:len(used)]) != "previous answer" || !bytes.Equal(appended[len(used):], got) {
				t.Errorf("system actions %v, %s: AppendMarshal = %v, %.60q...", systemActions, name, err, appended)
			}
		}
		if again.Cards[0].UUID != first.Cards[0].UUID || other.Cards[0].UUID == first.Cards[0].UUID {
			t.Errorf("uuids: first %s, same hookInstance %s, other hookInstance %s", first.Cards[0].UUID, again.Cards[0].UUID, other.Cards[0].UUID)
		}
		b, _ := cds.Marshal(other)
		if strings.Contains(string(b), "00000000-0000-4000-8000") || !strings.Contains(string(b), other.Cards[0].UUID) {
			t.Errorf("the answer carries a placeholder uuid, or not its own:\n%.400s", b)
		}
		if !systemActions && (strings.Count(string(b), `"uuid"`) != 2 || other.Cards[0].Suggestions[0].UUID == first.Cards[0].Suggestions[0].UUID) {
			t.Errorf("the save suggestion's uuid is not the call's own")
		}
	}
}

// TestEncodedCardsAreNotSharedAcrossPatients: the same pixels bound to
// another patient get their own card, not the first patient's bytes.
func TestEncodedCardsAreNotSharedAcrossPatients(t *testing.T) {
	first := hips("is-a", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
	second := first
	second.Study = analysis.Study{ImagingStudyID: "is-b", UID: first.Study.UID, Patient: "Patient/p2"}
	e, _ := engineFor(map[string]analysis.Result{"is-a": first, "is-b": second}, cds.CardOptions{Source: cds.Source{Label: "orthotriage"}}, keepCards)
	callFor(t, e, "p1", "is-a")
	b, err := cds.Marshal(callFor(t, e, "p2", "is-b"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "dr-is-a") || !strings.Contains(string(b), "dr-is-b") {
		t.Errorf("the second patient's answer carries the first patient's card:\n%.600s", b)
	}
}

// TestAppLinkNamesTheCardOfTheCall: the SMART link's appContext names the
// study, report, model, service and the card of this call, whether the
// card was built for the call or reused from its encoding.
func TestAppLinkNamesTheCardOfTheCall(t *testing.T) {
	for _, keep := range []bool{false, true} {
		res := hips("is-a", normal(), found("fnf", "Fracture of neck of femur", 0.97, "stat"))
		opts := cds.CardOptions{ViewerURL: "https://ot.example.org/app/launch.html", Source: cds.Source{Label: "orthotriage"}}
		var e *cds.Engine
		if keep {
			e, _ = engineFor(map[string]analysis.Result{"is-a": res}, opts, keepCards)
		} else {
			e, _ = engineFor(map[string]analysis.Result{"is-a": res}, opts)
		}
		for _, hookInstance := range []string{"h1", "h2", "h1"} {
			body := []byte(`{"hook":"patient-view","hookInstance":"` + hookInstance + `","context":{"userId":"Practitioner/u","patientId":"p1"},` +
				`"prefetch":{"patient":{"resourceType":"Patient","id":"p1"},"studies":` + bundle("", study("is-a", "p1")) + `}}`)
			resp, err := e.Call(t.Context(), "hip-radiograph-screening", body)
			if err != nil {
				t.Fatal(err)
			}
			b, err := cds.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			var sent cds.Response
			if err := json.Unmarshal(b, &sent); err != nil {
				t.Fatal(err)
			}
			c := sent.Cards[0]
			var link *cds.Link
			for i := range c.Links {
				if c.Links[i].Type == "smart" {
					link = &c.Links[i]
				}
			}
			if link == nil {
				t.Fatalf("kept %v: no smart link on %s", keep, b)
			}
			var app cds.AppContext
			if err := json.Unmarshal([]byte(link.AppContext), &app); err != nil {
				t.Fatalf("appContext %q: %v", link.AppContext, err)
			}
			if app.Card != c.UUID || app.Service != "hip-radiograph-screening" || app.ImagingStudy != "ImagingStudy/is-a" ||
				!strings.HasPrefix(app.DiagnosticReport, "DiagnosticReport/") || app.Model != res.Model.ID+"@"+res.Model.Version {
				t.Errorf("kept %v, %s: appContext %+v for card %s", keep, hookInstance, app, c.UUID)
			}
			if resp.Cards[0].Links[len(resp.Cards[0].Links)-1].AppContext != link.AppContext {
				t.Errorf("kept %v: the card's fields and its bytes disagree on appContext", keep)
			}
		}
	}
}
