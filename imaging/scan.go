package imaging

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// span is where a value lies in a buffer; length 0 when absent.
type span struct{ start, length int }

func (s span) of(b []byte) []byte { return b[s.start : s.start+s.length] }

// fragment is one item of encapsulated pixel data: where its item tag
// starts, relative to the first item after the basic offset table (the
// origin of the offset tables), and its value.
type fragment struct {
	item  int
	value span
}

// layout is where things lie in a file, found by walking its element
// headers without the parser.
type layout struct {
	ts         string // the file's transfer syntax
	body       []byte // the data set: the file's own bytes, or inflated (Deflated), or the whole file (no file meta)
	order      binary.ByteOrder
	explicitVR bool
	// headerEnd is where the top-level PixelData element starts (or the end
	// of body): the parser reads body[:headerEnd], without the cuts.
	headerEnd              int
	cuts                   []span // top-level elements the parser cannot read (undefined-length UN inside), dropped for it
	native                 span   // native PixelData value
	nativeVR               string // its VR in explicit VR syntaxes (OB or OW)
	encaps                 bool   // PixelData is encapsulated
	offsets                span   // basic offset table
	fragments              []fragment
	extOffsets, extLengths span // Extended Offset Table (7FE0,0001) and its lengths (7FE0,0002)
}

// knownSyntaxes are the transfer syntaxes the walker knows the encoding of.
var knownSyntaxes = map[string]bool{
	TSImplicitLE: true, TSExplicitLE: true, TSDeflatedLE: true, TSExplicitBE: true, TSJPEGBaseline: true,
	TSJPEGExtended: true, TSJPEGLossless: true, TSJPEGLosslessF: true, TSJPEGLS: true, TSJPEGLSNear: true,
	TSJPEG2000LL: true, TSJPEG2000: true, TSRLE: true, TSHTJ2KLossless: true, TSHTJ2KLosslessRPCL: true, TSHTJ2K: true,
	TSJPEG2000MCLL: true, TSJPEG2000MC: true,
}

// layOut finds a file's transfer syntax and data set and walks the data
// set's element headers, checking each defined value length against the
// bytes that are left: the DICOM parser allocates a value's length before
// reading it, so a forged length of 4 GiB in a tiny file would otherwise
// cost gigabytes; after this walk no allocation exceeds a small multiple of
// the input size. A file without the 128-byte preamble and "DICM" is read as a bare
// data set in Implicit VR Little Endian (PS3.10 7.1 allows only Part 10
// files, but archives hold such files); maxInflated bounds a Deflated data
// set after inflating.
func layOut(data []byte, maxInflated int64) (*layout, error) {
	ts, pos, err := fileMeta(data)
	if err != nil {
		return nil, err
	}
	l := &layout{order: binary.LittleEndian, ts: ts, body: data[pos:]}
	if l.ts == TSDeflatedLE {
		inflated, err := inflate(l.body, maxInflated)
		if err != nil {
			return nil, err
		}
		l.body = inflated
	}
	return l, l.walk()
}

// fileMeta reads a file's transfer syntax from its file meta information
// and returns where the data set starts: Implicit VR Little Endian at byte
// 0 for a bare data set.
func fileMeta(data []byte) (ts string, bodyStart int, err error) {
	pos := 0
	switch {
	case len(data) >= 132 && string(data[128:132]) == "DICM":
		pos = 132
	case len(data) >= 4 && string(data[:4]) == "DICM": // preamble stripped
		pos = 4
	default:
		ts := bareDataSet(data)
		if ts == "" {
			return "", 0, fmt.Errorf("%w: no DICM marker at byte 128 and no data set at byte 0 (not a DICOM file)", ErrMalformed)
		}
		return ts, 0, nil
	}
	// File meta information: explicit VR little endian, group 0002.
	for pos+4 <= len(data) && binary.LittleEndian.Uint16(data[pos:]) == 0x0002 {
		elem := binary.LittleEndian.Uint16(data[pos+2:])
		start, length, _, err := elementHeader(data, pos, true, binary.LittleEndian)
		if err != nil {
			return "", 0, err
		}
		if length == undefined {
			return "", 0, fmt.Errorf("%w: undefined length in the file meta information", ErrMalformed)
		}
		if elem == 0x0010 {
			ts = strings.TrimRight(string(data[start:start+int(length)]), "\x00 ")
		}
		pos = start + int(length)
	}
	if ts == "" {
		return "", 0, fmt.Errorf("%w: no TransferSyntaxUID in the file meta information", ErrMalformed)
	}
	if !knownSyntaxes[ts] {
		return "", 0, &ErrUnsupportedTransferSyntax{UID: ts, Detail: "not a transfer syntax this decoder knows"}
	}
	return ts, pos, nil
}

