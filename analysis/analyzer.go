package analysis

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// ErrNoRadiograph means a study holds no image a loaded model reads (no CR
// or DX series of a wanted body part, or none could be retrieved): the study
// is left out of the answer, it is not an error of the call.
var ErrNoRadiograph = errors.New("analysis: no radiograph for any loaded model")

// Retriever fetches and decodes a study's images; *imaging.Retriever is one.
type Retriever interface {
	Retrieve(ctx context.Context, ep models.Endpoint, ref imaging.InstanceRef, acc imaging.Access, max int) ([]*imaging.Image, error)
}

// Classifier runs prepared crops through a model and names the model's
// manifest (task, preprocessing, labels, version); *onnx.Batcher is one.
type Classifier interface {
	Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error)
	Manifest() *inference.Manifest
}

// Input is one study to analyse, as the hook call resolved it.
type Input struct {
	// Task is the model task wanted: "hip" or "vertebral-fracture-acuity".
	Task string
	// Tenant is the authenticated issuer the study belongs to ("" with
	// authentication off): results are never shared across tenants.
	Tenant     string
	FHIRServer string
	// Patient is the patient the call is for ("Patient/{id}", the hook's
	// context patient); "" for a job with none (precompute), which takes the
	// study's subject. A study whose subject is another patient is refused.
	Patient string
	Study   models.ImagingStudy
	// Endpoints are the Endpoint resources the study's endpoint references
	// point at, keyed by the reference as written ("Endpoint/1", "#ep").
	Endpoints map[string]models.Endpoint
	// ResolveEndpoints, when set, gives the study's Endpoints beyond
	// Endpoints; it is called only when an image is about to be retrieved
	// (not for a cached result, nor for a study no model reads).
	ResolveEndpoints func(ctx context.Context) map[string]models.Endpoint
	// Access is the call's FHIR base and token and the caller's
	// registered DICOMweb bases.
	Access imaging.Access
	// Clinical, when set, gives the patient's clinical data at a time
	// (the study's); it is called only by a vertebral analysis about to
	// run. Without it the DLR score is used alone.
	Clinical func(ctx context.Context, at time.Time) Clinical
	// Bodies, when not empty, are vertebral bodies the caller gave
	// (level and box in image pixels): they replace the localiser's.
	Bodies []inference.Body
}

// Policy is what the service does with model outputs beyond the manifest's
// thresholds and triage rules.
type Policy struct {
	// ReviewBelow: a reported finding whose probability is below it is
	// marked low confidence and the result "needs review". 0 disables.
	ReviewBelow float64
	// HeatmapSide is the side of each finding's heat-map thumbnail in
	// pixels; 0 leaves thumbnails out.
	HeatmapSide int
}

// bodyParts says which studies each model task reads: DICOM Body Part
// Examined values and FHIR body-site displays, matched case-insensitively
// as substrings.
var bodyParts = map[string][]string{
	inference.TaskHip:       {"PELVIS", "HIP"},
	inference.TaskVertebral: {"SPINE", "LSPINE", "TSPINE", "VERTEBRA"},
}

// Analyzer turns a study into a Result: it selects the study's radiographs,
// retrieves and decodes them, runs the model whose task matches the body
// part and applies the policy.
type Analyzer struct {
	Retriever Retriever
	// Models are the loaded models; a study whose body part is unknown
	// goes to the first.
	Models []Classifier
	Policy Policy
	// PerStudy is how many images of a study are tried; 1 when 0.
	PerStudy int
	Now      func() time.Time
	Log      *slog.Logger
	// Observer, when set, is told each stage's duration.
	Observer Observer
}

// Analyze analyses one study. It fails with ErrNoRadiograph when nothing in
// the study suits a loaded model.
func (a *Analyzer) Analyze(ctx context.Context, in Input) (Result, error) {
	start := time.Now()
	r, err := a.analyze(ctx, in)
	if a.Observer != nil {
		a.Observer.Analysed(in.Task, outcomeOf(err), time.Since(start))
	}
	return r, err
}

