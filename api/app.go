package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"image/png"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/internal/textx"
)

// App is the built-in SMART app: its pages and the API they call.
type App struct {
	// Static is the built app (web.FS); nil or without viewer.js: the
	// pages say the app was not built.
	Static fs.FS
	// Config is /app/config.json: the client id, scopes and refresh
	// period the pages read.
	Config []byte
	// CSP is the Content-Security-Policy of every /app/ response.
	CSP string
	// Tenant is the registered issuer whose FHIR server fhirServer is, and
	// its DICOMweb bases; false when the server is not registered (with
	// authentication off every server is, with tenant "").
	Tenant func(fhirServer string) (tenant string, dicomwebBases []string, ok bool)
	// Pixels retrieves analysed radiographs.
	Pixels cds.PixelSource
	// Worklist lists the studies analysed per FHIR server; nil: none.
	Worklist analysis.Worklist
	// Tasks adds the FHIR server's Tasks (write-back on) to the worklist.
	Tasks bool
	// ImageMaxSide bounds the image sent; WorklistMax the rows listed.
	ImageMaxSide, WorklistMax int
	// Images bounds the radiographs retrieved and rendered at once
	// (each a DICOMweb fetch and a decode); 0: DefaultAppImages.
	Images int

	once   sync.Once
	images chan struct{}
}

// DefaultAppImages is how many radiographs the app's image endpoint
// retrieves and renders at once by default.
const DefaultAppImages = 4

// appRequest is the body of every /api/v1/app/ call: no patient data
// travels in the URL.
type appRequest struct {
	FHIRServer     string              `json:"fhirServer"`
	ImagingStudy   string              `json:"imagingStudy"`
	Image          int                 `json:"image"`
	Card           string              `json:"card"`
	Service        string              `json:"service"`
	Outcome        string              `json:"outcome"`
	OverrideReason *cds.OverrideReason `json:"overrideReason"`
}

func (a *App) routes(r *gin.Engine, h *handlers) {
	static := func(c *gin.Context) { a.static(c, h) }
	// Relative, so that a reverse proxy's path prefix is kept.
	r.GET("/app", func(c *gin.Context) { c.Redirect(http.StatusFound, "app/launch.html") })
	r.GET("/app/*file", static)
	r.HEAD("/app/*file", static)
	api := r.Group("/api/v1/app", limitBy(newLimiters(h.perIP), clientIP, "client address"))
	api.POST("/study", func(c *gin.Context) { a.study(c, h) })
	api.POST("/image", func(c *gin.Context) { a.image(c, h) })
	api.POST("/feedback", func(c *gin.Context) { a.feedback(c, h) })
	api.POST("/worklist", func(c *gin.Context) { a.worklist(c, h) })
}

// static serves the app's files with the strict CSP.
func (a *App) static(c *gin.Context, h *handlers) {
	c.Header("Content-Security-Policy", a.CSP)
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Referrer-Policy", "no-referrer")
	name := strings.TrimPrefix(path.Clean(c.Param("file")), "/")
	if name == "" || name == "." {
		name = "launch.html"
	}
	if name == "config.json" {
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "application/json", a.Config)
		return
	}
	if a.Static == nil {
		writeError(c, h.log, orthotriage.Errorf(orthotriage.ENotFound, "the SMART app was not built into this binary (make build builds it)"))
		return
	}
	typ := contentType(name)
	b, err := fs.ReadFile(a.Static, name)
	if err != nil || !fs.ValidPath(name) || typ == "" {
		writeError(c, h.log, orthotriage.Errorf(orthotriage.ENotFound, "no app file %s", textx.Clip(name, maxEchoedPath)))
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, typ, b)
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".png":
		return "image/png"
	case ".svg":
		return "image/svg+xml"
	}
	return "" // not an app file (dist/README.md, say): not served
}

