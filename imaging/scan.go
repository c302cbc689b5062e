package imaging

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// checkLengths walks every element header of a Part 10 file and checks each
// defined value length against the bytes that are left. The DICOM parser
// allocates a value's length before reading it, so a forged length of 4 GiB
// in a tiny file would otherwise cost gigabytes; after this check no
// allocation exceeds a small multiple of the input size. It also returns the
// transfer syntax of the data set.
func checkLengths(data []byte) (string, error) {
	ts, _, err := scan(data)
	return ts, err
}

// span is where a value lies in the file; length 0 when absent.
type span struct{ start, length int }

// scan is checkLengths that also returns where the top-level PixelData
// value lies when it has a defined length (native pixel data).
func scan(data []byte) (string, span, error) {
	var pixels span
	ts, err := walk(data, func(start, length int) { pixels = span{start, length} })
	return ts, pixels, err
}

// walk does the work of scan, reporting a top-level PixelData value of
// defined length to native.
func walk(data []byte, native func(start, length int)) (string, error) {
	pos := 0
	if len(data) >= 132 && string(data[128:132]) == "DICM" {
		pos = 132
	} else {
		return "", fmt.Errorf("%w: no DICM marker at byte 128 (not a DICOM Part 10 file)", ErrMalformed)
	}
	ts := ""
	// File meta information: explicit VR little endian, group 0002.
	for pos+4 <= len(data) && binary.LittleEndian.Uint16(data[pos:]) == 0x0002 {
		elem := binary.LittleEndian.Uint16(data[pos+2:])
		start, length, _, err := elementHeader(data, pos, true, binary.LittleEndian)
		if err != nil {
			return "", err
		}
		if length == undefined {
			return "", fmt.Errorf("%w: undefined length in the file meta information", ErrMalformed)
		}
		if elem == 0x0010 {
			ts = strings.TrimRight(string(data[start:start+int(length)]), "\x00 ")
		}
		pos = start + int(length)
	}
	if ts == "" {
		return "", fmt.Errorf("%w: no TransferSyntaxUID in the file meta information", ErrMalformed)
	}
	if ts == TSDeflatedLE {
		return ts, &ErrUnsupportedTransferSyntax{UID: ts}
	}
	var order binary.ByteOrder = binary.LittleEndian
	if ts == TSExplicitBE {
		order = binary.BigEndian
	}
	explicit := ts != TSImplicitLE
	// Sequences and items are walked into, as the parser does, with their
	// nesting bounded: the parser recurses once per level, and a file of
	// nested empty items would otherwise grow its stack to gigabytes.
	type container struct {
		end    int  // where a defined-length container ends; -1 until its delimiter
		pixels bool // encapsulated pixel data: its items are fragments, not data sets
	}
	var open []container
	for pos < len(data) {
		for len(open) > 0 && open[len(open)-1].end >= 0 && pos >= open[len(open)-1].end {
			open = open[:len(open)-1]
		}
		start, length, vr, err := elementHeader(data, pos, explicit, order)
		if err != nil {
			return ts, err
		}
		group, elem := order.Uint16(data[pos:]), order.Uint16(data[pos+2:])
		inPixels := len(open) > 0 && open[len(open)-1].pixels
		switch {
		case group == 0xFFFE && (elem == 0xE00D || elem == 0xE0DD): // delimiters
			if len(open) > 0 && open[len(open)-1].end < 0 {
				open = open[:len(open)-1]
			}
			pos = start
			continue
		case vr == "item" && inPixels: // a fragment of compressed pixel data
			if length == undefined {
				return ts, fmt.Errorf("%w: pixel data fragment at byte %d has undefined length", ErrMalformed, pos)
			}
			pos = start + int(length)
			continue
		case vr == "SQ" || vr == "item" || length == undefined:
			if len(open) == maxNesting {
				return ts, fmt.Errorf("%w: sequences nested deeper than %d at byte %d", ErrMalformed, maxNesting, pos)
			}
			c := container{end: -1, pixels: group == 0x7FE0 && elem == 0x0010}
			if length != undefined {
				c.end = start + int(length)
			}
			open = append(open, c)
			pos = start
			continue
		}
		if len(open) == 0 && group == 0x7FE0 && elem == 0x0010 {
			native(start, int(length))
		}
		pos = start + int(length)
	}
	return ts, nil
}

// maxNesting bounds sequence and item nesting; real radiograph headers nest
// a few levels.
const maxNesting = 32

const undefined = 0xFFFFFFFF

// elementHeader reads the header of the element at pos and returns where its
// value starts and its length, checking the length against the data left.
func elementHeader(data []byte, pos int, explicit bool, order binary.ByteOrder) (int, uint32, string, error) {
	if pos+8 > len(data) {
		return 0, 0, "", fmt.Errorf("%w: truncated element header at byte %d", ErrMalformed, pos)
	}
	group, elem := order.Uint16(data[pos:]), order.Uint16(data[pos+2:])
	var start int
	var length uint32
	vr := ""
	switch {
	case group == 0xFFFE: // item and delimiters: no VR, 4-byte length
		start, length = pos+8, order.Uint32(data[pos+4:])
		vr = "item"
	case !explicit:
		start, length = pos+8, order.Uint32(data[pos+4:])
		if info, err := tag.Find(tag.Tag{Group: group, Element: elem}); err == nil && len(info.VRs) > 0 {
			vr = info.VRs[0]
		}
	default:
		vr = string(data[pos+4 : pos+6])
		switch vr {
		case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
			if pos+12 > len(data) {
				return 0, 0, "", fmt.Errorf("%w: truncated element header at byte %d", ErrMalformed, pos)
			}
			start, length = pos+12, order.Uint32(data[pos+8:])
		default:
			start, length = pos+8, uint32(order.Uint16(data[pos+6:]))
		}
	}
	// Undefined length is legal only where the parser walks into the value
	// (sequences, items, encapsulated pixel data); anywhere else the parser
	// would allocate 4 GiB for it.
	if length == undefined && vr != "SQ" && vr != "item" && !(group == 0x7FE0 && elem == 0x0010) {
		return 0, 0, "", fmt.Errorf("%w: element (%04X,%04X) at byte %d has undefined length but is not a sequence", ErrMalformed, group, elem, pos)
	}
	if length != undefined && uint64(start)+uint64(length) > uint64(len(data)) {
		return 0, 0, "", fmt.Errorf("%w: element (%04X,%04X) at byte %d claims %d bytes, %d are left",
			ErrMalformed, group, elem, pos, length, len(data)-start)
	}
	return start, length, vr, nil
}
