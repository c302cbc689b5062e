package imaging

import (
	"fmt"
	"math"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// toGray reduces a frame's samples to one gray stored value per pixel:
// monochrome as it is; RGB (also YBR_RCT/ICT, which the JPEG 2000 decoder
// returns as RGB) to its luminance (ITU-R BT.601, as JPEG's Y); YBR to its Y
// channel; PALETTE COLOR to the luminance of its palette entries.
func toGray(s samples, m *Metadata, a attrs) (Stored, error) {
	n := m.Rows * m.Columns
	signed := m.PixelRepresentation == 1
	need := samplesPerFrame(*m)
	if m.decoded.set {
		need = n * m.SamplesPerPixel // a codec's output is never subsampled
	}
	if s.n < need {
		return Stored{}, fmt.Errorf("%w: %d samples for %d x %d x %d", ErrMalformed, s.n, m.Rows, m.Columns, m.SamplesPerPixel)
	}
	if m.Photometric == "PALETTE COLOR" {
		return paletteGray(storedOf(s, m.BitsStored, false), n, a)
	}
	if m.SamplesPerPixel == 1 {
		return storedOf(s, m.BitsStored, signed), nil
	}
	in := storedOf(s, m.BitsStored, signed)
	planar := a.int(tag.PlanarConfiguration, 0) == 1
	ycbcr := strings.HasPrefix(m.Photometric, "YBR_FULL")
	if m.decoded.set {
		planar = m.decoded.planar
		ycbcr = ycbcr || (m.Photometric == "RGB" && m.decoded.ycbcr)
	}
	at := func(i, c int) int64 {
		if planar {
			return in.At(c*n + i)
		}
		return in.At(i*3 + c)
	}
	gray := func(i int) int64 {
		if ycbcr {
			return at(i, 0)
		}
		return int64(math.Round(0.299*float64(at(i, 0)) + 0.587*float64(at(i, 1)) + 0.114*float64(at(i, 2))))
	}
	if m.Photometric == "YBR_FULL_422" && !m.decoded.set {
		// Native 4:2:2: Y1 Y2 Cb Cr for each pair of pixels (PS3.3 C.7.6.3.1.2).
		gray = func(i int) int64 { return in.At(4*(i/2) + i%2) }
	}
	return grayOf(n, m.BitsStored, signed, gray), nil
}

// grayOf makes stored values of the given depth from a function of the
// pixel index, in the narrowest buffer that holds them.
func grayOf(n, bits int, signed bool, gray func(i int) int64) Stored {
	switch {
	case bits <= 8:
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(gray(i))
		}
		return storedOf(bytesSamples(b), bits, signed)
	case bits <= 16:
		w := make([]uint16, n)
		for i := range w {
			w[i] = uint16(gray(i))
		}
		return storedOf(wordSamples(w), bits, signed)
	default:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(gray(i))
		}
		return storedOf(intSamples(d), bits, signed)
	}
}

// paletteGray maps palette indexes through the red, green and blue palette
// LUTs (PS3.3 C.7.6.3.1.5) to the luminance of each entry.
func paletteGray(idx Stored, n int, a attrs) (Stored, error) {
	tags := [3][2]tag.Tag{
		{tag.RedPaletteColorLookupTableDescriptor, tag.RedPaletteColorLookupTableData},
		{tag.GreenPaletteColorLookupTableDescriptor, tag.GreenPaletteColorLookupTableData},
		{tag.BluePaletteColorLookupTableDescriptor, tag.BluePaletteColorLookupTableData},
	}
	var lut [3][]int
	var first, entries, bits int
	for c, t := range tags {
		desc := a.uint16s(t[0])
		if len(desc) != 3 {
			if len(a.uint16s(tag.SegmentedRedPaletteColorLookupTableData)) > 0 {
				return Stored{}, fmt.Errorf("%w: segmented palette colour LUTs", ErrNotImage)
			}
			return Stored{}, fmt.Errorf("%w: PALETTE COLOR without a palette LUT descriptor", ErrMalformed)
		}
		e, f, b := desc[0], desc[1], desc[2]
		if e == 0 {
			e = 65536
		}
		if c > 0 && (e != entries || f != first || b != bits) {
			return Stored{}, fmt.Errorf("%w: palette LUT descriptors differ", ErrMalformed)
		}
		entries, first, bits = e, f, b
		data := a.uint16s(t[1])
		if b != 8 && b != 16 {
			return Stored{}, fmt.Errorf("%w: palette LUT entries of %d bits", ErrMalformed, b)
		}
		if b == 8 && len(data) == (entries+1)/2 { // 8-bit entries packed two to a word
			unpacked := make([]int, 0, 2*len(data))
			for _, w := range data {
				unpacked = append(unpacked, w&0xFF, w>>8)
			}
			data = unpacked
		}
		if len(data) < entries {
			return Stored{}, fmt.Errorf("%w: palette LUT of %d entries, descriptor says %d", ErrMalformed, len(data), entries)
		}
		lut[c] = data[:entries]
	}
	lum := make([]int64, entries)
	for i := range lum {
		lum[i] = int64(math.Round(0.299*float64(lut[0][i]) + 0.587*float64(lut[1][i]) + 0.114*float64(lut[2][i])))
	}
	return grayOf(n, bits, false, func(i int) int64 {
		j := max(0, min(entries-1, int(idx.At(i))-first)) // PS3.3: out-of-range indexes take the end entries
		return lum[j]
	}), nil
}
