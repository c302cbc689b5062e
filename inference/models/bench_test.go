package models_test

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/phantom"
)

// benchThreads is the intra-op thread count of every session benchmarked,
// so that raw and pipeline runs use the CPU alike.
var benchThreads = runtime.NumCPU()

var batchSizes = []int{1, 8}

func benchModel(b *testing.B) *inference.Model { return loadHipThreads(b, benchThreads) }

// benchCrops returns n prepared hip crops from phantom radiographs.
func benchCrops(b *testing.B, md *inference.Model, n int) []float32 {
	var out []float32
	for i := 0; len(out) < n*128*128; i++ {
		_, crops, _ := prepared(b, md, 41, i)
		out = append(out, crops...)
	}
	return out[:n*128*128]
}

// BenchmarkThroughput compares, at each batch size, the service's path for
// prepared crops with the ONNX Runtime session alone. Each iteration runs
// both, one after the other, so that drift in the machine's speed hits both
// alike.
//
//   - raw: the session alone, input and outputs allocated once, no pre- or
//     postprocessing;
//   - pipeline: n/2 callers of one radiograph (two crops) each through the
//     batcher, which copies them into a batch, runs the session with outputs
//     it allocates, applies the softmax and splits outputs and activation
//     maps per caller.
//
// Both use the same session (benchThreads intra-op threads), so neither
// pays for the other's spinning thread pool.
func BenchmarkThroughput(b *testing.B) {
	md := benchModel(b)
	for _, n := range batchSizes {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			crops := benchCrops(b, md, n)
			in, _ := ort.NewTensor(ort.NewShape(int64(n), 1, 128, 128), crops)
			logits, _ := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 8))
			cam, _ := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 8, 4, 4))
			defer in.Destroy()
			defer logits.Destroy()
			defer cam.Destroy()
			bt := inference.NewBatcher(md, n, 5*time.Millisecond)
			defer bt.Close()
			callers := max(1, n/2)
			per := n / callers
			var raw, pipe time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if err := md.RunRaw([]ort.Value{in}, []ort.Value{logits, cam}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				var wg sync.WaitGroup
				for c := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := bt.Classify(b.Context(), crops[c*per*128*128:(c+1)*per*128*128], per); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				raw, pipe = raw+t1.Sub(t0), pipe+time.Since(t1)
			}
			rawRate := float64(b.N*n) / raw.Seconds()
			pipeRate := float64(b.N*n) / pipe.Seconds()
			b.ReportMetric(rawRate, "raw-crops/s")
			b.ReportMetric(pipeRate, "pipeline-crops/s")
			b.ReportMetric(pipeRate/rawRate, "ratio")
			if f := md.Manifest.FLOPs; f > 0 {
				b.ReportMetric(rawRate*float64(f)/1e9, "raw-GFLOP/s")
				b.ReportMetric(pipeRate*float64(f)/1e9, "pipeline-GFLOP/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkStages times each stage for one full AP pelvis DICOM file.
func BenchmarkStages(b *testing.B) {
	md := benchModel(b)
	pc := phantom.Pelvis(41, 0)
	var buf bytes.Buffer
	if err := imaging.WriteDICOM(&buf, pc.Image); err != nil {
		b.Fatal(err)
	}
	file := buf.Bytes()
	pre := md.Manifest.Preprocess
	crops := make([]float32, 2*128*128)
	var dec, prep, inf, post time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		img, err := imaging.Decode(file, imaging.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		regions, err := pre.Prepare(img.Pixels, img.Meta.Rows, img.Meta.Columns, crops)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		outs, err := md.Run(crops, 2)
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		for k, r := range regions {
			md.Manifest.Interpret(outs[k], r).ActivationMap(outs[k])
		}
		t4 := time.Now()
		dec, prep, inf, post = dec+t1.Sub(t0), prep+t2.Sub(t1), inf+t3.Sub(t2), post+t4.Sub(t3)
	}
	n := float64(b.N)
	b.ReportMetric(float64(dec.Microseconds())/1000/n, "decode-ms")
	b.ReportMetric(float64(prep.Microseconds())/1000/n, "preprocess-ms")
	b.ReportMetric(float64(inf.Microseconds())/1000/n, "infer-ms")
	b.ReportMetric(float64(post.Microseconds())/1000/n, "postprocess-ms")
	total := dec + prep + inf + post
	b.ReportMetric(100*float64(dec+prep+post)/float64(total), "non-infer-%")
	b.ReportMetric(0, "ns/op")
}