// bareDataSet returns the encoding a file without file meta information
// starts in, or "": a first element of a low even group, its length fitting,
// in Explicit VR (an upper-case VR after the tag) little or big endian,
// else Implicit VR Little Endian.
func bareDataSet(data []byte) string {
	if len(data) < 8 {
		return ""
	}
	plausible := func(group uint16, length uint32) bool {
		return group >= 0x0002 && group <= 0x0010 && group%2 == 0 && uint64(length)+8 <= uint64(len(data))
	}
	explicitVR := data[4] >= 'A' && data[4] <= 'Z' && data[5] >= 'A' && data[5] <= 'Z'
	le, be := binary.LittleEndian, binary.BigEndian
	switch {
	case explicitVR && plausible(le.Uint16(data), uint32(le.Uint16(data[6:]))):
		return TSExplicitLE
	case explicitVR && plausible(be.Uint16(data), uint32(be.Uint16(data[6:]))):
		return TSExplicitBE
	case plausible(le.Uint16(data), le.Uint32(data[4:])):
		return TSImplicitLE
	}
	return ""
}

// inflate inflates a Deflated Explicit VR Little Endian data set (raw
// deflate, RFC 1951) up to max bytes.
func inflate(b []byte, max int64) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(b))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: deflated data set: %v", ErrMalformed, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: deflated data set ends early", ErrMalformed)
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("%w: deflated data set inflates past %d bytes", ErrTooLarge, max)
	}
	return out, nil
}

// walk walks the data set's elements, into sequences and items (their
// nesting bounded: the parser recurses once per level, and a file of nested
// empty items would otherwise grow its stack to gigabytes), noting where the
// pixel data lies and which top-level elements the parser cannot read: an
// element of VR UN with undefined length holds a sequence in Implicit VR
// Little Endian (PS3.5 6.2.2), which the parser refuses.
func (l *layout) walk() error {
	data := l.body
	if l.ts == TSExplicitBE {
		l.order = binary.BigEndian
	}
	l.explicitVR = l.ts != TSImplicitLE
	l.headerEnd = len(data)
	var open []container
	topStart, cut := 0, false
	pos := 0
	for pos < len(data) {
		for len(open) > 0 && open[len(open)-1].end >= 0 && pos >= open[len(open)-1].end {
			open = open[:len(open)-1]
		}
		if len(open) == 0 {
			if cut {
				l.cuts = append(l.cuts, span{topStart, pos - topStart})
				cut = false
			}
			topStart = pos
		}
		explicit, order := l.syntaxIn(open)
		inPixels := len(open) > 0 && open[len(open)-1].pixels
		start, length, vr, err := elementHeader(data, pos, explicit, order)
		if err != nil {
			return err
		}
		group, elem := order.Uint16(data[pos:]), order.Uint16(data[pos+2:])
		isPixels := group == 0x7FE0 && elem == 0x0010
		if len(open) == 0 && group >= 0x7FE0 && l.headerEnd == len(data) {
			// The parser reads no pixel data and no offset tables (VR OV).
			l.headerEnd = pos
		}
		switch {
		case group == 0xFFFE && (elem == 0xE00D || elem == 0xE0DD): // delimiters
			if len(open) > 0 && open[len(open)-1].end < 0 {
				open = open[:len(open)-1]
			}
			pos = start
			continue
		case vr == "item" && inPixels: // a fragment of compressed pixel data
			if err := l.fragment(len(open), pos, start, length); err != nil {
				return err
			}
			pos = start + int(length)
			continue
		case vr == "SQ" || vr == "item" || length == undefined:
			c, err := l.openContainer(len(open), pos, start, length, vr, isPixels)
			if err != nil {
				return err
			}
			cut = cut || c.implicit
			open = append(open, c)
			pos = start
			continue
		}
		if len(open) == 0 && group == 0x7FE0 {
			l.pixelElement(elem, start, length, vr)
		}
		pos = start + int(length)
	}
	if cut {
		l.cuts = append(l.cuts, span{topStart, pos - topStart})
	}
	return nil
}

// container is a sequence, item or encapsulated pixel data walk is inside.
type container struct {
	end      int  // where a defined-length container ends; -1 until its delimiter
	pixels   bool // encapsulated pixel data: its items are fragments, not data sets
	implicit bool // an undefined-length UN: Implicit VR Little Endian inside
}

// syntaxIn is how elements are encoded inside the open containers: the
// file's transfer syntax, or Implicit VR Little Endian within an
// undefined-length UN.
func (l *layout) syntaxIn(open []container) (explicit bool, order binary.ByteOrder) {
	explicit, order = l.explicitVR, l.order
	for _, c := range open {
		if c.implicit {
			explicit, order = false, binary.LittleEndian
		}
	}
	return explicit, order
}

