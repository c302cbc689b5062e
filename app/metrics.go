package app

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The service's metrics beyond the HTTP edge's (api): what the analyses
// cost stage by stage, the models' batches, the result cache, the
// precompute queue. Every label value comes from a fixed set: outcomes,
// tasks, and the ids of the models loaded. docs/operations.md lists them.

// stageMetrics are the duration histograms of the analysis stages; they
// are the analysis room's Observer and the imaging room's.
type stageMetrics struct {
	retrieval *prometheus.HistogramVec
	decode    prometheus.Histogram
	inference *prometheus.HistogramVec
	analysis  *prometheus.HistogramVec
	refused   *prometheus.CounterVec
	models    map[string]bool // the label values "model" may take
}

func newStageMetrics(reg prometheus.Registerer, models []Model) *stageMetrics {
	f := promauto.With(reg)
	m := &stageMetrics{
		retrieval: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orthotriage_image_retrieval_duration_seconds",
			Help:    "Fetching and decoding one image for an analysis (DICOMweb or attachment), by outcome (ok, failed).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		decode: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "orthotriage_image_decode_duration_seconds",
			Help:    "Decoding one image to calibrated grayscale (part of the retrieval).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		inference: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orthotriage_inference_duration_seconds",
			Help:    "One model run on one image's crops, waiting for its batch included (a vertebral model: localiser and network), by model id.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"model"}),
		analysis: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orthotriage_analysis_duration_seconds",
			Help:    "One analysis of a study computed here, by task and outcome (computed, not_read: nothing a model reads, failed).",
			Buckets: []float64{.1, .25, .5, 1, 1.5, 2.5, 5, 10, 30, 60, 120},
		}, []string{"task", "outcome"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orthotriage_images_not_read_total",
			Help: "Images the image gate refused (no finding made), by task and reason (analysis.Reasons).",
		}, []string{"task", "reason"}),
		models: map[string]bool{},
	}
	for _, sm := range models {
		m.models[sm.Manifest().ID] = true
	}
	return m
}

var (
	_ analysis.Observer = (*stageMetrics)(nil)
	_ imaging.Observer  = (*stageMetrics)(nil)
)

// Retrieved records one retrieval.
func (m *stageMetrics) Retrieved(d time.Duration, ok bool) {
	outcome := "ok"
	if !ok {
		outcome = "failed"
	}
	m.retrieval.WithLabelValues(outcome).Observe(d.Seconds())
}

// Decoded records one decoding.
func (m *stageMetrics) Decoded(d time.Duration) { m.decode.Observe(d.Seconds()) }

// Inferred records one model run.
func (m *stageMetrics) Inferred(model string, d time.Duration) {
	if !m.models[model] {
		model = "other"
	}
	m.inference.WithLabelValues(model).Observe(d.Seconds())
}

// Analysed records one analysis.
func (m *stageMetrics) Analysed(task, outcome string, d time.Duration) {
	if task != inference.TaskHip && task != inference.TaskVertebral {
		task = "other"
	}
	m.analysis.WithLabelValues(task, outcome).Observe(d.Seconds())
}

// Refused records one image the gate refused.
func (m *stageMetrics) Refused(task, reason string) {
	if task != inference.TaskHip && task != inference.TaskVertebral {
		task = "other"
	}
	if !slices.Contains(analysis.Reasons, reason) {
		reason = "other"
	}
	m.refused.WithLabelValues(task, reason).Inc()
}

// registerModelMetrics counts each model's batches and crops.
func registerModelMetrics(reg prometheus.Registerer, models []Model) {
	for _, sm := range models {
		labels := prometheus.Labels{"model": sm.Manifest().ID}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orthotriage_inference_batches_total",
				Help: "Batches run by the model's session.", ConstLabels: labels},
				func() float64 { n, _ := sm.Stats(); return float64(n) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orthotriage_inference_crops_total",
				Help: "Crops (one per hip, or per vertebral body) classified by the model.", ConstLabels: labels},
				func() float64 { _, n := sm.Stats(); return float64(n) }))
	}
}

// registerCacheMetrics exports the result cache's counters; the hit ratio
// is orthotriage_result_cache_hits_total / orthotriage_result_cache_lookups_total.
func registerCacheMetrics(reg prometheus.Registerer, cached *analysis.Cached) {
	for _, m := range []struct {
		name, help string
		value      func(analysis.CacheStats) uint64
	}{
		{"orthotriage_analyses_total", "Studies analysed here (results computed, not read from the store).",
			func(s analysis.CacheStats) uint64 { return s.Computed }},
		{"orthotriage_result_cache_lookups_total", "Analyses asked of the result cache: each is a hit or a miss.",
			func(s analysis.CacheStats) uint64 { return s.Lookups }},
		{"orthotriage_result_cache_hits_total", "Analyses answered from the result store.",
			func(s analysis.CacheStats) uint64 { return s.Hits }},
		{"orthotriage_result_cache_misses_total", "Analyses not in the store when asked (computed, or waited for).",
			func(s analysis.CacheStats) uint64 { return s.Misses }},
		{"orthotriage_result_store_errors_total", "Result store or lock operations that failed (Redis down or slow); they were retried, or the analysis went on without.",
			func(s analysis.CacheStats) uint64 { return s.StoreErrors }},
		{"orthotriage_result_store_outages_total", "Times the result store was found down (connection refused, or failing without a success for 3 s).",
			func(s analysis.CacheStats) uint64 { return s.Outages }},
		{"orthotriage_study_lock_bypassed_total", "Analyses run without the cross-replica study lock because the store was down (another replica may compute the same study).",
			func(s analysis.CacheStats) uint64 { return s.LockBypassed }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help},
			func() float64 { return float64(m.value(cached.Stats())) }))
	}
}

// registerQueueMetrics exports the precompute queue's job counters, its
// depth and its oldest job's age.
func registerQueueMetrics(reg prometheus.Registerer, stats *analysis.QueueStats, queue precomputeQueue, log *slog.Logger) {
	for _, m := range []struct {
		event string
		value func() uint64
	}{
		{"enqueued", stats.Enqueued.Load}, {"done", stats.Done.Load},
		{"retried", stats.Retried.Load}, {"dead_lettered", stats.DeadLettered.Load},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "orthotriage_precompute_jobs_total",
			Help:        "Precompute jobs by event: enqueued here, done, retried, dead-lettered (after precompute.max_attempts).",
			ConstLabels: prometheus.Labels{"event": m.event}}, func() float64 { return float64(m.value()) }))
	}
	reg.MustRegister(&queueCollector{queue: queue, log: log,
		depth: prometheus.NewDesc("orthotriage_precompute_queue_depth",
			"Precompute jobs waiting for a worker (not those being handled, nor retries waiting out their back-off); with Redis the same on every replica.", nil, nil),
		age: prometheus.NewDesc("orthotriage_precompute_queue_oldest_age_seconds",
			"How long the precompute job waiting longest for a worker has waited (a retry: since it was due); 0 when none waits.", nil, nil)})
}

// queueCollector reads the queue's depth and oldest age at each scrape,
// within a second; when the queue cannot say (Redis down), the scrape
// leaves both out rather than report a made-up value.
type queueCollector struct {
	queue      precomputeQueue
	log        *slog.Logger
	depth, age *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	depth, err := c.queue.Depth(ctx)
	if err == nil {
		var age time.Duration
		if age, err = c.queue.OldestAge(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(depth))
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age.Seconds())
			return
		}
	}
	c.log.Debug("precompute queue depth not read", "err", err)
}
