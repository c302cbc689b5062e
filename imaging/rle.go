package imaging

import (
	"encoding/binary"
	"fmt"
)

// decodeRLE decodes one frame of DICOM RLE Lossless (PS3.5 Annex G): a
// 64-byte header of up to 15 segment offsets, one PackBits segment per byte
// plane (most significant byte first, sample by sample). It returns the
// samples interleaved by pixel.
func decodeRLE(frame []byte, rows, cols, spp, bitsAllocated int) (samples, error) {
	if len(frame) < 64 {
		return samples{}, fmt.Errorf("%w: RLE frame of %d bytes has no header", ErrMalformed, len(frame))
	}
	if bitsAllocated == 1 {
		return samples{}, &ErrUnsupportedTransferSyntax{UID: TSRLE, Detail: "1-bit RLE"}
	}
	bytesPerSample := bitsAllocated / 8
	nseg := int(binary.LittleEndian.Uint32(frame))
	if nseg != spp*bytesPerSample {
		return samples{}, fmt.Errorf("%w: RLE frame has %d segments, want %d", ErrMalformed, nseg, spp*bytesPerSample)
	}
	n := rows * cols
	var out samples
	var b []byte
	var w []uint16
	var d []int32
	switch bytesPerSample {
	case 1:
		b = make([]byte, n*spp)
		out = bytesSamples(b)
	case 2:
		w = make([]uint16, n*spp)
		out = wordSamples(w)
	default:
		d = make([]int32, n*spp)
		out = intSamples(d)
	}
	plane := make([]byte, 0, n)
	for s := 0; s < nseg; s++ {
		start := int(binary.LittleEndian.Uint32(frame[4+4*s:]))
		end := len(frame)
		if s+1 < nseg {
			end = int(binary.LittleEndian.Uint32(frame[4+4*(s+1):]))
		}
		if start < 64 || end > len(frame) || start > end {
			return samples{}, fmt.Errorf("%w: RLE segment %d offsets %d-%d outside the frame", ErrMalformed, s, start, end)
		}
		var err error
		plane, err = unpackBits(frame[start:end], n, plane[:0])
		if err != nil {
			return samples{}, fmt.Errorf("%w: RLE segment %d: %v", ErrMalformed, s, err)
		}
		sample, byteIdx := s/bytesPerSample, s%bytesPerSample
		shift := uint(8 * (bytesPerSample - 1 - byteIdx))
		for i, v := range plane {
			switch bytesPerSample {
			case 1:
				b[i*spp+sample] = v
			case 2:
				w[i*spp+sample] |= uint16(v) << shift
			default:
				d[i*spp+sample] |= int32(uint32(v) << shift)
			}
		}
	}
	return out, nil
}

// unpackBits decodes a PackBits byte segment to exactly n bytes into out; a
// segment may carry one padding byte past n.
func unpackBits(seg []byte, n int, out []byte) ([]byte, error) {
	for i := 0; i < len(seg) && len(out) < n; {
		h := int(int8(seg[i]))
		i++
		switch {
		case h >= 0:
			if i+h+1 > len(seg) {
				return nil, fmt.Errorf("literal run past the segment end")
			}
			out = append(out, seg[i:i+h+1]...)
			i += h + 1
		case h >= -127:
			if i >= len(seg) {
				return nil, fmt.Errorf("repeat run past the segment end")
			}
			for range 1 - h {
				out = append(out, seg[i])
			}
			i++
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("decoded %d bytes, want %d", len(out), n)
	}
	return out[:n], nil
}
