package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// httpStatus is the one mapping from error codes to HTTP status codes.
var httpStatus = map[string]int{
	orthotriage.EInvalid:      http.StatusBadRequest,
	orthotriage.EUnauthorized: http.StatusUnauthorized,
	orthotriage.EForbidden:    http.StatusForbidden,
	orthotriage.ENotFound:     http.StatusNotFound,
	orthotriage.EPrecondition: http.StatusPreconditionFailed,
	orthotriage.EUnsupported:  http.StatusUnsupportedMediaType,
	orthotriage.ETooLarge:     http.StatusRequestEntityTooLarge,
	orthotriage.EUnavailable:  http.StatusServiceUnavailable,
	orthotriage.EInternal:     http.StatusInternalServerError,
}

// issueType maps error codes to FHIR issue types.
var issueType = map[string]models.IssueType{
	orthotriage.EInvalid:      models.IssueTypeInvalid,
	orthotriage.EUnauthorized: models.IssueTypeLogin,
	orthotriage.EForbidden:    models.IssueTypeForbidden,
	orthotriage.ENotFound:     models.IssueTypeNotFound,
	orthotriage.EPrecondition: models.IssueTypeIncomplete,
	orthotriage.EUnsupported:  models.IssueTypeNotSupported,
	orthotriage.ETooLarge:     models.IssueTypeTooCostly,
	orthotriage.EUnavailable:  models.IssueTypeTransient,
	orthotriage.EInternal:     models.IssueTypeException,
}

// writeError answers with err as a FHIR OperationOutcome: one issue per bad
// field, or one for the message. Internal errors are logged with their detail
// and shown to the caller as a generic message.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	code := orthotriage.ErrorCode(err)
	status := httpStatus[code]
	switch {
	case status >= 500:
		log.ErrorContext(c.Request.Context(), "request failed", "route", route(c), "code", code, "err", err, "request_id", c.GetString(requestIDKey))
	case code == orthotriage.EPrecondition:
		// The EHR's data could not be had: worth a look, not a bug of ours.
		log.WarnContext(c.Request.Context(), "request precondition failed", "route", route(c), "err", err, "request_id", c.GetString(requestIDKey))
	}
	if code == orthotriage.EUnauthorized {
		// A bad credential gets a bare 401: nothing to learn from.
		unauthorized(c)
		return
	}
	writeOutcome(c, status, outcome(code, orthotriage.ErrorMessage(err), orthotriage.ErrorFields(err)))
}

func outcome(code, message string, fields []orthotriage.FieldError) models.OperationOutcome {
	var oo models.OperationOutcome
	t := issueType[code]
	if len(fields) == 0 {
		msg := message
		oo.Issue = append(oo.Issue, models.OperationOutcomeIssue{Severity: models.IssueSeverityError, Code: t, Diagnostics: &msg})
	}
	for _, f := range fields {
		msg := f.Field + ": " + f.Message
		oo.Issue = append(oo.Issue, models.OperationOutcomeIssue{
			Severity:    models.IssueSeverityError,
			Code:        t,
			Diagnostics: &msg,
			Expression:  []string{f.Field},
		})
	}
	return oo
}

func writeOutcome(c *gin.Context, status int, oo models.OperationOutcome) {
	b, err := json.Marshal(oo)
	if err != nil {
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	c.Abort()
	c.Data(status, "application/fhir+json", b)
}

// asError maps errors of the HTTP layer (body too large) to domain errors.
func asError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return orthotriage.Errorf(orthotriage.ETooLarge, "request body larger than %d bytes", tooLarge.Limit)
	}
	return err
}
