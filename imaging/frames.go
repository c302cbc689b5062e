package imaging

import (
	"encoding/binary"
	"fmt"
)

// frameStream returns the compressed bytes of frame k of encapsulated pixel
// data (PS3.5 A.4): all fragments for a single frame; else the fragments the
// Extended Offset Table or the Basic Offset Table point to; else one
// fragment per frame when the counts agree; else the fragments grouped at
// each that starts a new code stream (JPEG SOI, JPEG 2000 SOC or JP2).
func frameStream(l *layout, m Metadata, k int) ([]byte, error) {
	frags := l.fragments
	if len(frags) == 0 {
		return nil, fmt.Errorf("%w: encapsulated PixelData without fragments", ErrMalformed)
	}
	var first, last int // fragments [first, last) make frame k
	switch {
	case m.Frames == 1:
		first, last = 0, len(frags)
	case l.extOffsets.length > 0:
		offsets, err := offsetTable(l.extOffsets.of(l.body), 8, m.Frames, "Extended Offset Table")
		if err != nil {
			return nil, err
		}
		if first, last, err = byOffsets(frags, offsets, k); err != nil {
			return nil, err
		}
	case l.offsets.length > 0:
		offsets, err := offsetTable(l.offsets.of(l.body), 4, m.Frames, "Basic Offset Table")
		if err != nil {
			return nil, err
		}
		if first, last, err = byOffsets(frags, offsets, k); err != nil {
			return nil, err
		}
	case len(frags) == m.Frames:
		first, last = k, k+1
	default:
		var starts []int
		for i, f := range frags {
			if i == 0 || startsCodeStream(f.value.of(l.body)) {
				starts = append(starts, i)
			}
		}
		if len(starts) != m.Frames {
			return nil, fmt.Errorf("%w: %d fragments without an offset table hold %d code streams, NumberOfFrames is %d",
				ErrMalformed, len(frags), len(starts), m.Frames)
		}
		first, last = starts[k], len(frags)
		if k+1 < len(starts) {
			last = starts[k+1]
		}
	}
	if last-first == 1 {
		return frags[first].value.of(l.body), nil // no copy
	}
	size := 0
	for _, f := range frags[first:last] {
		size += f.value.length
	}
	out := make([]byte, 0, size)
	for _, f := range frags[first:last] {
		out = append(out, f.value.of(l.body)...)
	}
	return out, nil
}

// offsetTable reads an offset table of width-byte little-endian entries,
// one per frame, increasing from 0.
func offsetTable(b []byte, width, frames int, name string) ([]uint64, error) {
	if len(b) != width*frames {
		return nil, fmt.Errorf("%w: %s of %d bytes for %d frames", ErrMalformed, name, len(b), frames)
	}
	out := make([]uint64, frames)
	for i := range out {
		if width == 4 {
			out[i] = uint64(binary.LittleEndian.Uint32(b[4*i:]))
		} else {
			out[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		if (i == 0 && out[i] != 0) || (i > 0 && out[i] <= out[i-1]) {
			return nil, fmt.Errorf("%w: %s entry %d (%d) is out of order", ErrMalformed, name, i, out[i])
		}
	}
	return out, nil
}

// byOffsets finds the fragments of frame k from offsets to their first
// item; each offset must be where a fragment's item starts.
func byOffsets(frags []fragment, offsets []uint64, k int) (int, int, error) {
	find := func(off uint64) (int, bool) {
		for i, f := range frags {
			if uint64(f.item) == off {
				return i, true
			}
		}
		return 0, false
	}
	first, ok := find(offsets[k])
	if !ok {
		return 0, 0, fmt.Errorf("%w: offset table entry %d (%d) is not where a fragment starts", ErrMalformed, k, offsets[k])
	}
	last := len(frags)
	if k+1 < len(offsets) {
		if last, ok = find(offsets[k+1]); !ok {
			return 0, 0, fmt.Errorf("%w: offset table entry %d (%d) is not where a fragment starts", ErrMalformed, k+1, offsets[k+1])
		}
	}
	return first, last, nil
}

// startsCodeStream reports whether a fragment begins a JPEG, JPEG-LS or
// JPEG 2000 code stream or a JP2 file.
func startsCodeStream(b []byte) bool {
	switch {
	case len(b) >= 2 && b[0] == 0xFF && b[1] == 0xD8: // SOI
		return true
	case len(b) >= 4 && b[0] == 0xFF && b[1] == 0x4F && b[2] == 0xFF && b[3] == 0x51: // SOC, SIZ
		return true
	case len(b) >= 8 && string(b[4:8]) == "jP  ":
		return true
	}
	return false
}
