// Package imaging gets radiographs from where hospitals keep them (DICOMweb
// servers, FHIR attachments) and decodes them to calibrated grayscale. It
// knows nothing of models.
//
// Decoding reads every transfer syntax an archive stores radiographs in:
// native (implicit and explicit VR, little and big endian), Deflated, RLE
// (in Go, PS3.5 Annex G), and through package codec the compressed ones:
// JPEG baseline, extended 12-bit and lossless (processes 14 and 14 SV1,
// 2-16 bits), JPEG-LS lossless and near-lossless, JPEG 2000 lossless and
// lossy (also multi-component, RCT/ICT) and HTJ2K (with OpenJPEG 2.5.1 or
// later: codec.HTSafe).
//
// Why these libraries: GDCM (Debian libgdcm-dev) covers every syntax, but
// its codec classes are C++ built with assertions on in Debian's package
// (a malformed stream can abort the whole process) and copy each frame
// several times; what GDCM itself decodes with is the right set of
// libraries, so package codec calls them directly through small C
// wrappers: the IJG 6b with the lossless extension that GDCM ships
// (libgdcmjpeg8/12/16, the same IJG lineage as dcmtk's; Debian 12's
// libjpeg-turbo 2.1 has no lossless process and no 12-bit build), CharLS 2.4
// (JPEG-LS, its C API) and OpenJPEG 2.5 (JPEG 2000; from 2.5.0 also
// High-Throughput JPEG 2000, used from 2.5.1 on: 2.5.0 aborts on some
// malformed HT streams). Nothing of the codecs is written by hand here
// but the RLE decoder and the JPEG frame-header scan that picks the IJG
// build. The DICOM header is read by github.com/suyashkumar/dicom; where
// the pixel data lies (fragments, offset tables) is found by this package's
// own walk of the element headers, which also bounds every length first.
//
// Memory: stored values stay as compact as they were decoded (often a view
// of the file's own bytes); the modality rescale and VOI are one lookup
// table over the possible stored values (at most 2^16 entries), so decoding
// holds the display pixels (4 bytes each) and at most 2 bytes a pixel of
// decoded samples beyond the file.
package imaging

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/orthotriage/orthotriage/imaging/codec"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Transfer syntaxes this package names.
const (
	TSImplicitLE    = "1.2.840.10008.1.2"
	TSExplicitLE    = "1.2.840.10008.1.2.1"
	TSDeflatedLE    = "1.2.840.10008.1.2.1.99"
	TSExplicitBE    = "1.2.840.10008.1.2.2"
	TSJPEGBaseline  = "1.2.840.10008.1.2.4.50"
	TSJPEGExtended  = "1.2.840.10008.1.2.4.51"
	TSJPEGLossless  = "1.2.840.10008.1.2.4.57"
	TSJPEGLosslessF = "1.2.840.10008.1.2.4.70" // first-order prediction (SV1)
	TSJPEGLS        = "1.2.840.10008.1.2.4.80"
	TSJPEGLSNear    = "1.2.840.10008.1.2.4.81"
	TSJPEG2000LL    = "1.2.840.10008.1.2.4.90"
	TSJPEG2000      = "1.2.840.10008.1.2.4.91"
	TSRLE           = "1.2.840.10008.1.2.5"
	// JPEG 2000 Part 2 multi-component: named, not decoded.
	TSJPEG2000MCLL = "1.2.840.10008.1.2.4.92"
	TSJPEG2000MC   = "1.2.840.10008.1.2.4.93"
	// High-Throughput JPEG 2000 (PS3.5 A.4.11).
	TSHTJ2KLossless     = "1.2.840.10008.1.2.4.201"
	TSHTJ2KLosslessRPCL = "1.2.840.10008.1.2.4.202"
	TSHTJ2K             = "1.2.840.10008.1.2.4.203"
)

