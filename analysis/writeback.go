package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orthotriage/orthotriage/internal/lru"
)

// ResultWriter stores one result on a FHIR server: its resources, as its
// card carries them, in one transaction, retried as the FHIR client's
// policy says (it knows which answers are worth another try). It returns
// the id of the report it stored, for the log. The fhir room's client,
// wired in app, is one.
type ResultWriter interface {
	WriteResult(ctx context.Context, server FHIRServer, r Result) (string, error)
}

// WriteBackOptions shape the write-back.
type WriteBackOptions struct {
	// Kept is how many results are remembered as written (by BoundKey),
	// so that each is written once per process: a cached study opened in
	// many charts is written once. 0: every offer is written.
	Kept int
	// Timeout bounds one write-back, its retries included; 2 min when 0.
	Timeout time.Duration
}

// WriteBack stores results on the EHR's FHIR server in the background,
// once per result (BoundKey) and process; the deterministic resource ids
// make a repeat on another replica an update, not a copy.
type WriteBack struct {
	writer  ResultWriter
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex // written's check and mark, closed and running.Add are one step
	written *lru.Map[bool]
	closed  bool
	running sync.WaitGroup
	active  atomic.Int64
	// stopping ends the write-backs still under way when Shutdown's wait
	// is over.
	stopping context.Context
	stop     context.CancelFunc
}

// NewWriteBack returns the write-back through w.
func NewWriteBack(w ResultWriter, opt WriteBackOptions, log *slog.Logger) *WriteBack {
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Minute
	}
	wb := &WriteBack{writer: w, timeout: opt.Timeout, log: log}
	wb.stopping, wb.stop = context.WithCancel(context.Background())
	if opt.Kept > 0 {
		wb.written = lru.New[bool](opt.Kept)
	}
	return wb
}

// Offer writes r to server in the background, unless r was written (or is
// being written) before; it returns at once. A write-back that fails is
// forgotten, so that the next answer with r tries again. After Shutdown
// nothing more is written.
func (wb *WriteBack) Offer(server FHIRServer, r Result) {
	key := r.BoundKey()
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if wb.closed {
		wb.log.Warn("write-back not started: shutting down", "study", r.Study.Key(), "fhirServer", server.BaseURL)
		return
	}
	if !wb.mark(key) {
		return
	}
	wb.running.Add(1)
	wb.active.Add(1)
	go func() {
		defer wb.running.Done()
		defer wb.active.Add(-1)
		wb.write(server, r, key)
	}()
}

// Wait blocks until the write-backs under way are done (each is bounded by
// Timeout).
func (wb *WriteBack) Wait() { wb.running.Wait() }

// Shutdown stops taking offers and waits for the write-backs under way
// until ctx ends, then cancels those left and returns an error counting
// them (their results are written again by the next answer that has them,
// here or on another replica).
func (wb *WriteBack) Shutdown(ctx context.Context) error {
	wb.mu.Lock()
	wb.closed = true
	wb.mu.Unlock()
	if waitFor(ctx, &wb.running) {
		return nil
	}
	n := wb.active.Load()
	wb.stop()
	return fmt.Errorf("analysis: %d write-backs cancelled at shutdown: %w", n, ctx.Err())
}

// mark records key as written; false when it was already. wb.mu is held.
func (wb *WriteBack) mark(key string) bool {
	if wb.written == nil {
		return true
	}
	if _, done := wb.written.Get(key); done {
		return false
	}
	wb.written.Put(key, true)
	return true
}

func (wb *WriteBack) write(server FHIRServer, r Result, key string) {
	ctx, cancel := context.WithTimeout(wb.stopping, wb.timeout)
	defer cancel()
	start := time.Now()
	report, err := wb.writer.WriteResult(ctx, server, r)
	if err != nil {
		wb.log.Error("write-back failed", "study", r.Study.Key(), "report", report, "fhirServer", server.BaseURL, "err", err)
		if wb.written != nil {
			wb.written.Delete(key) // the next answer tries again
		}
		return
	}
	wb.log.Info("write-back stored", "study", r.Study.Key(), "report", report, "fhirServer", server.BaseURL,
		"ms", time.Since(start).Milliseconds())
}
