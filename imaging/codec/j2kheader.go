package codec

import (
	"encoding/binary"
	"fmt"
)

// j2kUsesHT reports whether a JPEG 2000 code stream (or JP2 file) codes any
// code block with the High-Throughput block coder (ITU-T T.814): a CAP
// marker, the Part 15 bit of Rsiz, or the HT bit (0x40) of a code-block
// style in a COD or COC marker of the main or any tile-part header. OpenJPEG
// picks its HT decoder from exactly these fields.
func j2kUsesHT(src []byte) (bool, error) {
	cs, err := codestream(src)
	if err != nil {
		return false, err
	}
	bad := func(what string, at int) error {
		return fmt.Errorf("%w: JPEG 2000: %s at byte %d", ErrCorrupt, what, at)
	}
	if len(cs) < 4 || cs[0] != 0xFF || cs[1] != 0x4F {
		return false, bad("no SOC marker", 0)
	}
	csiz := 0
	pos := 2
	// headers walks marker segments from pos until SOT (main header) or SOD
	// (tile-part header) and reports whether one says HT.
	headers := func(main bool) (bool, error) {
		for {
			if pos+4 > len(cs) || cs[pos] != 0xFF {
				return false, bad("truncated header", pos)
			}
			marker := cs[pos+1]
			if (main && marker == 0x90) || (!main && marker == 0x93) {
				return false, nil
			}
			length := int(binary.BigEndian.Uint16(cs[pos+2:]))
			end := pos + 2 + length
			if length < 2 || end > len(cs) {
				return false, bad("marker segment past the end", pos)
			}
			seg := cs[pos+4 : end]
			switch marker {
			case 0x50: // CAP: Part 15 capabilities
				return true, nil
			case 0x51: // SIZ
				if len(seg) < 36 {
					return false, bad("short SIZ", pos)
				}
				if binary.BigEndian.Uint16(seg)&0x4000 != 0 {
					return true, nil
				}
				csiz = int(binary.BigEndian.Uint16(seg[34:]))
			case 0x52: // COD: Scod, SGcod (4), levels, width, height, style
				if len(seg) < 9 {
					return false, bad("short COD", pos)
				}
				if seg[8]&0x40 != 0 {
					return true, nil
				}
			case 0x53: // COC: Ccoc (1 or 2 bytes), Scoc, levels, width, height, style
				at := 1 + 1 + 3
				if csiz >= 257 {
					at++
				}
				if len(seg) <= at {
					return false, bad("short COC", pos)
				}
				if seg[at]&0x40 != 0 {
					return true, nil
				}
			}
			pos = end
		}
	}
	if ht, err := headers(true); ht || err != nil {
		return ht, err
	}
	for pos+2 <= len(cs) && cs[pos] == 0xFF && cs[pos+1] == 0x90 { // SOT
		if pos+12 > len(cs) {
			return false, bad("truncated SOT", pos)
		}
		start := pos
		psot := int(binary.BigEndian.Uint32(cs[pos+6:]))
		pos += 12
		if ht, err := headers(false); ht || err != nil {
			return ht, err
		}
		if psot == 0 { // the last tile-part runs to the end
			break
		}
		if psot < 14 || start+psot > len(cs) {
			return false, bad("tile-part length past the end", start)
		}
		pos = start + psot
	}
	return false, nil
}

// codestream returns the code stream of a JP2 file (its jp2c box), or src.
func codestream(src []byte) ([]byte, error) {
	if len(src) < 12 || string(src[4:8]) != "jP  " {
		return src, nil
	}
	pos := 0
	for pos+8 <= len(src) {
		size := uint64(binary.BigEndian.Uint32(src[pos:]))
		kind := string(src[pos+4 : pos+8])
		head := uint64(8)
		switch size {
		case 0:
			size = uint64(len(src) - pos)
		case 1:
			if pos+16 > len(src) {
				return nil, fmt.Errorf("%w: JP2 box header truncated", ErrCorrupt)
			}
			size, head = binary.BigEndian.Uint64(src[pos+8:]), 16
		}
		if size < head || uint64(pos)+size > uint64(len(src)) {
			return nil, fmt.Errorf("%w: JP2 box %q past the end", ErrCorrupt, kind)
		}
		if kind == "jp2c" {
			return src[pos+int(head) : pos+int(size)], nil
		}
		pos += int(size)
	}
	return nil, fmt.Errorf("%w: JP2 file without a code stream box", ErrCorrupt)
}
