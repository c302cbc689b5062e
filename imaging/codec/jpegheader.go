package codec

import "fmt"

// jpegFrameHeader finds a JPEG stream's frame header (SOFn) and returns its
// sample precision and whether the process is lossless, so that the IJG
// library of that precision can be chosen.
func jpegFrameHeader(src []byte) (precision int, lossless bool, err error) {
	if len(src) < 4 || src[0] != 0xFF || src[1] != 0xD8 {
		return 0, false, fmt.Errorf("%w: JPEG: no start-of-image marker", ErrCorrupt)
	}
	pos := 2
	for pos+4 <= len(src) {
		if src[pos] != 0xFF {
			return 0, false, fmt.Errorf("%w: JPEG: no marker at byte %d", ErrCorrupt, pos)
		}
		marker := src[pos+1]
		if marker == 0xFF { // fill byte
			pos++
			continue
		}
		length := int(src[pos+2])<<8 | int(src[pos+3])
		if length < 2 {
			return 0, false, fmt.Errorf("%w: JPEG: marker segment of length %d at byte %d", ErrCorrupt, length, pos)
		}
		switch {
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			if marker >= 0xC9 { // SOF9-SOF15: arithmetic coding
				return 0, false, fmt.Errorf("%w: JPEG with arithmetic coding (SOF%d)", ErrUnsupported, marker-0xC0)
			}
			if marker == 0xC5 || marker == 0xC6 || marker == 0xC7 {
				return 0, false, fmt.Errorf("%w: hierarchical JPEG (SOF%d)", ErrUnsupported, marker-0xC0)
			}
			if pos+5 > len(src) {
				break
			}
			return int(src[pos+4]), marker == 0xC3, nil
		case marker == 0xD9 || marker == 0xDA:
			return 0, false, fmt.Errorf("%w: JPEG: no frame header before the scan", ErrCorrupt)
		}
		pos += 2 + length
	}
	return 0, false, fmt.Errorf("%w: JPEG: no frame header", ErrCorrupt)
}

// endsWithEOI reports whether a stream ends with the EOI marker, before
// any zero padding (DICOM pads fragments to an even length).
func endsWithEOI(src []byte) bool {
	end := len(src)
	for end > 0 && src[end-1] == 0 {
		end--
	}
	return end >= 2 && src[end-2] == 0xFF && src[end-1] == 0xD9
}