// fragment records a fragment of encapsulated pixel data at pos, its value
// at start (the first is the basic offset table); depth is how many
// containers are open.
func (l *layout) fragment(depth, pos, start int, length uint32) error {
	if length == undefined {
		return fmt.Errorf("%w: pixel data fragment at byte %d has undefined length", ErrMalformed, pos)
	}
	if depth != 1 {
		return nil
	}
	if !l.encaps {
		return fmt.Errorf("%w: pixel data fragment outside the pixel data", ErrMalformed)
	}
	if l.offsets.start == 0 && l.fragments == nil {
		l.offsets = span{start, int(length)}
		l.fragments = []fragment{}
	} else {
		l.fragments = append(l.fragments, fragment{item: pos - (l.offsets.start + l.offsets.length), value: span{start, int(length)}})
	}
	return nil
}

// openContainer is the container that the element at pos (a sequence, an item or
// an undefined length) opens, its content at start; depth is how many are
// open already.
func (l *layout) openContainer(depth, pos, start int, length uint32, vr string, isPixels bool) (container, error) {
	if depth == maxNesting {
		return container{}, fmt.Errorf("%w: sequences nested deeper than %d at byte %d", ErrMalformed, maxNesting, pos)
	}
	c := container{end: -1, pixels: isPixels}
	if length != undefined {
		c.end = start + int(length)
	}
	if length == undefined && !isPixels && vr != "SQ" && vr != "item" {
		// UN (explicit VR) or a private tag the dictionary does
		// not know (implicit VR): a sequence the parser cannot read.
		c.implicit = true
	}
	if isPixels && depth == 0 {
		l.encaps = true
	}
	return c, nil
}

// pixelElement records a top-level pixel data element (7FE0,elem): native
// pixel data or the extended offset table.
func (l *layout) pixelElement(elem uint16, start int, length uint32, vr string) {
	switch elem {
	case 0x0010:
		l.native, l.nativeVR = span{start, int(length)}, vr
	case 0x0001:
		l.extOffsets = span{start, int(length)}
	case 0x0002:
		l.extLengths = span{start, int(length)}
	}
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
	// Undefined length is legal only where the walk goes into the value
	// (sequences, items, UN sequences, encapsulated pixel data); anywhere
	// else the parser would allocate 4 GiB for it.
	if length == undefined && vr != "SQ" && vr != "item" && vr != "UN" && (explicit || vr != "") && !(group == 0x7FE0 && elem == 0x0010) {
		return 0, 0, "", fmt.Errorf("%w: element (%04X,%04X) at byte %d has undefined length but is not a sequence", ErrMalformed, group, elem, pos)
	}
	if length != undefined && uint64(start)+uint64(length) > uint64(len(data)) {
		return 0, 0, "", fmt.Errorf("%w: element (%04X,%04X) at byte %d claims %d bytes, %d are left",
			ErrMalformed, group, elem, pos, length, len(data)-start)
	}
	return start, length, vr, nil
}

// parserInput is what the DICOM parser reads for the header: a Part 10
// file with a minimal file meta group naming the data set's encoding
// (Explicit VR Little Endian for an inflated data set), then the data set up
// to the pixel data, without the cut elements.
func (l *layout) parserInput() []byte {
	ts := l.ts
	if ts == TSDeflatedLE || (ts != TSImplicitLE && ts != TSExplicitBE) {
		ts = TSExplicitLE // encapsulated syntaxes encode the data set so
	}
	if len(ts)%2 == 1 {
		ts += "\x00"
	}
	var b bytes.Buffer
	b.Grow(132 + 40 + l.headerEnd)
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	meta := func(elem uint16, vr string, value []byte) {
		var h [12]byte
		binary.LittleEndian.PutUint16(h[0:], 0x0002)
		binary.LittleEndian.PutUint16(h[2:], elem)
		copy(h[4:], vr)
		if vr == "OB" {
			binary.LittleEndian.PutUint32(h[8:], uint32(len(value)))
			b.Write(h[:12])
		} else {
			binary.LittleEndian.PutUint16(h[6:], uint16(len(value)))
			b.Write(h[:8])
		}
		b.Write(value)
	}
	var groupLength [4]byte
	binary.LittleEndian.PutUint32(groupLength[:], uint32(12+2+8+len(ts)))
	meta(0x0000, "UL", groupLength[:])
	meta(0x0001, "OB", []byte{0, 1})
	meta(0x0010, "UI", []byte(ts))
	at := 0
	for _, c := range l.cuts {
		if c.start >= l.headerEnd {
			break
		}
		b.Write(l.body[at:c.start])
		at = c.start + c.length
	}
	if at < l.headerEnd {
		b.Write(l.body[at:l.headerEnd])
	}
	return b.Bytes()
}
