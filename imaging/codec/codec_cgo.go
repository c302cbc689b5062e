//go:build cgo && !nocodecs

package codec

/*
#cgo CFLAGS: -I/usr/include/gdcm-3.0 -I/usr/include/openjpeg-2.5 -O2
#cgo LDFLAGS: -lgdcmjpeg8 -lgdcmjpeg12 -lgdcmjpeg16 -lcharls -lopenjp2
#include <stdlib.h>
#include <openjpeg.h>
#include "codec.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Built reports whether this build has the codec libraries.
func Built() bool { return true }

// HTSafe reports whether the linked OpenJPEG decodes High-Throughput code
// blocks without aborting on malformed ones: 2.5.1 or later.
func HTSafe() bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(C.GoString(C.opj_version()), "%d.%d.%d", &major, &minor, &patch); err != nil {
		return false
	}
	return major > 2 || (major == 2 && (minor > 5 || (minor == 5 && patch >= 1)))
}

// library is one C decoder: a header reader and a decoder.
type library struct {
	name   string
	header func(src *C.uchar, n C.size_t, info *C.ot_info) C.int
	decode func(src *C.uchar, n C.size_t, dst unsafe.Pointer, dstLen C.size_t, info *C.ot_info) C.int
}

var (
	ijg8 = library{"JPEG (IJG 8-bit)",
		func(s *C.uchar, n C.size_t, i *C.ot_info) C.int { return C.ot_ijg8_header(s, n, i) },
		func(s *C.uchar, n C.size_t, d unsafe.Pointer, dl C.size_t, i *C.ot_info) C.int {
			return C.ot_ijg8_decode(s, n, d, dl, i)
		}}
	ijg12 = library{"JPEG (IJG 12-bit)",
		func(s *C.uchar, n C.size_t, i *C.ot_info) C.int { return C.ot_ijg12_header(s, n, i) },
		func(s *C.uchar, n C.size_t, d unsafe.Pointer, dl C.size_t, i *C.ot_info) C.int {
			return C.ot_ijg12_decode(s, n, d, dl, i)
		}}
	ijg16 = library{"JPEG (IJG 16-bit)",
		func(s *C.uchar, n C.size_t, i *C.ot_info) C.int { return C.ot_ijg16_header(s, n, i) },
		func(s *C.uchar, n C.size_t, d unsafe.Pointer, dl C.size_t, i *C.ot_info) C.int {
			return C.ot_ijg16_decode(s, n, d, dl, i)
		}}
	charls = library{"JPEG-LS (CharLS)",
		func(s *C.uchar, n C.size_t, i *C.ot_info) C.int { return C.ot_jls_header(s, n, i) },
		func(s *C.uchar, n C.size_t, d unsafe.Pointer, dl C.size_t, i *C.ot_info) C.int {
			return C.ot_jls_decode(s, n, d, dl, i)
		}}
	openjpeg = library{"JPEG 2000 (OpenJPEG)",
		func(s *C.uchar, n C.size_t, i *C.ot_info) C.int { return C.ot_j2k_header(s, n, i) },
		func(s *C.uchar, n C.size_t, d unsafe.Pointer, dl C.size_t, i *C.ot_info) C.int {
			return C.ot_j2k_decode(s, n, d, dl, i)
		}}
)

// JPEG decodes a JPEG stream of any process IJG 6b knows: baseline and
// extended (8 and 12 bits), lossless (2-16 bits, any predictor). The
// library is picked by the precision in the frame header.
func JPEG(src []byte, accept func(Info) error) (*Frame, error) {
	prec, lossless, err := jpegFrameHeader(src)
	if err != nil {
		return nil, err
	}
	lib := ijg8
	switch {
	case prec <= 8:
	case lossless && prec <= 16:
		lib = ijg16
	case !lossless && prec == 12:
		lib = ijg12
	default:
		return nil, fmt.Errorf("%w: JPEG of %d-bit precision (lossless %v)", ErrUnsupported, prec, lossless)
	}
	return lib.run(src, accept)
}

// JPEGLS decodes a JPEG-LS stream, lossless or near-lossless, 2-16 bits.
// A stream must end with its end-of-image marker (after padding): CharLS
// 2.4 spends about ten seconds on a stream that ends inside its scan.
func JPEGLS(src []byte, accept func(Info) error) (*Frame, error) {
	if !endsWithEOI(src) {
		return nil, fmt.Errorf("%w: JPEG-LS stream without its end-of-image marker (truncated)", ErrCorrupt)
	}
	return charls.run(src, accept)
}

// JPEG2000 decodes a JPEG 2000 code stream (or a JP2 file), including
// High-Throughput code blocks, of at most 16 bits per sample; multiple
// components come out after the inverse component transform (RCT or ICT).
//
// High-Throughput code blocks are refused with the OpenJPEG of Debian 12
// (2.5.0): its HT decoder asserts on some malformed blocks, and an
// assertion aborts the whole process (found by FuzzJPEG2000); OpenJPEG
// 2.5.1 turned that assertion into an error.
func JPEG2000(src []byte, accept func(Info) error) (*Frame, error) {
	ht, err := j2kUsesHT(src)
	if err != nil {
		return nil, err
	}
	if ht && !HTSafe() {
		return nil, fmt.Errorf("%w: High-Throughput JPEG 2000 with OpenJPEG %s (before 2.5.1 it aborts the process on some malformed HT code blocks)", ErrUnsupported, C.GoString(C.opj_version()))
	}
	return openjpeg.run(src, func(i Info) error {
		if i.Precision > 16 {
			return fmt.Errorf("%w: JPEG 2000 of %d bits per sample", ErrUnsupported, i.Precision)
		}
		return accept(i)
	})
}

func (l library) run(src []byte, accept func(Info) error) (*Frame, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("%w: %s: empty stream", ErrCorrupt, l.name)
	}
	// The C side reads src during the call only; src holds no Go pointers.
	in := (*C.uchar)(unsafe.Pointer(&src[0]))
	var ci C.ot_info
	if l.header(in, C.size_t(len(src)), &ci) != 0 {
		return nil, l.failure(&ci)
	}
	info := toInfo(&ci)
	switch {
	case info.Columns <= 0 || info.Rows <= 0 || info.Components <= 0:
		return nil, fmt.Errorf("%w: %s: %d x %d x %d samples", ErrCorrupt, l.name, info.Columns, info.Rows, info.Components)
	case info.Precision < 1 || info.Precision > 16:
		return nil, fmt.Errorf("%w: %s: %d bits per sample", ErrUnsupported, l.name, info.Precision)
	}
	if err := accept(info); err != nil {
		return nil, err
	}
	f := &Frame{Info: info}
	var dst unsafe.Pointer
	n := info.Samples()
	if info.sampleBytes() == 1 {
		f.Bytes = make([]byte, n)
		dst = unsafe.Pointer(&f.Bytes[0])
	} else {
		f.Words = make([]uint16, n)
		dst = unsafe.Pointer(&f.Words[0])
	}
	if l.decode(in, C.size_t(len(src)), dst, C.size_t(n*info.sampleBytes()), &ci) != 0 {
		return nil, l.failure(&ci)
	}
	if got := toInfo(&ci); got.Columns != info.Columns || got.Rows != info.Rows || got.Components != info.Components || got.Precision != info.Precision {
		return nil, fmt.Errorf("%w: %s: the header changed between reads", ErrCorrupt, l.name)
	}
	return f, nil
}

func (l library) failure(ci *C.ot_info) error {
	msg := C.GoString(&ci.msg[0])
	if msg == "" {
		msg = "no reason given"
	}
	if ci.unsupported != 0 {
		return fmt.Errorf("%w: %s: %s", ErrUnsupported, l.name, msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, l.name, msg)
}

func toInfo(ci *C.ot_info) Info {
	return Info{
		Columns: int(ci.width), Rows: int(ci.height), Components: int(ci.components), Precision: int(ci.precision),
		Signed: ci.is_signed != 0, Planar: ci.planar != 0, Lossy: ci.lossy != 0, YCbCr: ci.ycbcr != 0,
	}
}
