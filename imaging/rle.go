package imaging

import (
	"encoding/binary"
	"fmt"
)

// decodeRLE decodes one frame of DICOM RLE Lossless (PS3.5 Annex G): a
// 64-byte header of up to 15 segment offsets, one PackBits segment per byte
// plane (most significant byte first, sample by sample). It returns the
// samples interleaved by pixel.
func decodeRLE(frame []byte, rows, cols, spp, bitsAllocated int) ([]int32, error) {
	if len(frame) < 64 {
		return nil, fmt.Errorf("%w: RLE frame of %d bytes has no header", ErrMalformed, len(frame))
	}
	bytesPerSample := bitsAllocated / 8
	nseg := int(binary.LittleEndian.Uint32(frame))
	if nseg != spp*bytesPerSample {
		return nil, fmt.Errorf("%w: RLE frame has %d segments, want %d", ErrMalformed, nseg, spp*bytesPerSample)
	}
	n := rows * cols
	out := make([]int32, n*spp)
	for s := 0; s < nseg; s++ {
		start := int(binary.LittleEndian.Uint32(frame[4+4*s:]))
		end := len(frame)
		if s+1 < nseg {
			end = int(binary.LittleEndian.Uint32(frame[4+4*(s+1):]))
		}
		if start < 64 || end > len(frame) || start > end {
			return nil, fmt.Errorf("%w: RLE segment %d offsets %d-%d outside the frame", ErrMalformed, s, start, end)
		}
		plane, err := unpackBits(frame[start:end], n)
		if err != nil {
			return nil, fmt.Errorf("%w: RLE segment %d: %v", ErrMalformed, s, err)
		}
		sample, byteIdx := s/bytesPerSample, s%bytesPerSample
		shift := uint(8 * (bytesPerSample - 1 - byteIdx))
		for i, b := range plane {
			out[i*spp+sample] |= int32(b) << shift
		}
	}
	return out, nil
}

// unpackBits decodes a PackBits byte segment to exactly n bytes; a segment
// may carry one padding byte past n.
func unpackBits(seg []byte, n int) ([]byte, error) {
	out := make([]byte, 0, n)
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
