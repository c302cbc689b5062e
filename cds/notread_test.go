package cds_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
)

// notRead is a hip result whose image the gate refused.
func notRead(id string) analysis.Result {
	r := hips(id, normal(), normal())
	r.Findings = nil
	r.NotRead = &analysis.NotRead{Reason: analysis.ReasonBlank, Text: "the image is blank or uniform (standard deviation 0.000, range 0.000 of the display range)"}
	return r
}

// A refused image gives no card on patient-view, and on the custom hook an
// info card saying it was not read and why, with nothing to save.
func TestNotReadCards(t *testing.T) {
	e, fa := engineFor(map[string]analysis.Result{"s": notRead("s")}, cds.CardOptions{Source: cds.Source{Label: "x"}, NormalCard: true})
	if resp := callHips(t, e, "s"); len(resp.Cards) != 0 {
		t.Errorf("patient-view: %d cards for a refused image: %+v", len(resp.Cards), resp.Cards)
	}
	body := `{"hook":"org.orthotriage.imagingstudy-available","hookInstance":"h2","context":{"patientId":"p1","studies":["ImagingStudy/s"]},` +
		`"prefetch":{"patient":{"resourceType":"Patient","id":"p1","gender":"female"},"studies":` + bundle("", study("s", "p1")) + `}}`
	ctx, cancel := context.WithTimeout(cds.WithBaseURL(context.Background(), "https://triage.example.org"), 10*time.Second)
	defer cancel()
	resp, err := e.Call(ctx, "hip-radiograph-screening-imagingstudy-available", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Cards) != 1 {
		t.Fatalf("custom hook: %d cards, want the not-read card: %+v (%d inputs)", len(resp.Cards), resp.Cards, len(fa.inputs))
	}
	c := resp.Cards[0]
	if c.Indicator != "info" || !strings.Contains(c.Summary, "not read: the image is blank") || len(c.Suggestions) != 0 || !strings.Contains(c.Detail, "`blank`") {
		t.Errorf("not-read card %+v", c)
	}
	if r := notRead("s"); r.WorthACard(true) {
		t.Error("a refused image is worth a card (and a write-back)")
	}
}
