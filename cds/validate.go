package cds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/internal/textx"
)

// HookContext is the validated context of a hook call.
type HookContext struct {
	PatientID   string
	UserID      string
	EncounterID string
	// StudyIDs are the logical ids of the ImagingStudy resources the
	// imaging-study-available hook names; empty for patient-view.
	StudyIDs []string
}

// maxContextStudies bounds the studies one imaging-study-available call may name.
const maxContextStudies = 50

// userReference reports whether s is a reference to a user of the EHR.
func userReference(s string) bool {
	_, _, ok := textx.CutReference(s, "Practitioner", "PractitionerRole", "Patient", "RelatedPerson")
	return ok
}

// ParseRequest decodes a hook request body. It reports a body that is not a
// JSON object, or whose fields have the wrong JSON type, as invalid.
func ParseRequest(body []byte) (Request, error) {
	var req Request
	if err := decodeObject(body, &req); err != nil {
		return req, err
	}
	return req, nil
}

// decodeObject decodes a JSON object into v, naming the field of a type
// mismatch. Unknown fields are allowed: CDS Hooks permits extensions.
// Member names match exactly (CDS Hooks spells them so), and a member named
// twice is refused rather than one of its values silently chosen. It runs
// on every hook call, so it decodes in one pass (go-json-experiment/json,
// the design of Go's encoding/json/v2): about 5x faster than a
// json.Decoder on a call carrying its prefetch.
func decodeObject(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return orthotriage.Invalid("request body is empty; want a JSON object")
	}
	if trimmed[0] != '{' {
		return orthotriage.Invalid("request body is not a JSON object")
	}
	err := jsonv2.Unmarshal(trimmed, v)
	if err == nil {
		return nil
	}
	// Unmarshal refuses bytes after the object too; name that case.
	dec := jsontext.NewDecoder(bytes.NewReader(trimmed))
	if _, first := dec.ReadValue(); first == nil && len(bytes.TrimSpace(trimmed[dec.InputOffset():])) > 0 {
		return orthotriage.Invalid("request body holds more than one JSON value")
	}
	return decodeError(err)
}

// decodeError turns a decoding error into an invalid-request error naming
// where in the body it is.
func decodeError(err error) error {
	var syn *jsontext.SyntacticError
	var sem *jsonv2.SemanticError
	switch {
	case errors.As(err, &syn):
		return orthotriage.Invalid(fmt.Sprintf("request body is not valid JSON: %v%s at byte %d", syn.Err, within(syn.JSONPointer), syn.ByteOffset))
	case errors.As(err, &sem) && sem.GoType != nil && sem.JSONKind != 0 && sem.Err == nil:
		t := sem.GoType
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		return orthotriage.Invalid("request body has a field of the wrong type",
			orthotriage.FieldError{Field: dotted(sem.JSONPointer), Message: "must be a JSON " + jsonKind(t.Kind())})
	case errors.As(err, &sem):
		reason := "is not valid"
		if sem.Err != nil {
			reason += ": " + sem.Err.Error()
		}
		return orthotriage.Invalid("request body has an invalid field", orthotriage.FieldError{Field: dotted(sem.JSONPointer), Message: reason})
	default:
		return orthotriage.Invalid(fmt.Sprintf("request body is not valid JSON: %v", err))
	}
}

// dotted spells a JSON pointer (/fhirAuthorization/expires_in) as the
// field names of our errors do (fhirAuthorization.expires_in), at most
// maxErrorPath bytes: its names come from the request, and errors are
// answered and logged.
func dotted(p jsontext.Pointer) string {
	return textx.Clip(strings.Join(slices.Collect(p.Tokens()), "."), maxErrorPath)
}

const maxErrorPath = 120

// within names where in the body a syntax error is, if inside a member.
func within(p jsontext.Pointer) string {
	if p == "" {
		return ""
	}
	return " in " + dotted(p)
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct, reflect.Interface:
		return "object"
	case reflect.Bool:
		return "boolean"
	default:
		return "number"
	}
}

