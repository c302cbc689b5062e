package models_test

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/phantom"
)

// benchThreads is the intra-op thread count of every session benchmarked,
// so that raw and pipeline runs use the CPU alike.
var benchThreads = runtime.NumCPU()

var batchSizes = []int{1, 8}

// benchModelDirEnv names a model folder benchmarked beside hip-000: `make
// bench` writes a full-size ResNet-50 with random weights there
// (scripts/resnet50-bench.py), so that the pipeline's share is also shown
// for the model size a hospital would bring.
const benchModelDirEnv = "ORTHOTRIAGE_BENCH_MODEL_DIR"

// benchModels are hip-000 and, when benchModelDirEnv names one, the extra
// model, each with a session of benchThreads threads.
func benchModels(b *testing.B) []*onnx.Model {
	out := []*onnx.Model{loadHipThreads(b, benchThreads)}
	if dir := os.Getenv(benchModelDirEnv); dir != "" {
		m, err := inference.LoadManifest(dir)
		if err != nil {
			b.Fatalf("%s: %v", benchModelDirEnv, err)
		}
		md, err := onnx.Load(m, onnx.SessionOptions{IntraOpThreads: benchThreads})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { md.Close() })
		out = append(out, md)
	}
	return out
}

// cropValues is the number of values of one crop of md.
func cropValues(md *onnx.Model) int {
	r := md.Manifest().Preprocess.Resize
	return r.Width * r.Height
}

// benchCrops returns n prepared hip crops from phantom radiographs.
func benchCrops(b *testing.B, md *onnx.Model, n int) []float32 {
	var out []float32
	per := cropValues(md)
	for i := 0; len(out) < n*per; i++ {
		_, crops, _ := prepared(b, md, 41, i)
		out = append(out, crops...)
	}
	return out[:n*per]
}

// outputShape is md's output of role with the batch dimension set to n.
func outputShape(md *onnx.Model, role string, n int) ort.Shape {
	t := md.Manifest().Output(role)
	shape := ort.NewShape(t.Shape...)
	shape[0] = int64(n)
	return shape
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
	for _, md := range benchModels(b) {
		for _, n := range batchSizes {
			b.Run(fmt.Sprintf("model=%s/batch=%d", md.Manifest().ID, n), func(b *testing.B) { benchThroughput(b, md, n) })
		}
	}
}

func benchThroughput(b *testing.B, md *onnx.Model, n int) {
	per := cropValues(md)
	r := md.Manifest().Preprocess.Resize
	crops := benchCrops(b, md, n)
	in, _ := ort.NewTensor(ort.NewShape(int64(n), 1, int64(r.Height), int64(r.Width)), crops)
	logits, _ := ort.NewEmptyTensor[float32](outputShape(md, "logits", n))
	cam, _ := ort.NewEmptyTensor[float32](outputShape(md, "cam", n))
	defer in.Destroy()
	defer logits.Destroy()
	defer cam.Destroy()
	bt := onnx.NewBatcher(md, n, 5*time.Millisecond)
	defer bt.Close()
	callers := max(1, n/2)
	each := n / callers
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
				if _, err := bt.Classify(b.Context(), crops[c*each*per:(c+1)*each*per], each); err != nil {
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
	if f := md.Manifest().FLOPs; f > 0 {
		b.ReportMetric(rawRate*float64(f)/1e9, "raw-GFLOP/s")
		b.ReportMetric(pipeRate*float64(f)/1e9, "pipeline-GFLOP/s")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStages times each stage for one full AP pelvis DICOM file.
func BenchmarkStages(b *testing.B) {
	for _, md := range benchModels(b) {
		b.Run("model="+md.Manifest().ID, func(b *testing.B) { benchStages(b, md) })
	}
}

func benchStages(b *testing.B, md *onnx.Model) {
	pc := phantom.Pelvis(41, 0)
	var buf bytes.Buffer
	if err := imaging.WriteDICOM(&buf, pc.Image); err != nil {
		b.Fatal(err)
	}
	file := buf.Bytes()
	pre := md.Manifest().Preprocess
	crops := make([]float32, 2*cropValues(md))
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
			md.Manifest().Interpret(outs[k], r).ActivationMap(outs[k])
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

// BenchmarkSpinning compares ONNX Runtime's thread spinning on and off
// (onnxruntime.allow_spinning) as a service sees it: one radiograph's two
// crops at a time with an idle gap between runs, as between hooks. It
// reports each setting's run latency and the process CPU time spent per
// run (spinning threads burn CPU in the gaps).
func BenchmarkSpinning(b *testing.B) {
	initRuntime(b)
	for _, spin := range []bool{false, true} {
		b.Run(fmt.Sprintf("spinning=%v", spin), func(b *testing.B) {
			m, err := models.Manifest("hip-000")
			if err != nil {
				b.Fatal(err)
			}
			md, err := onnx.Load(m, onnx.SessionOptions{IntraOpThreads: benchThreads, Spinning: spin})
			if err != nil {
				b.Fatal(err)
			}
			defer md.Close()
			crops := benchCrops(b, md, 2)
			var run time.Duration
			cpu0 := processCPU()
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := md.Run(crops, 2); err != nil {
					b.Fatal(err)
				}
				run += time.Since(t0)
				time.Sleep(5 * time.Millisecond) // idle until the next hook
			}
			b.ReportMetric(float64(run.Microseconds())/1000/float64(b.N), "run-ms")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/run")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