var tsNames = map[string]string{
	TSImplicitLE: "Implicit VR Little Endian", TSExplicitLE: "Explicit VR Little Endian",
	TSDeflatedLE: "Deflated Explicit VR Little Endian", TSExplicitBE: "Explicit VR Big Endian",
	TSJPEGBaseline: "JPEG Baseline", TSJPEGExtended: "JPEG Extended", TSJPEGLossless: "JPEG Lossless",
	TSJPEGLosslessF: "JPEG Lossless SV1", TSJPEGLS: "JPEG-LS Lossless", TSJPEGLSNear: "JPEG-LS Near-Lossless",
	TSJPEG2000LL: "JPEG 2000 Lossless", TSJPEG2000: "JPEG 2000", TSRLE: "RLE Lossless",
	TSJPEG2000MCLL: "JPEG 2000 Part 2 Multi-component Lossless", TSJPEG2000MC: "JPEG 2000 Part 2 Multi-component",
	TSHTJ2KLossless: "HTJ2K Lossless", TSHTJ2KLosslessRPCL: "HTJ2K Lossless RPCL", TSHTJ2K: "HTJ2K",
}

// CanDecode reports whether Decode handles transfer syntax ts locally. The
// DICOMweb client asks the server to transcode the others.
func CanDecode(ts string) bool {
	switch ts {
	case TSImplicitLE, TSExplicitLE, TSExplicitBE, TSDeflatedLE, TSRLE:
		return true
	case TSJPEGBaseline, TSJPEGExtended, TSJPEGLossless, TSJPEGLosslessF, TSJPEGLS, TSJPEGLSNear,
		TSJPEG2000LL, TSJPEG2000, TSHTJ2KLossless, TSHTJ2KLosslessRPCL, TSHTJ2K:
		return codec.Built()
	}
	return false
}

// Errors of decoding. Each message names the problem.
var (
	ErrTooLarge  = errors.New("dicom: over a size limit")
	ErrMalformed = errors.New("dicom: malformed")
	ErrNotImage  = errors.New("dicom: not a supported image")
)

// ErrUnsupportedTransferSyntax is returned for pixel data this package cannot
// decode; the retrieval layer then asks the server to transcode.
type ErrUnsupportedTransferSyntax struct {
	UID    string
	Detail string
}

func (e *ErrUnsupportedTransferSyntax) Error() string {
	name := tsNames[e.UID]
	if name == "" {
		name = "unknown"
	}
	msg := fmt.Sprintf("dicom: transfer syntax %s (%s) cannot be decoded here", e.UID, name)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Limits bound what Decode accepts; the zero value means DefaultLimits.
type Limits struct {
	MaxBytes   int64 // size of one instance
	MaxRows    int
	MaxColumns int
	MaxFrames  int
}

// DefaultLimits are 64 MiB per instance, 8192 x 8192 pixels and 16 frames.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 64 << 20, MaxRows: 8192, MaxColumns: 8192, MaxFrames: 16}
}

// Metadata describes a decoded image.
type Metadata struct {
	Rows, Columns       int
	PixelSpacing        [2]float64 // row, column spacing in mm; zero when absent
	SpacingSource       string     // PixelSpacing, ImagerPixelSpacing or empty
	Photometric         string
	TransferSyntax      string
	BitsAllocated       int
	BitsStored          int
	PixelRepresentation int
	SamplesPerPixel     int
	Modality            string
	SOPClassUID         string
	StudyInstanceUID    string
	SeriesInstanceUID   string
	SOPInstanceUID      string
	ViewPosition        string
	Laterality          string
	BodyPart            string
	Lossy               bool   // lossy compression now or in the image's history
	VOI                 string // how grayscale was windowed: window, voi-lut, min-max, none
	Source              string // where the bytes came from, set by the retriever
	Route               string // how the retriever got them: as-stored, transcoded or rendered (empty for local files)
	Frames              int    // NumberOfFrames (1 when absent)

	decoded decodedLayout
}

// Stats are the stored values (before rescale) of the first frame.
type Stats struct {
	StoredMin, StoredMax int
	StoredMean           float64
}

// Image is a decoded radiograph: display-ready grayscale in [0,1], row
// major, 1 is white (MONOCHROME1 is inverted), after the modality rescale and
// the VOI transform.
type Image struct {
	Pixels []float32
	Stored Stored // the gray stored values the pixels came from, before rescale
	Meta   Metadata
	Stats  Stats
}

