package imaging

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// A frame's stats, and applyLUT with a table over the frame's own range,
// shared among goroutines for a large frame, are those of every pixel's own
// stored value, for each kind of buffer, signed or not.
func TestApplyLUTMatchesEachValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	f := func(v int64) float32 { return float32(v)*0.5 + 3 }
	for _, n := range []int{1, 1000, 3*pixelsPerPart + 7} {
		for _, tc := range []struct {
			name   string
			bits   int
			signed bool
			make   func(vals []uint32) samples
		}{
			{"bytes", 8, false, func(v []uint32) samples {
				b := make([]byte, len(v))
				for i, x := range v {
					b[i] = byte(x)
				}
				return bytesSamples(b)
			}},
			{"le16 12 bits", 12, false, func(v []uint32) samples {
				b := make([]byte, 2*len(v))
				for i, x := range v {
					binary.LittleEndian.PutUint16(b[2*i:], uint16(x)|0xf000) // bits above BitsStored are masked
				}
				return le16Samples(b)
			}},
			{"words signed", 16, true, func(v []uint32) samples {
				w := make([]uint16, len(v))
				for i, x := range v {
					w[i] = uint16(x)
				}
				return wordSamples(w)
			}},
			{"ints signed 10 bits", 10, true, func(v []uint32) samples {
				d := make([]int32, len(v))
				for i, x := range v {
					d[i] = int32(x)
				}
				return intSamples(d)
			}},
		} {
			vals := make([]uint32, n)
			span := uint32(1) << tc.bits
			// A part of the range only, negative values among them when signed.
			lo, width := rng.Uint32N(span), rng.Uint32N(span/2)+1
			for i := range vals {
				vals[i] = (lo + rng.Uint32N(width)) % span
			}
			st := storedOf(tc.make(vals), tc.bits, tc.signed)
			s := stats(st)
			least, most, sum := st.At(0), st.At(0), int64(0)
			for i := range n {
				least, most, sum = min(least, st.At(i)), max(most, st.At(i)), sum+st.At(i)
			}
			if int64(s.StoredMin) != least || int64(s.StoredMax) != most || s.StoredMean != float64(sum)/float64(n) {
				t.Fatalf("%s, %d pixels: stats %+v, want min %d, max %d, mean %v", tc.name, n, s, least, most, float64(sum)/float64(n))
			}
			from, size, ok := st.lutRange()
			if !ok {
				t.Fatalf("%s: no table", tc.name)
			}
			base := int64(s.StoredMin) - from
			lut := make([]float32, s.StoredMax-s.StoredMin+1)
			for i := range lut {
				lut[i] = f(from + base + int64(i))
			}
			if len(lut) > size {
				t.Fatalf("%s: table of %d for %d values", tc.name, len(lut), size)
			}
			out := make([]float32, n)
			st.applyLUT(lut, uint32(base), out)
			for i := range out {
				if want := f(st.At(i)); out[i] != want {
					t.Fatalf("%s, %d pixels: pixel %d (stored %d) = %v, want %v", tc.name, n, i, st.At(i), out[i], want)
				}
			}
		}
	}
}