func (a *Analyzer) analyze(ctx context.Context, in Input) (Result, error) {
	study, err := boundStudy(in)
	if err != nil {
		return Result{}, err
	}
	refs, skips := imaging.SelectInstances(in.Study, imaging.SelectOptions{MaxPerStudy: max(1, a.PerStudy)})
	for _, s := range skips {
		a.Log.DebugContext(ctx, "instance skipped", "study", study.UID, "series", s.Series, "reason", s.Reason)
	}
	t0 := time.Now()
	var lastErr error
	var refused *Result
	for _, ref := range refs {
		model, ok := a.modelFor(in.Task, ref.BodySite)
		if !ok {
			a.Log.DebugContext(ctx, "no model for series", "study", study.UID, "series", ref.SeriesInstanceUID, "bodySite", ref.BodySite)
			continue
		}
		if in.ResolveEndpoints != nil {
			all := maps.Clone(in.Endpoints)
			if all == nil {
				all = map[string]models.Endpoint{}
			}
			maps.Copy(all, in.ResolveEndpoints(ctx))
			in.Endpoints, in.ResolveEndpoints = all, nil
		}
		fetch := time.Now()
		img, err := a.retrieve(ctx, in, ref)
		if a.Observer != nil {
			a.Observer.Retrieved(time.Since(fetch), err == nil)
		}
		if err != nil {
			if ctx.Err() != nil {
				return Result{}, ctx.Err()
			}
			lastErr = err
			a.Log.WarnContext(ctx, "image not retrieved", "study", study.UID, "series", ref.SeriesInstanceUID, "err", err)
			continue
		}
		r, err := a.ReadImage(ctx, model, img, in)
		if err != nil {
			return Result{}, err
		}
		if r.NotRead != nil {
			a.Log.DebugContext(ctx, "image not read", "study", study.UID, "series", ref.SeriesInstanceUID, "reason", r.NotRead.Reason, "why", r.NotRead.Text)
			// An image of another body part is not this model's: as
			// before the gate, the study holds no radiograph for it.
			if r.NotRead.Reason != ReasonBodyPart && refused == nil {
				refused = &r
			}
			continue
		}
		r.Timings.Retrieve = ms(time.Since(t0)) - r.Timings.Preprocess - r.Timings.Inference - r.Timings.Postprocess
		r.Tenant, r.FHIRServer, r.Study = in.Tenant, in.FHIRServer, study
		return r, nil
	}
	if refused != nil {
		// Every image was refused by the gate: the result says why,
		// without a finding.
		r := *refused
		r.Timings.Retrieve = ms(time.Since(t0)) - r.Timings.Preprocess - r.Timings.Inference - r.Timings.Postprocess
		r.Tenant, r.FHIRServer, r.Study = in.Tenant, in.FHIRServer, study
		return r, nil
	}
	if lastErr != nil {
		// Images were there but could not be had (PACS down, refused,
		// timed out): an error worth retrying, not "no radiograph".
		return Result{}, fmt.Errorf("analysis: no image of the study could be retrieved: %w", lastErr)
	}
	return Result{}, ErrNoRadiograph
}

// modelFor picks the first model of task that reads a series' body site;
// a series whose site is unknown goes to the task's first model.
func (a *Analyzer) modelFor(task, site string) (Classifier, bool) {
	for _, m := range a.Models {
		if m.Manifest().Task == task && (site == "" || a.reads(m, site)) {
			return m, true
		}
	}
	return nil, false
}

// Reads reports whether a model for task is loaded.
func (a *Analyzer) Reads(task string) bool {
	return slices.ContainsFunc(a.Models, func(m Classifier) bool { return m.Manifest().Task == task })
}

// modelKey names the task's models and versions, for cache keys: a new
// model version never serves an old result.
func (a *Analyzer) modelKey(task string) string {
	var parts []string
	for _, m := range a.Models {
		if mf := m.Manifest(); mf.Task == task {
			parts = append(parts, mf.ID+"@"+mf.Version)
		}
	}
	return strings.Join(parts, ",")
}

func (a *Analyzer) reads(m Classifier, part string) bool {
	return readsPart(m.Manifest().Task, strings.ToUpper(part))
}

// retrieve fetches the first image of ref from the first of its endpoints
// that answers.
func (a *Analyzer) retrieve(ctx context.Context, in Input, ref imaging.InstanceRef) (*imaging.Image, error) {
	if len(ref.Endpoints) == 0 {
		return nil, errors.New("the series and its study name no Endpoint")
	}
	var errs []error
	for _, r := range ref.Endpoints {
		key := deref(r.Reference)
		ep, ok := in.Endpoints[key]
		if !ok {
			errs = append(errs, errors.New("endpoint reference not resolved"))
			continue
		}
		imgs, err := a.Retriever.Retrieve(ctx, ep, ref, in.Access, 1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return imgs[0], nil
	}
	return nil, errors.Join(errs...)
}

// inferred tells the observer how long a model ran.
func (a *Analyzer) inferred(model string, d time.Duration) {
	if a.Observer != nil {
		a.Observer.Inferred(model, d)
	}
}

// newResult is a Result of model m on img, before its findings.
func newResult(m *inference.Manifest, img *imaging.Image) Result {
	return Result{
		Schema: SchemaVersion,
		Model: Model{ID: m.ID, Version: m.Version, Task: m.Task, Architecture: m.Architecture,
			TrainingData: m.TrainingData, Warning: m.Warning, IntendedUse: m.IntendedUse},
		Images: []Image{{SeriesUID: img.Meta.SeriesInstanceUID, SOPUID: img.Meta.SOPInstanceUID, ViewPosition: img.Meta.ViewPosition,
			BodyPart: img.Meta.BodyPart, Rows: img.Meta.Rows, Columns: img.Meta.Columns, Lossy: img.Meta.Lossy}},
	}
}

// encodeThumbnail writes a heat-map thumbnail as PNG with fast
// compression: thumbnails are small and written on the hook's path, where
// BestSpeed costs a few hundred bytes more and much less time than the
// default level.
func encodeThumbnail(w io.Writer, img image.Image) error {
	enc := png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: thumbnailBuffers}
	return enc.Encode(w, img)
}

// thumbnailBuffers keeps the PNG encoder's state between thumbnails: its
// compressor is most of what encoding a small image allocates.
var thumbnailBuffers = &pngBuffers{}

// pngBuffers is a png.EncoderBufferPool over a sync.Pool.
type pngBuffers struct{ p sync.Pool }

func (b *pngBuffers) Get() *png.EncoderBuffer {
	buf, _ := b.p.Get().(*png.EncoderBuffer)
	return buf
}

func (b *pngBuffers) Put(buf *png.EncoderBuffer) { b.p.Put(buf) }

// round4 keeps four decimals: results are shown and stored at that
// precision, so that batch composition (which may move the last float bits)
// cannot change a stored resource.
func round4(p float64) float64 { return math.Round(p*1e4) / 1e4 }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