// Validate checks a request against the service it was sent to and returns
// its context. Each bad field is reported.
func Validate(svc Service, req Request) (HookContext, error) {
	var bad []orthotriage.FieldError
	add := func(field, format string, args ...any) {
		bad = append(bad, orthotriage.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case req.Hook == "":
		add("hook", "required")
	case !svc.Offers(req.Hook):
		if id, ok := svc.IDForHook(req.Hook); ok {
			add("hook", "service %s is declared for hook %s only; for hook %q call service %s", svc.ID, strings.Join(svc.Hooks, ", "), req.Hook, id)
		} else {
			add("hook", "service %s does not answer hook %q; it answers %s", svc.ID, req.Hook, strings.Join(svc.Hooks, ", "))
		}
	}
	if req.HookInstance == "" {
		add("hookInstance", "required")
	} else if len(req.HookInstance) > 128 {
		add("hookInstance", "longer than 128 characters")
	}
	if req.FHIRServer != "" {
		if u, err := url.Parse(req.FHIRServer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("fhirServer", "must be an absolute http(s) URL")
		}
	}
	if a := req.FHIRAuthorization; a != nil {
		if req.FHIRServer == "" {
			add("fhirServer", "required when fhirAuthorization is given")
		}
		if a.AccessToken == "" {
			add("fhirAuthorization.access_token", "required")
		}
		if !strings.EqualFold(a.TokenType, "Bearer") {
			add("fhirAuthorization.token_type", "must be Bearer")
		}
		if a.ExpiresIn == nil {
			add("fhirAuthorization.expires_in", "required")
		} else if *a.ExpiresIn <= 0 {
			add("fhirAuthorization.expires_in", "must be positive")
		}
		if a.Scope == "" {
			add("fhirAuthorization.scope", "required")
		}
		if a.Subject == "" {
			add("fhirAuthorization.subject", "required")
		}
	}
	var hc HookContext
	if len(bytes.TrimSpace(req.Context)) == 0 || string(bytes.TrimSpace(req.Context)) == "null" {
		add("context", "required")
	} else {
		var fields map[string]json.RawMessage
		if err := jsonv2.Unmarshal(req.Context, &fields); err != nil {
			add("context", "must be a JSON object")
		} else if svc.Offers(req.Hook) {
			hc, bad = validateContext(req.Hook, fields, bad)
		}
	}
	if len(bad) > 0 {
		return hc, orthotriage.Invalid("invalid CDS Hooks request", bad...)
	}
	return hc, nil
}

// validateContext checks the context fields each hook defines.
func validateContext(hook string, fields map[string]json.RawMessage, bad []orthotriage.FieldError) (HookContext, []orthotriage.FieldError) {
	var hc HookContext
	str := func(name string, required bool, valid func(string) bool, want string) string {
		raw, ok := fields[name]
		if !ok {
			if required {
				bad = append(bad, orthotriage.FieldError{Field: "context." + name, Message: "required"})
			}
			return ""
		}
		var s string
		if err := jsonv2.Unmarshal(raw, &s); err != nil {
			bad = append(bad, orthotriage.FieldError{Field: "context." + name, Message: "must be a string"})
			return ""
		}
		if !valid(s) {
			bad = append(bad, orthotriage.FieldError{Field: "context." + name, Message: "must be " + want})
			return ""
		}
		return s
	}
	const id = "a FHIR id (1-64 of A-Z a-z 0-9 - .)"
	const user = "a reference like Practitioner/123"
	hc.PatientID = str("patientId", true, textx.IsFHIRID, id)
	switch hook {
	case HookPatientView:
		hc.UserID = str("userId", true, userReference, user)
		hc.EncounterID = str("encounterId", false, textx.IsFHIRID, id)
	case HookImagingStudyAvailable:
		hc.UserID = str("userId", false, userReference, user)
		raw, ok := fields["studies"]
		if !ok {
			bad = append(bad, orthotriage.FieldError{Field: "context.studies", Message: "required"})
			break
		}
		var refs []string
		if err := jsonv2.Unmarshal(raw, &refs); err != nil {
			bad = append(bad, orthotriage.FieldError{Field: "context.studies", Message: "must be an array of strings"})
			break
		}
		if len(refs) == 0 || len(refs) > maxContextStudies {
			bad = append(bad, orthotriage.FieldError{Field: "context.studies", Message: fmt.Sprintf("must name 1-%d studies", maxContextStudies)})
		}
		for i, r := range refs {
			_, study, ok := textx.CutReference(r, "ImagingStudy")
			if !ok {
				bad = append(bad, orthotriage.FieldError{Field: fmt.Sprintf("context.studies[%d]", i), Message: "must be a reference like ImagingStudy/123"})
				continue
			}
			hc.StudyIDs = append(hc.StudyIDs, study)
		}
	}
	return hc, bad
}