// Decode decodes the first frame of a DICOM instance.
func Decode(data []byte, lim Limits) (*Image, error) { return DecodeFrame(data, 0, lim) }

// DecodeFrame decodes frame k (from 0) of a DICOM instance.
func DecodeFrame(data []byte, k int, lim Limits) (*Image, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits()
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: instance of %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	l, err := layOut(data, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	header, err := parse(l.parserInput())
	if err != nil {
		return nil, err
	}
	a := attrs{header}
	m, err := readMetadata(a, lim, l.ts)
	if err != nil {
		return nil, err
	}
	if k < 0 || k >= m.Frames {
		return nil, fmt.Errorf("%w: frame %d of %d", ErrNotImage, k, m.Frames)
	}
	px, err := frameSamples(l, &m, k)
	if err != nil {
		return nil, err
	}
	gray, err := toGray(px, &m, a)
	if err != nil {
		return nil, err
	}
	img := &Image{Meta: m, Stored: gray, Stats: stats(gray)}
	img.Pixels, img.Meta.VOI = displayValues(gray, img.Stats, a, m)
	return img, nil
}

// parse runs the DICOM parser, turning its panics (it has some on malformed
// input) into errors.
func parse(data []byte, opts ...dicom.ParseOption) (ds dicom.Dataset, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: parser failed: %v", ErrMalformed, p)
		}
	}()
	ds, err = dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, opts...)
	if err != nil {
		return ds, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return ds, nil
}

func readMetadata(a attrs, lim Limits, ts string) (Metadata, error) {
	m := Metadata{
		Rows: a.int(tag.Rows, 0), Columns: a.int(tag.Columns, 0),
		Photometric:         strings.TrimSpace(a.str(tag.PhotometricInterpretation)),
		TransferSyntax:      ts,
		BitsAllocated:       a.int(tag.BitsAllocated, 0),
		BitsStored:          a.int(tag.BitsStored, 0),
		PixelRepresentation: a.int(tag.PixelRepresentation, 0),
		SamplesPerPixel:     a.int(tag.SamplesPerPixel, 1),
		Modality:            a.str(tag.Modality),
		SOPClassUID:         a.str(tag.SOPClassUID),
		StudyInstanceUID:    a.str(tag.StudyInstanceUID),
		SeriesInstanceUID:   a.str(tag.SeriesInstanceUID),
		SOPInstanceUID:      a.str(tag.SOPInstanceUID),
		ViewPosition:        a.str(tag.ViewPosition),
		BodyPart:            a.str(tag.BodyPartExamined),
		Laterality:          a.str(tag.ImageLaterality),
		Lossy:               a.str(tag.LossyImageCompression) == "01",
		Frames:              1,
	}
	if m.Laterality == "" {
		m.Laterality = a.str(tag.Laterality)
	}
	if ps := a.floats(tag.PixelSpacing); len(ps) == 2 {
		m.PixelSpacing, m.SpacingSource = [2]float64{ps[0], ps[1]}, "PixelSpacing"
	} else if ps := a.floats(tag.ImagerPixelSpacing); len(ps) == 2 {
		m.PixelSpacing, m.SpacingSource = [2]float64{ps[0], ps[1]}, "ImagerPixelSpacing"
	}
	if s := a.str(tag.NumberOfFrames); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return m, fmt.Errorf("%w: NumberOfFrames %q", ErrMalformed, s)
		}
		m.Frames = n
	}
	switch {
	case m.Rows <= 0 || m.Columns <= 0:
		return m, fmt.Errorf("%w: no pixel matrix (Rows %d, Columns %d)", ErrNotImage, m.Rows, m.Columns)
	case m.Rows > lim.MaxRows || m.Columns > lim.MaxColumns:
		return m, fmt.Errorf("%w: %d x %d pixels, limit %d x %d", ErrTooLarge, m.Rows, m.Columns, lim.MaxRows, lim.MaxColumns)
	case m.Frames > lim.MaxFrames:
		return m, fmt.Errorf("%w: %d frames, limit %d", ErrTooLarge, m.Frames, lim.MaxFrames)
	case m.BitsAllocated != 1 && m.BitsAllocated != 8 && m.BitsAllocated != 16 && m.BitsAllocated != 32:
		return m, fmt.Errorf("%w: BitsAllocated %d (1, 8, 16 or 32 supported)", ErrNotImage, m.BitsAllocated)
	case m.BitsStored < 1 || m.BitsStored > m.BitsAllocated:
		return m, fmt.Errorf("%w: BitsStored %d with BitsAllocated %d", ErrMalformed, m.BitsStored, m.BitsAllocated)
	case a.int(tag.HighBit, m.BitsStored-1) != m.BitsStored-1:
		return m, fmt.Errorf("%w: HighBit %d is not BitsStored-1", ErrNotImage, a.int(tag.HighBit, 0))
	case m.PixelRepresentation != 0 && m.PixelRepresentation != 1:
		return m, fmt.Errorf("%w: PixelRepresentation %d", ErrMalformed, m.PixelRepresentation)
	}
	want := 3
	switch m.Photometric {
	case "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR":
		want = 1
	case "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT":
	default:
		return m, fmt.Errorf("%w: photometric interpretation %q", ErrNotImage, m.Photometric)
	}
	if m.SamplesPerPixel != want {
		return m, fmt.Errorf("%w: %s with %d samples per pixel", ErrMalformed, m.Photometric, m.SamplesPerPixel)
	}
	if m.SamplesPerPixel == 3 && m.BitsAllocated == 1 {
		return m, fmt.Errorf("%w: %s with 1-bit samples", ErrNotImage, m.Photometric)
	}
	switch m.TransferSyntax {
	case TSJPEGBaseline, TSJPEGExtended, TSJPEGLSNear, TSJPEG2000, TSHTJ2K, TSJPEG2000MC:
		m.Lossy = true
	}
	return m, nil
}

