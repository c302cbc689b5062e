package analysis

import (
	"context"
	"sync/atomic"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/internal/lru"
)

// Cached answers repeated analyses of a study from memory: the key is the
// FHIR server, the study and the ids and versions of the task's models, so a
// new model version never serves an old result. (Issue "Results cached by
// study in Redis" replaces this with a shared store.)
type Cached struct {
	analyzer *Analyzer
	results  *lru.Map[Result]
	computed atomic.Uint64
}

// NewCached keeps up to kept results of a.
func NewCached(a *Analyzer, kept int) *Cached {
	return &Cached{analyzer: a, results: lru.New[Result](kept)}
}

// Analyze returns the kept result for in's study, or analyses it.
func (c *Cached) Analyze(ctx context.Context, in Input) (Result, error) {
	key := in.FHIRServer + "\x00" + studyKey(in) + "\x00" + in.Task + "\x00" + c.analyzer.modelKey(in.Task)
	if r, ok := c.results.Get(key); ok && r.Schema == SchemaVersion {
		return r, nil
	}
	r, err := c.analyzer.Analyze(ctx, in)
	if err != nil {
		return r, err
	}
	c.computed.Add(1)
	c.results.Put(key, r)
	return r, nil
}

// Reads reports whether a model for task is loaded.
func (c *Cached) Reads(task string) bool { return c.analyzer.Reads(task) }

// Computed is how many analyses ran (cache misses that succeeded).
func (c *Cached) Computed() uint64 { return c.computed.Load() }

func studyKey(in Input) string {
	if uid := imaging.StudyInstanceUID(in.Study); uid != "" {
		return uid
	}
	return "ImagingStudy/" + deref(in.Study.Id)
}
