package imaging

import (
	"encoding/binary"
	"math"
	"runtime"

	"github.com/orthotriage/orthotriage/internal/parallel"
)

// sampleKind says how a samples buffer holds its values.
type sampleKind uint8

const (
	kindBytes sampleKind = iota // one byte a value
	kindLE16                    // little-endian 16-bit values in bytes (a view of the file)
	kindLE32                    // little-endian 32-bit values in bytes (a view of the file)
	kindWords                   // []uint16
	kindInts                    // []int32 bit patterns
)

// samples are raw sample values as decoded: a view of the file's bytes
// where the file holds them as they are, else the decoder's own buffer, in
// the narrowest width that holds them.
type samples struct {
	kind sampleKind
	b    []byte
	w    []uint16
	d    []int32
	n    int
}

func bytesSamples(b []byte) samples  { return samples{kind: kindBytes, b: b, n: len(b)} }
func wordSamples(w []uint16) samples { return samples{kind: kindWords, w: w, n: len(w)} }
func intSamples(d []int32) samples   { return samples{kind: kindInts, d: d, n: len(d)} }
func le16Samples(b []byte) samples   { return samples{kind: kindLE16, b: b, n: len(b) / 2} }
func le32Samples(b []byte) samples   { return samples{kind: kindLE32, b: b, n: len(b) / 4} }
func (s samples) raw(i int) uint32 {
	switch s.kind {
	case kindBytes:
		return uint32(s.b[i])
	case kindLE16:
		return uint32(binary.LittleEndian.Uint16(s.b[2*i:]))
	case kindLE32:
		return binary.LittleEndian.Uint32(s.b[4*i:])
	case kindWords:
		return uint32(s.w[i])
	default:
		return uint32(s.d[i])
	}
}

// Stored holds the gray stored values of a decoded frame (before the
// modality rescale) as compactly as they were decoded: one or two bytes a
// pixel for images of up to 16 bits, often a view of the file itself.
type Stored struct {
	s      samples
	bits   int
	signed bool
}

// storedOf returns s as stored values of the given bits, masked and
// sign-extended on reading.
func storedOf(s samples, bits int, signed bool) Stored {
	return Stored{s: s, bits: bits, signed: signed}
}

// Len is the number of values.
func (st Stored) Len() int { return st.s.n }

// At returns value i: BitsStored bits of the sample, sign-extended when the
// pixel representation is signed.
func (st Stored) At(i int) int64 { return st.value(st.s.raw(i)) }

func (st Stored) value(raw uint32) int64 {
	bits := min(max(st.bits, 1), 32)
	v := int64(raw) & (int64(1)<<bits - 1)
	if st.signed && v&(int64(1)<<(bits-1)) != 0 {
		v -= int64(1) << bits
	}
	return v
}

// Values returns a copy of all values.
func (st Stored) Values() []int64 {
	out := make([]int64, st.Len())
	st.each(func(i int, v int64) { out[i] = v })
	return out
}

// each calls fn for every value in order.
func (st Stored) each(fn func(i int, v int64)) {
	s := st.s
	switch s.kind {
	case kindBytes:
		for i, r := range s.b[:s.n] {
			fn(i, st.value(uint32(r)))
		}
	case kindWords:
		for i, r := range s.w[:s.n] {
			fn(i, st.value(uint32(r)))
		}
	default:
		for i := range s.n {
			fn(i, st.value(s.raw(i)))
		}
	}
}

// lutIndex reports whether the values fit a lookup table of at most 2^16
// entries, and the smallest value the table starts at.
func (st Stored) lutRange() (lo int64, size int, ok bool) {
	if st.bits < 1 || st.bits > 16 {
		return 0, 0, false
	}
	size = 1 << st.bits
	if st.signed {
		lo = -int64(size / 2)
	}
	return lo, size, true
}

// applyLUT sets out[i] to lut[index i - base] for every value, in loops
// by buffer kind (the closure of each costs as much as the lookup), where a
// value's index is its place among the 2^bits values from the smallest
// (lutRange). lut covers indexes base to base+len(lut)-1, which hold every
// value of st (from its Stats); an index outside them (there is none) reads
// the nearer end of the table rather than failing. A large frame is shared
// out among up to GOMAXPROCS goroutines.
func (st Stored) applyLUT(lut []float32, base uint32, out []float32) {
	n := st.s.n
	parallel.Ranges(n, min(runtime.GOMAXPROCS(0), n/pixelsPerPart), func(from, to int) {
		st.applyLUTRange(lut, base, out, from, to)
	})
}

// pixelsPerPart is about the pixels worth a goroutine of their own in a
// frame's table lookups and statistics.
const pixelsPerPart = 1 << 16

func (st Stored) applyLUTRange(lut []float32, base uint32, out []float32, from, to int) {
	mask := uint32(1)<<st.bits - 1
	var flip uint32 // a signed value's index: its sign bit flipped
	if st.signed {
		flip = uint32(1) << (st.bits - 1)
	}
	last := int64(len(lut) - 1)
	at := func(r uint32) float32 {
		return lut[max(0, min(int64((r&mask)^flip)-int64(base), last))]
	}
	s := st.s
	out = out[from:to]
	switch s.kind {
	case kindBytes:
		for i, r := range s.b[from:to] {
			out[i] = at(uint32(r))
		}
	case kindLE16:
		b := s.b[2*from : 2*to]
		for i := range out {
			out[i] = at(uint32(b[2*i]) | uint32(b[2*i+1])<<8)
		}
	case kindWords:
		for i, r := range s.w[from:to] {
			out[i] = at(uint32(r))
		}
	default:
		for i := range out {
			out[i] = at(s.raw(from + i))
		}
	}
}

// minMaxSum returns the smallest, the largest and the sum of the values,
// a large frame shared out among up to GOMAXPROCS goroutines (the sum is of
// integers, so exact however it is shared).
func (st Stored) minMaxSum() (lo, hi int64, sum float64) {
	n := st.s.n
	parts := max(1, min(runtime.GOMAXPROCS(0), n/pixelsPerPart))
	type part struct{ lo, hi, sum int64 }
	got := make([]part, parts)
	parallel.Each(parts, func(p int) {
		r := &got[p]
		r.lo, r.hi, r.sum = st.minMaxSumRange(n*p/parts, n*(p+1)/parts)
	})
	lo, hi = math.MaxInt64, math.MinInt64
	var isum int64
	for _, r := range got {
		lo, hi, isum = min(lo, r.lo), max(hi, r.hi), isum+r.sum
	}
	return lo, hi, float64(isum)
}

// minMaxSumRange is minMaxSum over values [from, to).
func (st Stored) minMaxSumRange(from, to int) (lo, hi, isum int64) {
	lo, hi = math.MaxInt64, math.MinInt64
	// isum is exact for up to 2^31 values of 32 bits.
	add := func(v int64) {
		lo, hi = min(lo, v), max(hi, v)
		isum += v
	}
	s := st.s
	switch {
	case s.kind == kindLE16 && !st.signed:
		mask := uint32(1)<<st.bits - 1
		b := s.b[2*from : 2*to]
		for i := range to - from {
			add(int64((uint32(b[2*i]) | uint32(b[2*i+1])<<8) & mask))
		}
	case s.kind == kindWords && !st.signed:
		mask := uint16(1<<st.bits - 1)
		for _, r := range s.w[from:to] {
			add(int64(r & mask))
		}
	default:
		for i := from; i < to; i++ {
			add(st.value(s.raw(i)))
		}
	}
	return lo, hi, isum
}
