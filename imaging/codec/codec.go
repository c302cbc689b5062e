// Package codec decodes the compressed pixel data of DICOM files with codec
// libraries made for it, called through cgo: IJG 6b with its lossless
// extension as GDCM ships it (libgdcmjpeg8/12/16: JPEG baseline, extended
// 12-bit and lossless processes 14 and 14 SV1 of 2-16 bits), CharLS (JPEG-LS
// lossless and near-lossless) and OpenJPEG 2.5 (JPEG 2000 Part 1, and the
// High-Throughput Part 15 that OpenJPEG decodes from 2.5.0 on, used only
// from 2.5.1: see HTSafe).
//
// Each function reads the stream's header first and hands it to accept,
// which may refuse it (a size limit, a mismatch with the DICOM header)
// before any pixel buffer is allocated; the buffer is then allocated in Go
// at the size the header gives, and the library decodes into it.
//
// Built without cgo, or with the build tag nocodecs, every function returns
// ErrNotBuilt.
package codec

import "errors"

// Errors of decoding: a stream the library refuses as corrupt, a feature it
// lacks, or a build without the libraries.
var (
	ErrCorrupt     = errors.New("codec: corrupt stream")
	ErrUnsupported = errors.New("codec: unsupported stream")
	ErrNotBuilt    = errors.New("codec: this build has no codec libraries (built without cgo or with -tags nocodecs)")
)

// Info is what a stream's header says.
type Info struct {
	Columns, Rows int
	Components    int
	Precision     int  // bits per sample
	Signed        bool // two's complement samples (JPEG 2000)
	Planar        bool // samples lie plane by plane (JPEG-LS without interleaving)
	Lossy         bool // the stream itself is lossy: DCT, near-lossless, 9-7 wavelet
	YCbCr         bool // JPEG: a JFIF or Adobe marker says the components are YCbCr
}

// Frame is a decoded frame: the samples as coded, without colour conversion,
// interleaved by pixel unless Info.Planar. Bytes holds them when Precision
// is at most 8, Words otherwise (two's complement bit patterns when Signed).
type Frame struct {
	Info
	Bytes []byte
	Words []uint16
}

// Samples is the number of samples the frame holds.
func (i Info) Samples() int { return i.Columns * i.Rows * i.Components }

// sampleBytes is the size of one decoded sample.
func (i Info) sampleBytes() int {
	if i.Precision <= 8 {
		return 1
	}
	return 2
}
