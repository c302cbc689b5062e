package inference

import (
	"math"
	"math/rand/v2"
	"testing"
)

// qualityByNeighbourLookup is MeasureQuality as first written (a closure
// per pixel read): the faster one must give the very same numbers.
func qualityByNeighbourLookup(pixels []float32, rows, cols int) Quality {
	at := func(y, x int) float64 {
		v := float64(pixels[y*cols+x])
		if !(v > 0) {
			return 0
		}
		return math.Min(v, 1)
	}
	step := max(1, max(rows, cols)/512)
	var hist [256]int
	var n, dark, bright int
	var sum, sum2, pairs, sa, sb, saa, sbb, sab float64
	for y := 0; y < rows; y += step {
		for x := 0; x < cols; x += step {
			v := at(y, x)
			n++
			sum += v
			sum2 += v * v
			hist[min(255, int(v*256))]++
			if v <= 0.02 {
				dark++
			}
			if v >= 0.98 {
				bright++
			}
			for _, d := range [2][2]int{{0, 1}, {1, 0}} {
				ny, nx := y+d[0], x+d[1]
				if ny >= rows || nx >= cols {
					continue
				}
				w := at(ny, nx)
				pairs++
				sa, sb, saa, sbb, sab = sa+v, sb+w, saa+v*v, sbb+w*w, sab+v*w
			}
		}
	}
	q := Quality{Dark: float64(dark) / float64(n), Bright: float64(bright) / float64(n)}
	mean := sum / float64(n)
	q.Std = math.Sqrt(math.Max(0, sum2/float64(n)-mean*mean))
	q.Range = percentile(hist[:], n, 0.99) - percentile(hist[:], n, 0.01)
	if pairs > 0 {
		cov := sab/pairs - sa/pairs*sb/pairs
		va, vb := saa/pairs-sa/pairs*sa/pairs, sbb/pairs-sb/pairs*sb/pairs
		if va > 1e-12 && vb > 1e-12 {
			q.Correlation = cov / math.Sqrt(va*vb)
		}
	}
	return q
}

func TestMeasureQualityIsUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range [][2]int{{1, 1}, {1, 7}, {9, 1}, {513, 300}, {1100, 1500}, {2500, 2048}} {
		rows, cols := size[0], size[1]
		px := make([]float32, rows*cols)
		for i := range px {
			switch rng.IntN(50) {
			case 0:
				px[i] = float32(math.NaN())
			case 1:
				px[i] = -0.5
			case 2:
				px[i] = 1.7
			default:
				px[i] = float32(i%cols)/float32(cols) + 0.1*rng.Float32()
			}
		}
		got, err := MeasureQuality(px, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		if want := qualityByNeighbourLookup(px, rows, cols); got != want {
			t.Errorf("%dx%d: %+v, want %+v", rows, cols, got, want)
		}
	}
}

// BenchmarkMeasureQuality compares MeasureQuality with its first version
// on a 2500 x 2048 radiograph, in the same process.
func BenchmarkMeasureQuality(b *testing.B) {
	rows, cols := 2500, 2048
	px := make([]float32, rows*cols)
	for i := range px {
		px[i] = float32(i%cols) / float32(cols)
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			qualityByNeighbourLookup(px, rows, cols)
		}
	})
	b.Run("now", func(b *testing.B) {
		for b.Loop() {
			if _, err := MeasureQuality(px, rows, cols); err != nil {
				b.Fatal(err)
			}
		}
	})
}