// request reads an app call: its body, the SMART token, the tenant of its
// FHIR server.
func (a *App) request(c *gin.Context) (appRequest, cds.AppRequest, error) {
	c.Header("Cache-Control", "no-store")
	token, ok := bearerToken(c.GetHeader("Authorization"))
	if !ok || token == "" {
		return appRequest{}, cds.AppRequest{}, orthotriage.Errorf(orthotriage.EUnauthorized, "no bearer token: the app must send the SMART access token")
	}
	body, err := readJSON(c)
	if err != nil {
		return appRequest{}, cds.AppRequest{}, err
	}
	var ar appRequest
	if err := json.Unmarshal(body, &ar); err != nil {
		return appRequest{}, cds.AppRequest{}, orthotriage.Errorf(orthotriage.EInvalid, "the body is not the JSON object expected")
	}
	server := strings.TrimRight(ar.FHIRServer, "/")
	if server == "" || len(server) > 2048 {
		return appRequest{}, cds.AppRequest{}, orthotriage.Invalid("bad request", orthotriage.FieldError{Field: "fhirServer", Message: "required: the FHIR base URL (iss)"})
	}
	tenant, bases, ok := a.Tenant(server)
	if !ok {
		return appRequest{}, cds.AppRequest{}, orthotriage.Invalid("bad request", orthotriage.FieldError{Field: "fhirServer", Message: "not a FHIR server registered with this service"})
	}
	return ar, cds.AppRequest{FHIRServer: server, Token: token, ImagingStudy: ar.ImagingStudy, Tenant: tenant, DICOMwebBases: bases,
		Service: ar.Service}, nil
}

func (a *App) study(c *gin.Context, h *handlers) {
	_, req, err := a.request(c)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	st, err := h.cds.AppStudy(c.Request.Context(), req)
	if err != nil {
		writeError(c, h.log, h.deadline(c, err))
		return
	}
	if st.Saved && a.Worklist != nil {
		if err := a.Worklist.Mark(c.Request.Context(), req.Tenant, req.FHIRServer, req.ImagingStudy, analysis.WorkSaved); err != nil {
			h.log.WarnContext(c.Request.Context(), "worklist saved mark failed", "err", err)
		}
	}
	c.JSON(http.StatusOK, st)
}

func (a *App) image(c *gin.Context, h *handlers) {
	ar, req, err := a.request(c)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	a.once.Do(func() { a.images = make(chan struct{}, cmp.Or(a.Images, DefaultAppImages)) })
	select {
	case a.images <- struct{}{}:
		defer func() { <-a.images }()
	case <-c.Request.Context().Done():
		writeError(c, h.log, orthotriage.Errorf(orthotriage.EUnavailable, "too many images being prepared: try again"))
		return
	}
	img, err := h.cds.AppPixels(c.Request.Context(), req, a.Pixels, ar.Image)
	if err != nil {
		writeError(c, h.log, h.deadline(c, err))
		return
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img.Gray(a.ImageMaxSide)); err != nil {
		writeError(c, h.log, err)
		return
	}
	c.Data(http.StatusOK, "image/png", buf.Bytes())
}

func (a *App) feedback(c *gin.Context, h *handlers) {
	ar, req, err := a.request(c)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	if _, ok := h.cds.Catalog().Lookup(ar.Service); !ok {
		writeError(c, h.log, orthotriage.Invalid("bad request", orthotriage.FieldError{Field: "service", Message: "not a CDS service of this deployment"}))
		return
	}
	results, err := h.cds.AppFeedback(c.Request.Context(), req, ar.Service,
		cds.Feedback{Card: ar.Card, Outcome: ar.Outcome, OverrideReason: ar.OverrideReason})
	h.countFeedback(ar.Service, results)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	result := "recorded"
	if len(results) == 0 || !results[0].Recorded {
		result = "duplicate"
	}
	if a.Worklist != nil {
		if err := a.Worklist.Mark(c.Request.Context(), req.Tenant, req.FHIRServer, req.ImagingStudy, ar.Outcome); err != nil {
			h.log.WarnContext(c.Request.Context(), "worklist feedback mark failed", "err", err)
		}
	}
	c.JSON(http.StatusOK, gin.H{"result": result})
}

func (a *App) worklist(c *gin.Context, h *handlers) {
	_, req, err := a.request(c)
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	var items []analysis.WorkItem
	if a.Worklist != nil {
		if items, err = a.Worklist.List(c.Request.Context(), req.Tenant, req.FHIRServer, a.WorklistMax); err != nil {
			writeError(c, h.log, &orthotriage.Error{Code: orthotriage.EUnavailable, Message: "the worklist could not be read", Err: err})
			return
		}
	}
	rows, err := h.cds.AppWorklist(c.Request.Context(), req, items, a.Tasks)
	if err != nil {
		writeError(c, h.log, h.deadline(c, err))
		return
	}
	c.JSON(http.StatusOK, rows)
}
