package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
)

// Precompute feeds the precompute queue from FHIR Subscription
// notifications and from an administrator's call.
type Precompute struct {
	// Enqueue queues one study ("ImagingStudy/{id}") of fhirServer; it
	// refuses a FHIR server no issuer registered.
	Enqueue func(ctx context.Context, fhirServer, study string) error
	// NotifiedStudies reads a notification's studies (fhir.NotifiedStudies).
	NotifiedStudies func(body []byte) ([]string, error)
	// FHIRServer sends the notifications, with NotificationToken as
	// bearer token; empty token: notifications are off.
	FHIRServer, NotificationToken string
	// AdminToken guards the analyze call; empty: off.
	AdminToken string
}

// MaxAnalyzeStudies bounds one analyze call.
const MaxAnalyzeStudies = 100

// bearerIs compares the request's bearer token with want in constant time
// (hashes, so the length leaks nothing either).
func bearerIs(c *gin.Context, want string) bool {
	got, _ := bearerToken(c.GetHeader("Authorization"))
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return want != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// admit answers for an endpoint guarded by its own bearer token: 404
// naming the settings when the token is not configured (the endpoint is
// off), a bare 401 for a wrong token. It reports whether to go on.
func (h *handlers) admit(c *gin.Context, token, off string) bool {
	if token == "" {
		writeError(c, h.log, orthotriage.Errorf(orthotriage.ENotFound, "%s", off))
		return false
	}
	if !bearerIs(c, token) {
		unauthorized(c)
		return false
	}
	return true
}

// subscription handles POST /fhir/subscription: a FHIR rest-hook
// notification; its studies are queued. 200 tells the server it arrived.
func (h *handlers) subscription(c *gin.Context) {
	p := h.precompute
	if p == nil {
		p = &Precompute{}
	}
	if !h.admit(c, p.NotificationToken, "subscription notifications are off (precompute.fhir_server, precompute.notification_token)") {
		return
	}
	var body []byte
	if c.Request.ContentLength != 0 {
		var err error
		if body, err = readJSON(c); err != nil {
			writeError(c, h.log, err)
			return
		}
	}
	studies, err := p.NotifiedStudies(body)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	for _, s := range studies {
		if err := p.Enqueue(c.Request.Context(), p.FHIRServer, s); err != nil {
			writeError(c, h.log, err)
			return
		}
	}
	h.log.InfoContext(c.Request.Context(), "subscription notification", "queued", len(studies))
	c.Status(http.StatusOK)
}

// analyzeRequest is the body of POST /api/v1/studies/analyze.
type analyzeRequest struct {
	FHIRServer string   `json:"fhirServer"`
	Studies    []string `json:"studies"`
}

// analyze handles POST /api/v1/studies/analyze: an administrator queues
// studies for analysis (202 with the count).
func (h *handlers) analyze(c *gin.Context) {
	p := h.precompute
	if p == nil {
		p = &Precompute{}
	}
	if !h.admit(c, p.AdminToken, "the analyze call is off (precompute.admin_token)") {
		return
	}
	body, err := readJSON(c)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	var req analyzeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && err != io.EOF {
		writeError(c, h.log, orthotriage.Errorf(orthotriage.EInvalid, "body: %v (want {\"fhirServer\": URL, \"studies\": [\"ImagingStudy/{id}\", ...]})", err))
		return
	}
	var fields []orthotriage.FieldError
	if req.FHIRServer == "" {
		fields = append(fields, orthotriage.FieldError{Field: "fhirServer", Message: "required"})
	}
	if len(req.Studies) == 0 || len(req.Studies) > MaxAnalyzeStudies {
		fields = append(fields, orthotriage.FieldError{Field: "studies", Message: "1 to 100 ImagingStudy references required"})
	}
	for i, s := range req.Studies {
		if id, ok := strings.CutPrefix(s, "ImagingStudy/"); !ok || id == "" || strings.ContainsAny(id, "/?#") {
			fields = append(fields, orthotriage.FieldError{Field: "studies[" + strconv.Itoa(i) + "]", Message: "want ImagingStudy/{id}"})
		}
	}
	if len(fields) > 0 {
		writeError(c, h.log, &orthotriage.Error{Code: orthotriage.EInvalid, Message: "analyze request is not valid", Fields: fields})
		return
	}
	for _, s := range req.Studies {
		if err := p.Enqueue(c.Request.Context(), req.FHIRServer, s); err != nil {
			writeError(c, h.log, err)
			return
		}
	}
	c.JSON(http.StatusAccepted, gin.H{"queued": len(req.Studies)})
}
