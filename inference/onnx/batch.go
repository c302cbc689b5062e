package onnx

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orthotriage/orthotriage/inference"
)

// ErrClosed is returned by a Batcher, Model or LocaliserModel used after
// its Close: the session is gone. Each such use is counted (UsesAfterClose),
// so that a shutdown that closed models under running work shows up.
var ErrClosed = errors.New("onnx: session closed")

// Batcher coalesces concurrent Classify calls for one model into batches of
// up to MaxBatch crops: the requests waiting when a batch starts join it; a
// lone request runs at once, and a batch that found others waiting (load)
// waits at most MaxWait for more to join. Each caller gets exactly the outputs of its own crops. A
// caller whose context ends before its batch runs is answered with the
// context's error and left out; one whose context ends while the batch runs
// is answered the same, and the others are unaffected.
type Batcher struct {
	model    *Model
	maxBatch int
	maxWait  time.Duration
	reqs     chan *batchRequest
	quit     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	buf      []float32

	mu             sync.Mutex
	batches, crops uint64
	afterClose     atomic.Uint64
}

// UsesAfterClose is how many Classify calls found the batcher closed.
func (b *Batcher) UsesAfterClose() uint64 { return b.afterClose.Load() }

// Stats returns how many batches ran and how many crops they held.
func (b *Batcher) Stats() (batches, crops uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches, b.crops
}

type batchRequest struct {
	ctx   context.Context
	crops []float32
	n     int
	resp  chan batchResult // buffered: the loop never blocks on a gone caller
}

type batchResult struct {
	outs []inference.Output
	err  error
}

// NewBatcher starts the batching loop of model. maxBatch < 1 means 1;
// maxWait <= 0 runs each request as soon as no other is already queued.
func NewBatcher(model *Model, maxBatch int, maxWait time.Duration) *Batcher {
	b := &Batcher{model: model, maxBatch: max(1, maxBatch), maxWait: maxWait,
		reqs: make(chan *batchRequest), quit: make(chan struct{})}
	b.wg.Add(1)
	go b.loop()
	return b
}

// Model is the batcher's model.
func (b *Batcher) Model() *Model { return b.model }

// Manifest is the manifest of the batcher's model.
func (b *Batcher) Manifest() *inference.Manifest { return b.model.manifest }

// Classify runs n prepared crops (as inference.Preprocess.Prepare writes
// them) in the next batch. The batch reads the crops until Classify
// returns, also when the context ends first (it then returns when its
// batch is done), so the caller may reuse them afterwards.
func (b *Batcher) Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error) {
	per := b.model.cropSize()
	if n <= 0 || len(crops) != n*per {
		return nil, fmt.Errorf("onnx: %d values for %d crops of %d", len(crops), n, per)
	}
	r := &batchRequest{ctx: ctx, crops: crops, n: n, resp: make(chan batchResult, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.quit:
		b.afterClose.Add(1)
		return nil, ErrClosed
	}
	select {
	case res := <-r.resp:
		return res.outs, res.err
	case <-ctx.Done():
		// The loop may still be copying our crops: wait for it to answer
		// before the caller can touch them again.
		<-r.resp
		return nil, ctx.Err()
	}
}

// Close stops the loop after the batch in progress; queued callers get
// ErrClosed.
func (b *Batcher) Close() {
	b.once.Do(func() { close(b.quit) })
	b.wg.Wait()
}

func (b *Batcher) loop() {
	defer b.wg.Done()
	for {
		var first *batchRequest
		select {
		case first = <-b.reqs:
		case <-b.quit:
			return
		}
		batch := []*batchRequest{first}
		total := first.n
		join := func(r *batchRequest) {
			if total+r.n > b.maxBatch {
				// Too big to join: run what we have, then it alone.
				b.run(batch)
				batch, total = []*batchRequest{r}, r.n
				return
			}
			batch = append(batch, r)
			total += r.n
		}
		// Whoever is waiting already joins at once; a lone request runs at
		// once (no window to wait out). Only when others were waiting, a
		// sign of load, does the batch wait up to maxWait for more. The
		// yield lets callers that started with this one reach the queue.
		runtime.Gosched()
	ready:
		for total < b.maxBatch {
			select {
			case r := <-b.reqs:
				join(r)
			default:
				break ready
			}
		}
		if b.maxWait > 0 && total < b.maxBatch && len(batch) > 1 {
			timer := time.NewTimer(b.maxWait)
		collect:
			for total < b.maxBatch {
				select {
				case r := <-b.reqs:
					join(r)
				case <-timer.C:
					break collect
				case <-b.quit:
					timer.Stop()
					b.run(batch)
					return
				}
			}
			timer.Stop()
		}
		b.run(batch)
	}
}

// run executes one batch and answers every request in it.
func (b *Batcher) run(batch []*batchRequest) {
	live := batch[:0:0]
	total := 0
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.resp <- batchResult{err: err}
			continue
		}
		live = append(live, r)
		total += r.n
	}
	if len(live) == 0 {
		return
	}
	per := b.model.cropSize()
	var input []float32
	if len(live) == 1 {
		input = live[0].crops // no copy for a batch of one
	} else {
		if cap(b.buf) < total*per {
			b.buf = make([]float32, total*per)
		}
		input = b.buf[:total*per]
		off := 0
		for _, r := range live {
			off += copy(input[off:], r.crops)
		}
	}
	outs, err := b.model.Run(input, total)
	b.mu.Lock()
	b.batches++
	b.crops += uint64(total)
	b.mu.Unlock()
	off := 0
	for _, r := range live {
		if err != nil {
			r.resp <- batchResult{err: err}
			continue
		}
		r.resp <- batchResult{outs: outs[off : off+r.n]}
		off += r.n
	}
}
