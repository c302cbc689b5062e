// Package orthotriage holds the domain types shared by every room: the
// typed error that crosses the domain edge and its small set of codes.
//
// The rooms are cds (CDS Hooks 2.0), analysis (the triage use case), imaging
// (pixels from DICOMweb and attachments), inference (ONNX Runtime), fhir (the
// FHIR R4 client and result builders), auth, store (Redis and in-memory
// adapters), api (the gin HTTP edge), app (wiring the service) and
// cmd/orthotriage (flags and subcommands).
package orthotriage

import (
	"errors"
	"fmt"
)

// Error codes. The api room maps each to one HTTP status; nothing else does.
const (
	EInvalid      = "invalid"      // the caller sent something wrong
	EUnauthorized = "unauthorized" // no or bad credentials
	EForbidden    = "forbidden"    // credentials fine, access refused
	ENotFound     = "not-found"    // the named thing does not exist
	EPrecondition = "precondition" // data the answer needs could not be had
	EUnsupported  = "unsupported"  // a media type or feature we do not serve
	ETooLarge     = "too-large"    // a body or input over its limit
	EUnavailable  = "unavailable"  // a dependency failed or timed out
	EInternal     = "internal"     // a bug or an unclassified failure
)

// FieldError names one bad field of the caller's input with a FHIRPath-like
// location such as "context.patientId".
type FieldError struct {
	Field   string
	Message string
}

// Error is the typed error at the domain edge. Message is safe to show to the
// caller; anything not wrapped in an Error is reported as internal and its
// detail is only logged.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	Err     error // the cause, logged but never shown to the caller
}

// Error implements the error interface.
func (e *Error) Error() string {
	msg := e.Message
	for _, f := range e.Fields {
		msg += fmt.Sprintf("; %s: %s", f.Field, f.Message)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EInvalid error listing each bad field.
func Invalid(message string, fields ...FieldError) *Error {
	return &Error{Code: EInvalid, Message: message, Fields: fields}
}

// ErrorCode returns the code of the first *Error in err's chain, or EInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the caller-safe message of err: the *Error's message, or
// a generic text for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorFields returns the field errors of the first *Error in err's chain.
func ErrorFields(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
