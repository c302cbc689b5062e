// Package cds implements CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/): the
// wire types and their JSON rules, the discovery catalog, request validation,
// prefetch resolution, cards and feedback. It talks HTTP to nobody: the api
// room serves it and the fhir room fetches what prefetch lacks. It runs no
// analysis: a call's resolved studies go to the use case (analysis.Triage),
// whose outcomes it turns into cards.
package cds

import "encoding/json"

// Request is the body an EHR posts to /cds-services/{id}.
type Request struct {
	Hook              string                     `json:"hook"`
	HookInstance      string                     `json:"hookInstance"`
	FHIRServer        string                     `json:"fhirServer,omitempty"`
	FHIRAuthorization *FHIRAuthorization         `json:"fhirAuthorization,omitempty"`
	Context           json.RawMessage            `json:"context"`
	Prefetch          map[string]json.RawMessage `json:"prefetch,omitempty"`
	// Extension carries data beyond the spec (CDS Hooks' extension
	// member); see ExtensionBodies.
	Extension json.RawMessage `json:"extension,omitempty"`
}

// FHIRAuthorization is the OAuth 2.0 bearer token the EHR lends the service
// for calls to its FHIR server. The token must never be logged.
type FHIRAuthorization struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   *int64 `json:"expires_in"`
	Scope       string `json:"scope"`
	Subject     string `json:"subject"`
	Patient     string `json:"patient,omitempty"`
}

// Response is a service's answer. An empty Cards slice is encoded as
// {"cards":[]}, which means "no guidance".
type Response struct {
	Cards         []Card   `json:"cards"`
	SystemActions []Action `json:"systemActions,omitempty"`
}

// Indicator values of a card, in rising urgency.
const (
	IndicatorInfo     = "info"
	IndicatorWarning  = "warning"
	IndicatorCritical = "critical"
)

// Card is one piece of guidance shown to the clinician.
type Card struct {
	UUID              string       `json:"uuid,omitempty"`
	Summary           string       `json:"summary"`
	Detail            string       `json:"detail,omitempty"`
	Indicator         string       `json:"indicator"`
	Source            Source       `json:"source"`
	Suggestions       []Suggestion `json:"suggestions,omitempty"`
	SelectionBehavior string       `json:"selectionBehavior,omitempty"`
	OverrideReasons   []Coding     `json:"overrideReasons,omitempty"`
	Links             []Link       `json:"links,omitempty"`

	// encoded is the card as checked JSON, when the engine built it from
	// an encodedCard: Marshal then writes these bytes as they are.
	encoded *splicedJSON
}

// Source says who produced a card.
type Source struct {
	Label string  `json:"label"`
	URL   string  `json:"url,omitempty"`
	Icon  string  `json:"icon,omitempty"`
	Topic *Coding `json:"topic,omitempty"`
}

// Coding is a code from a code system.
type Coding struct {
	Code    string `json:"code"`
	System  string `json:"system,omitempty"`
	Display string `json:"display,omitempty"`
}

// Suggestion is a set of actions the clinician may accept.
type Suggestion struct {
	Label         string   `json:"label"`
	UUID          string   `json:"uuid,omitempty"`
	IsRecommended bool     `json:"isRecommended,omitempty"`
	Actions       []Action `json:"actions,omitempty"`
}

// Action is a create, update or delete of a FHIR resource.
type Action struct {
	Type        string          `json:"type"`
	Description string          `json:"description,omitempty"`
	Resource    json.RawMessage `json:"resource,omitempty"`
	ResourceID  string          `json:"resourceId,omitempty"`

	// encoded is the action as checked JSON (see Card.encoded).
	encoded []byte
}

// Link is a reference or a SMART app launch offered on a card.
type Link struct {
	Label      string `json:"label"`
	URL        string `json:"url"`
	Type       string `json:"type"` // absolute or smart
	AppContext string `json:"appContext,omitempty"`
}

// Discovery is the body of GET /cds-services.
type Discovery struct {
	Services []ServiceEntry `json:"services"`
}

// ServiceEntry is one discovery entry: one service on one hook.
type ServiceEntry struct {
	Hook              string            `json:"hook"`
	Title             string            `json:"title,omitempty"`
	Description       string            `json:"description"`
	ID                string            `json:"id"`
	Prefetch          map[string]string `json:"prefetch,omitempty"`
	UsageRequirements string            `json:"usageRequirements,omitempty"`
}
