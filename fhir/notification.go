package fhir

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/internal/textx"
)

// MaxNotifiedStudies bounds the studies one notification may queue.
const MaxNotifiedStudies = 100

// NotifiedStudies reads a FHIR Subscription rest-hook notification and
// returns the ImagingStudy references it announces ("ImagingStudy/{id}").
// It accepts what servers send:
//   - R4 with payload application/fhir+json: the ImagingStudy itself;
//   - R4 with no payload, and handshakes and heartbeats: nothing to queue;
//   - the R4B/R5 Subscriptions Backport: a Bundle (history or
//     subscription-notification) whose entries hold the resources
//     (full-resource) or only their fullUrl (id-only); the SubscriptionStatus
//     entry is skipped.
func NotifiedStudies(body []byte) ([]string, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "notification is not a FHIR JSON resource: %v", err)
	}
	var refs []string
	add := func(id string) {
		if id != "" && textx.IsFHIRID(id) && len(refs) < MaxNotifiedStudies {
			refs = append(refs, "ImagingStudy/"+id)
		}
	}
	switch head.ResourceType {
	case "ImagingStudy":
		if head.ID == "" {
			return nil, orthotriage.Errorf(orthotriage.EInvalid, "notified ImagingStudy has no id")
		}
		add(head.ID)
	case "Bundle":
		for _, e := range head.Entry {
			var r struct{ ResourceType, ID string }
			if len(e.Resource) > 0 {
				_ = json.Unmarshal(e.Resource, &r)
			}
			switch {
			case r.ResourceType == "ImagingStudy":
				add(r.ID)
			case r.ResourceType == "" && e.FullURL != "":
				add(idFromURL(e.FullURL, "ImagingStudy"))
			}
		}
	case "Parameters", "SubscriptionStatus":
		// A handshake or heartbeat: nothing to queue.
	default:
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "notification of a %s: only ImagingStudy (or a notification Bundle) is analysed", head.ResourceType)
	}
	return refs, nil
}

// idFromURL returns the id in ".../{typ}/{id}[/_history/{v}]", or "".
func idFromURL(u, typ string) string {
	parts := strings.Split(strings.TrimRight(u, "/"), "/")
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] == typ {
			return parts[i+1]
		}
	}
	return ""
}
