package onnx_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/onnx"
)

// 32 concurrent callers, each with its own radiograph, get exactly the
// probabilities of sequential runs, whatever batches they land in; callers
// whose context ends do not disturb the others.
func TestBatcherConcurrentCallers(t *testing.T) {
	md := loadHip(t)
	const callers = 32
	inputs := make([][]float32, callers)
	want := make([][]inference.Output, callers)
	for i := range callers {
		if i >= 8 {
			inputs[i], want[i] = inputs[i%8], want[i%8]
			continue
		}
		_, crops, regions := prepared(t, md, 31, i)
		inputs[i] = crops
		outs, err := md.Run(crops, len(regions))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = outs
	}
	b := onnx.NewBatcher(md, 8, 5*time.Millisecond)
	defer b.Close()
	var wg sync.WaitGroup
	errs := make([]error, callers)
	got := make([][]inference.Output, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := t.Context()
			if i%8 == 7 { // a caller that gives up at once
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			got[i], errs[i] = b.Classify(ctx, inputs[i], 2)
		}()
	}
	wg.Wait()
	for i := range callers {
		if i%8 == 7 {
			if errs[i] == nil {
				t.Errorf("caller %d: cancelled context but no error", i)
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		for k := range 2 {
			for c, p := range got[i][k].Probabilities {
				if d := p - want[i][k].Probabilities[c]; d > 1e-5 || d < -1e-5 {
					t.Fatalf("caller %d crop %d class %d: %v batched, %v alone", i, k, c, p, want[i][k].Probabilities[c])
				}
			}
		}
	}
	batches, crops := b.Stats()
	t.Logf("%d callers ran in %d batches of %d crops in all", callers, batches, crops)
	if crops != 2*(callers-callers/8) {
		t.Errorf("%d crops ran, want %d (cancelled callers left out)", crops, 2*(callers-callers/8))
	}
	if _, err := b.Classify(t.Context(), inputs[0][:10], 2); err == nil {
		t.Error("a wrong crop length must be refused")
	}
	b.Close()
	if _, err := b.Classify(t.Context(), inputs[0], 2); err != onnx.ErrClosed {
		t.Errorf("after Close: %v", err)
	}
}

// A lone request runs at once: it does not wait out the batch window (an
// hour here; a call still waiting after a minute fails the test).
func TestBatcherRunsALoneRequestAtOnce(t *testing.T) {
	md := loadHip(t)
	_, crops, _ := prepared(t, md, 31, 0)
	b := onnx.NewBatcher(md, 8, time.Hour)
	defer b.Close()
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		_, err := b.Classify(ctx, crops, 2)
		cancel()
		if err != nil {
			t.Fatalf("a lone call: %v (it waited for the batch window)", err)
		}
	}
	if batches, n := b.Stats(); batches != 3 || n != 6 {
		t.Fatalf("3 lone calls of 2 crops: %d batches, %d crops; want 3 and 6", batches, n)
	}
}

// Requests that find others waiting coalesce: under load (16 callers at
// once, each one crop at a time) batches form while the model runs.
func TestBatcherCoalescesUnderLoad(t *testing.T) {
	md := loadHip(t)
	_, crops, _ := prepared(t, md, 31, 0)
	one := crops[:len(crops)/2]
	b := onnx.NewBatcher(md, 8, 20*time.Millisecond)
	defer b.Close()
	const callers, each = 16, 4
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if _, err := b.Classify(t.Context(), one, 1); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	batches, n := b.Stats()
	t.Logf("%d calls of one crop ran in %d batches", callers*each, batches)
	if n != callers*each || batches > callers*each*3/4 {
		t.Fatalf("%d calls: %d batches, %d crops; want the crops all run, in at most %d batches", callers*each, batches, n, callers*each*3/4)
	}
}
