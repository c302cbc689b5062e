package models_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/inference/onnx/onnxtest"
	"github.com/orthotriage/orthotriage/phantom"
)

// timedNet and timedLocaliser add up the time spent in the networks.
type timedNet struct {
	s    *onnx.Served
	took *time.Duration
}

func (t timedNet) Classify(ctx context.Context, crops []float32, n int) ([]inference.Output, error) {
	t0 := time.Now()
	defer func() { *t.took += time.Since(t0) }()
	return t.s.Classify(ctx, crops, n)
}

func (t timedNet) Manifest() *inference.Manifest { return t.s.Manifest() }

// timedLocaliser counts the localiser's session run, not the resizing of
// the image into its input (preprocessing): it times that resizing on its
// own, once more, and adds it to extra, which is not counted at all.
type timedLocaliser struct {
	s           *onnx.Served
	lm          *onnx.LocaliserModel
	in          []float32
	took, extra *time.Duration
}

func (t timedLocaliser) FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error) {
	t0 := time.Now()
	if err := t.lm.Input(pixels, rows, cols, t.in); err != nil {
		return inference.HipJoints{}, err
	}
	t1 := time.Now()
	h, err := t.s.FindHips(pixels, rows, cols)
	*t.took += time.Since(t1) - t1.Sub(t0)
	*t.extra += t1.Sub(t0)
	return h, err
}

// BenchmarkServiceStages is one AP pelvis DICOM file read as the service
// reads it (batcher, localiser, image gate, upright crops, classifier,
// policy, heat-map thumbnails as results.heatmap_side's default), with
// hip-000 and, when $ORTHOTRIAGE_BENCH_MODEL_DIR names one, that model too
// (make bench: a full-size ResNet-50 behind hip-000's localiser): decoding,
// then everything outside the two networks, then the networks' session
// runs (the localiser's and the classifier's), per file. "phantom" is the
// phantom pelvis as generated (521 x 429 pixels); "detector" is the same
// pelvis at four times the resolution (2084 x 1716, 3.6 megapixels, as a
// flat-panel detector gives), for the share of the work outside the
// networks at the size a hospital sends.
func BenchmarkServiceStages(b *testing.B) {
	initRuntime(b)
	m, err := models.Manifest("hip-000")
	if err != nil {
		b.Fatal(err)
	}
	manifests := []*inference.Manifest{m}
	if dir := os.Getenv(benchModelDirEnv); dir != "" {
		m, err := inference.LoadManifest(dir)
		if err != nil {
			b.Fatalf("%s: %v", benchModelDirEnv, err)
		}
		if m.Preprocess.Localiser == nil {
			b.Fatalf("%s: %s has no hip localiser: the service would not read a pelvis with it", benchModelDirEnv, m.ID)
		}
		manifests = append(manifests, m)
	}
	pelvis := phantom.Pelvis(41, 0).Image
	for _, m := range manifests {
		l, err := onnx.Open(m, onnx.Options{Library: onnxtest.Library(b), Session: onnx.SessionOptions{IntraOpThreads: benchThreads}, BatchMax: 8, BatchWait: 5 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		s := onnx.Serve(l)
		for _, size := range []struct {
			name  string
			scale int
		}{{"phantom", 1}, {"detector", 4}} {
			b.Run("model="+m.ID+"/"+size.name, func(b *testing.B) {
				var buf bytes.Buffer
				if err := imaging.WriteDICOM(&buf, upscaled(pelvis, size.scale)); err != nil {
					b.Fatal(err)
				}
				readStages(b, m, s, l, buf.Bytes())
			})
		}
		l.Close()
	}
}

// readStages reads file b.N times and reports the stages' times.
func readStages(b *testing.B, m *inference.Manifest, s *onnx.Served, l *onnx.Loaded, file []byte) {
	var nets, extra time.Duration
	spec := m.Preprocess.Localiser
	loc := timedLocaliser{s: s, lm: l.HipLocaliser, in: make([]float32, spec.Width*spec.Height), took: &nets, extra: &extra}
	c := &analysis.HipModel{Classifier: timedNet{s, &nets}, Localiser: loc}
	a := &analysis.Analyzer{Policy: analysis.Policy{ReviewBelow: 0.6, HeatmapSide: 96}, Now: time.Now}
	var dec, read time.Duration
	for b.Loop() {
		t0 := time.Now()
		img, err := imaging.Decode(file, imaging.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		r, err := a.ReadHip(b.Context(), c, img)
		if err != nil || r.Result.NotRead != nil || len(r.Result.Findings) != 2 {
			b.Fatalf("read: %v, not read %+v, %d findings", err, r.Result.NotRead, len(r.Result.Findings))
		}
		dec, read = dec+t1.Sub(t0), read+time.Since(t1)
	}
	read -= extra
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(dec), "decode-ms")
	b.ReportMetric(ms(read-nets), "pre+post-ms")
	b.ReportMetric(ms(nets), "networks-ms")
	b.ReportMetric(100*float64(dec+read-nets)/float64(dec+read), "non-infer-%")
	b.ReportMetric(0, "ns/op")
}

// upscaled is r at k times its resolution (bilinear on the stored values,
// the pixel spacing divided by k): the same anatomy in more pixels.
func upscaled(r imaging.Radiograph, k int) imaging.Radiograph {
	if k == 1 {
		return r
	}
	out := r
	out.Rows, out.Columns = r.Rows*k, r.Columns*k
	out.Stored = make([]int, out.Rows*out.Columns)
	out.PixelSpacing = [2]float64{r.PixelSpacing[0] / float64(k), r.PixelSpacing[1] / float64(k)}
	at := func(y, x int) float64 {
		return float64(r.Stored[min(max(y, 0), r.Rows-1)*r.Columns+min(max(x, 0), r.Columns-1)])
	}
	for y := range out.Rows {
		sy := (float64(y)+0.5)/float64(k) - 0.5
		y0 := int(math.Floor(sy))
		ty := sy - float64(y0)
		for x := range out.Columns {
			sx := (float64(x)+0.5)/float64(k) - 0.5
			x0 := int(math.Floor(sx))
			tx := sx - float64(x0)
			v := (1-ty)*((1-tx)*at(y0, x0)+tx*at(y0, x0+1)) + ty*((1-tx)*at(y0+1, x0)+tx*at(y0+1, x0+1))
			out.Stored[y*out.Columns+x] = int(math.Round(v))
		}
	}
	return out
}