// frameSamples returns frame k's samples as stored or decoded.
func frameSamples(l *layout, m *Metadata, k int) (samples, error) {
	if !l.encaps {
		return nativeFrame(l, *m, k)
	}
	if l.native.length > 0 {
		return samples{}, fmt.Errorf("%w: PixelData both native and encapsulated", ErrMalformed)
	}
	switch m.TransferSyntax {
	case TSImplicitLE, TSExplicitLE, TSExplicitBE, TSDeflatedLE:
		return samples{}, fmt.Errorf("%w: encapsulated PixelData in the native syntax %s", ErrMalformed, m.TransferSyntax)
	}
	stream, err := frameStream(l, *m, k)
	if err != nil {
		return samples{}, err
	}
	if m.TransferSyntax == TSRLE {
		m.decoded = decodedLayout{set: true} // interleaved by pixel, whatever PlanarConfiguration says
		return decodeRLE(stream, m.Rows, m.Columns, m.SamplesPerPixel, m.BitsAllocated)
	}
	var decode func([]byte, func(codec.Info) error) (*codec.Frame, error)
	switch m.TransferSyntax {
	case TSJPEGBaseline, TSJPEGExtended, TSJPEGLossless, TSJPEGLosslessF:
		decode = codec.JPEG
	case TSJPEGLS, TSJPEGLSNear:
		decode = codec.JPEGLS
	case TSJPEG2000LL, TSJPEG2000, TSHTJ2KLossless, TSHTJ2KLosslessRPCL, TSHTJ2K:
		decode = codec.JPEG2000
	default:
		return samples{}, &ErrUnsupportedTransferSyntax{UID: m.TransferSyntax}
	}
	f, err := decode(stream, func(i codec.Info) error {
		switch {
		case i.Columns != m.Columns || i.Rows != m.Rows:
			return fmt.Errorf("%w: the compressed frame is %d x %d, the header says %d x %d", ErrMalformed, i.Columns, i.Rows, m.Columns, m.Rows)
		case i.Components != m.SamplesPerPixel:
			return fmt.Errorf("%w: the compressed frame has %d components, the header says %d samples per pixel", ErrMalformed, i.Components, m.SamplesPerPixel)
		case i.Precision > max(m.BitsAllocated, 8):
			return fmt.Errorf("%w: the compressed frame has %d-bit samples, BitsAllocated is %d", ErrMalformed, i.Precision, m.BitsAllocated)
		}
		return nil
	})
	switch {
	case errors.Is(err, codec.ErrUnsupported) || errors.Is(err, codec.ErrNotBuilt):
		return samples{}, &ErrUnsupportedTransferSyntax{UID: m.TransferSyntax, Detail: err.Error()}
	case errors.Is(err, codec.ErrCorrupt):
		return samples{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	case err != nil:
		return samples{}, err
	}
	m.Lossy = m.Lossy || f.Lossy
	m.decoded = decodedLayout{planar: f.Planar, ycbcr: f.YCbCr, set: true}
	if f.Bytes != nil {
		return bytesSamples(f.Bytes), nil
	}
	return wordSamples(f.Words), nil
}

// decodedLayout is how a codec left colour samples, which then overrides
// PlanarConfiguration.
type decodedLayout struct {
	set, planar, ycbcr bool
}

// samplesPerFrame is the number of samples a native frame holds:
// YBR_FULL_422 keeps two luma and one pair of chroma samples per two pixels.
func samplesPerFrame(m Metadata) int {
	n := m.Rows * m.Columns * m.SamplesPerPixel
	if m.Photometric == "YBR_FULL_422" {
		n = m.Rows * m.Columns * 2
	}
	return n
}

// nativeFrame returns frame k of native pixel data: a view of the file's
// bytes where they are little endian, else a copy.
func nativeFrame(l *layout, m Metadata, k int) (samples, error) {
	if l.native.length == 0 {
		return samples{}, fmt.Errorf("%w: no PixelData", ErrNotImage)
	}
	if m.Photometric == "YBR_FULL_422" && m.Columns%2 != 0 {
		return samples{}, fmt.Errorf("%w: YBR_FULL_422 with an odd number of columns (%d)", ErrMalformed, m.Columns)
	}
	n := samplesPerFrame(m)
	pixels := l.native.of(l.body)
	if m.BitsAllocated == 1 {
		bits := int64(n) * int64(m.Frames)
		if (bits+7)/8 > int64(len(pixels)) {
			return samples{}, fmt.Errorf("%w: %d frames of %d x %d 1-bit pixels need %d bytes, PixelData has %d", ErrMalformed, m.Frames, m.Rows, m.Columns, (bits+7)/8, len(pixels))
		}
		out := make([]byte, n)
		first := k * n
		for i := range out {
			b := first + i
			out[i] = pixels[b/8] >> (b % 8) & 1 // the first pixel in the lowest bit (PS3.5 8.1.1)
		}
		return bytesSamples(out), nil
	}
	size := m.BitsAllocated / 8
	need := int64(n) * int64(size) * int64(m.Frames)
	if need > int64(len(pixels)) {
		return samples{}, fmt.Errorf("%w: %d rows x %d columns x %d frames need %d bytes of pixel data, PixelData has %d",
			ErrMalformed, m.Rows, m.Columns, m.Frames, need, len(pixels))
	}
	first := k * n * size
	raw := pixels[first : first+n*size]
	big := m.TransferSyntax == TSExplicitBE
	switch {
	case size == 1 && big && l.nativeVR == "OW":
		// 8-bit samples in 16-bit words, each word big endian (PS3.5 8.1.1).
		b := make([]byte, len(raw))
		for i := range b {
			if j := (first + i) ^ 1; j < len(pixels) {
				b[i] = pixels[j]
			}
		}
		return bytesSamples(b), nil
	case size == 1:
		return bytesSamples(raw), nil
	case size == 2 && !big:
		return le16Samples(raw), nil
	case size == 4 && !big:
		return le32Samples(raw), nil
	case size == 2:
		w := make([]uint16, n)
		for i := range w {
			w[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
		}
		return wordSamples(w), nil
	default:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(uint32(raw[4*i])<<24 | uint32(raw[4*i+1])<<16 | uint32(raw[4*i+2])<<8 | uint32(raw[4*i+3]))
		}
		return intSamples(d), nil
	}
}

func stats(st Stored) Stats {
	if st.Len() == 0 {
		return Stats{}
	}
	lo, hi, sum := st.minMaxSum()
	return Stats{StoredMin: int(lo), StoredMax: int(hi), StoredMean: sum / float64(st.Len())}
}
