// Package imaging gets radiographs from where hospitals keep them (DICOMweb
// servers, FHIR attachments) and decodes them to calibrated grayscale. It
// knows nothing of models.
package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"strconv"
	"strings"

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
)

var tsNames = map[string]string{
	TSImplicitLE: "Implicit VR Little Endian", TSExplicitLE: "Explicit VR Little Endian",
	TSDeflatedLE: "Deflated Explicit VR Little Endian", TSExplicitBE: "Explicit VR Big Endian",
	TSJPEGBaseline: "JPEG Baseline", TSJPEGExtended: "JPEG Extended", TSJPEGLossless: "JPEG Lossless",
	TSJPEGLosslessF: "JPEG Lossless SV1", TSJPEGLS: "JPEG-LS Lossless", TSJPEGLSNear: "JPEG-LS Near-Lossless",
	TSJPEG2000LL: "JPEG 2000 Lossless", TSJPEG2000: "JPEG 2000", TSRLE: "RLE Lossless",
}

// CanDecode reports whether Decode handles transfer syntax ts locally. The
// DICOMweb client asks the server to transcode the others.
func CanDecode(ts string) bool {
	switch ts {
	case TSImplicitLE, TSExplicitLE, TSExplicitBE, TSRLE, TSJPEGBaseline, TSJPEGExtended:
		return true
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
	Stored []int32 // the gray stored values the pixels came from, before rescale
	Meta   Metadata
	Stats  Stats
}

// Decode decodes the first frame of a DICOM Part 10 instance.
func Decode(data []byte, lim Limits) (img *Image, err error) {
	if lim == (Limits{}) {
		lim = DefaultLimits()
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: instance of %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	_, pixelSpan, err := scan(data)
	if err != nil {
		return nil, err
	}
	header, err := parse(data, dicom.SkipPixelData())
	if err != nil {
		return nil, err
	}
	a := attrs{header}
	m, frames, err := readMetadata(a, lim)
	if err != nil {
		return nil, err
	}
	switch m.TransferSyntax {
	case TSImplicitLE, TSExplicitLE, TSExplicitBE:
		need := int64(m.Rows) * int64(m.Columns) * int64(m.SamplesPerPixel) * int64(m.BitsAllocated/8) * int64(frames)
		if need > int64(len(data)) {
			return nil, fmt.Errorf("%w: %d rows x %d columns x %d frames need %d bytes of pixel data, the instance has %d in all",
				ErrMalformed, m.Rows, m.Columns, frames, need, len(data))
		}
	default:
		if !CanDecode(m.TransferSyntax) {
			return nil, &ErrUnsupportedTransferSyntax{UID: m.TransferSyntax}
		}
	}
	samples, ok := nativeSamples(data, pixelSpan, m)
	if !ok {
		full, err := parse(data)
		if err != nil {
			return nil, err
		}
		if samples, err = pixelSamples(full, &m, frames); err != nil {
			return nil, err
		}
	}
	gray := toGray(samples, m, a.int(tag.PlanarConfiguration, 0))
	img = &Image{Meta: m, Stored: gray, Stats: stats(gray)}
	img.Pixels, img.Meta.VOI = displayValues(gray, a, m)
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

func readMetadata(a attrs, lim Limits) (Metadata, int, error) {
	m := Metadata{
		Rows: a.int(tag.Rows, 0), Columns: a.int(tag.Columns, 0),
		Photometric:         strings.TrimSpace(a.str(tag.PhotometricInterpretation)),
		TransferSyntax:      a.str(tag.TransferSyntaxUID),
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
	}
	if m.Laterality == "" {
		m.Laterality = a.str(tag.Laterality)
	}
	if ps := a.floats(tag.PixelSpacing); len(ps) == 2 {
		m.PixelSpacing, m.SpacingSource = [2]float64{ps[0], ps[1]}, "PixelSpacing"
	} else if ps := a.floats(tag.ImagerPixelSpacing); len(ps) == 2 {
		m.PixelSpacing, m.SpacingSource = [2]float64{ps[0], ps[1]}, "ImagerPixelSpacing"
	}
	frames := 1
	if s := a.str(tag.NumberOfFrames); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return m, 0, fmt.Errorf("%w: NumberOfFrames %q", ErrMalformed, s)
		}
		frames = n
	}
	if m.TransferSyntax == "" {
		return m, 0, fmt.Errorf("%w: no TransferSyntaxUID in the file meta information", ErrMalformed)
	}
	switch {
	case m.Rows <= 0 || m.Columns <= 0:
		return m, 0, fmt.Errorf("%w: no pixel matrix (Rows %d, Columns %d)", ErrNotImage, m.Rows, m.Columns)
	case m.Rows > lim.MaxRows || m.Columns > lim.MaxColumns:
		return m, 0, fmt.Errorf("%w: %d x %d pixels, limit %d x %d", ErrTooLarge, m.Rows, m.Columns, lim.MaxRows, lim.MaxColumns)
	case frames > lim.MaxFrames:
		return m, 0, fmt.Errorf("%w: %d frames, limit %d", ErrTooLarge, frames, lim.MaxFrames)
	case m.BitsAllocated != 8 && m.BitsAllocated != 16:
		return m, 0, fmt.Errorf("%w: BitsAllocated %d (8 or 16 supported)", ErrNotImage, m.BitsAllocated)
	case m.BitsStored < 1 || m.BitsStored > m.BitsAllocated:
		return m, 0, fmt.Errorf("%w: BitsStored %d with BitsAllocated %d", ErrMalformed, m.BitsStored, m.BitsAllocated)
	case a.int(tag.HighBit, m.BitsStored-1) != m.BitsStored-1:
		return m, 0, fmt.Errorf("%w: HighBit %d is not BitsStored-1", ErrNotImage, a.int(tag.HighBit, 0))
	case m.PixelRepresentation != 0 && m.PixelRepresentation != 1:
		return m, 0, fmt.Errorf("%w: PixelRepresentation %d", ErrMalformed, m.PixelRepresentation)
	}
	switch m.Photometric {
	case "MONOCHROME1", "MONOCHROME2":
		if m.SamplesPerPixel != 1 {
			return m, 0, fmt.Errorf("%w: %s with %d samples per pixel", ErrMalformed, m.Photometric, m.SamplesPerPixel)
		}
	case "RGB", "YBR_FULL", "YBR_FULL_422":
		if m.SamplesPerPixel != 3 {
			return m, 0, fmt.Errorf("%w: %s with %d samples per pixel", ErrMalformed, m.Photometric, m.SamplesPerPixel)
		}
	default:
		return m, 0, fmt.Errorf("%w: photometric interpretation %q", ErrNotImage, m.Photometric)
	}
	switch m.TransferSyntax {
	case TSJPEGBaseline, TSJPEGExtended, TSJPEGLSNear, TSJPEG2000:
		m.Lossy = true
	}
	return m, frames, nil
}

// pixelSamples returns the first frame's samples (interleaved as stored),
// masked to BitsStored and sign-extended when signed.
// nativeSamples reads the first frame of little-endian native pixel data
// straight from the file's bytes (the parser reads it a sample at a time,
// which was more than half of the decoding time), with the same masking
// and sign extension as pixelSamples. ok is false where it does not apply
// (big endian, compressed, unusual bit depths): the parser reads those.
func nativeSamples(data []byte, sp span, m Metadata) (samples []int32, ok bool) {
	if (m.TransferSyntax != TSExplicitLE && m.TransferSyntax != TSImplicitLE) || sp.length == 0 {
		return nil, false
	}
	n := m.Rows * m.Columns * m.SamplesPerPixel
	bytesPer := m.BitsAllocated / 8
	if (m.BitsAllocated != 8 && m.BitsAllocated != 16) || n <= 0 || n*bytesPer > sp.length || sp.start+sp.length > len(data) {
		return nil, false
	}
	raw := data[sp.start : sp.start+n*bytesPer]
	out := make([]int32, n)
	if bytesPer == 1 {
		for i, v := range raw {
			out[i] = int32(v)
		}
	} else {
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	}
	maskSamples(out, m)
	return out, true
}

// maskSamples keeps BitsStored bits of each sample and sign-extends them
// when PixelRepresentation is 1.
func maskSamples(raw []int32, m Metadata) {
	mask := int32(1)<<m.BitsStored - 1
	sign := int32(1) << (m.BitsStored - 1)
	for i, v := range raw {
		v &= mask
		if m.PixelRepresentation == 1 && v&sign != 0 {
			v -= mask + 1
		}
		raw[i] = v
	}
}

func pixelSamples(ds dicom.Dataset, m *Metadata, frames int) ([]int32, error) {
	el, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return nil, fmt.Errorf("%w: no PixelData", ErrNotImage)
	}
	info, ok := el.Value.GetValue().(dicom.PixelDataInfo)
	if !ok || len(info.Frames) == 0 || info.Frames[0] == nil {
		return nil, fmt.Errorf("%w: PixelData holds no frame", ErrMalformed)
	}
	var raw []int32
	if !info.IsEncapsulated {
		nf, err := info.Frames[0].GetNativeFrame()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		raw = make([]int32, 0, m.Rows*m.Columns*m.SamplesPerPixel)
		switch d := nf.RawDataSlice().(type) {
		case []uint8:
			for _, v := range d {
				raw = append(raw, int32(v))
			}
		case []uint16:
			for _, v := range d {
				raw = append(raw, int32(v))
			}
		default:
			return nil, fmt.Errorf("%w: native pixel data of type %T", ErrNotImage, d)
		}
	} else {
		// The parser makes one "frame" per fragment; a single-frame image's
		// fragments together are its one compressed frame.
		var stream []byte
		if frames == 1 {
			for _, f := range info.Frames {
				stream = append(stream, f.EncapsulatedData.Data...)
			}
		} else {
			stream = info.Frames[0].EncapsulatedData.Data
		}
		raw, err = decodeCompressed(stream, m)
		if err != nil {
			return nil, err
		}
	}
	n := m.Rows * m.Columns * m.SamplesPerPixel // after decoding: a colour JPEG becomes gray
	if len(raw) < n {
		return nil, fmt.Errorf("%w: %d samples for %d x %d x %d", ErrMalformed, len(raw), m.Rows, m.Columns, m.SamplesPerPixel)
	}
	raw = raw[:n]
	maskSamples(raw, *m)
	return raw, nil
}

func decodeCompressed(stream []byte, m *Metadata) ([]int32, error) {
	switch m.TransferSyntax {
	case TSRLE:
		return decodeRLE(stream, m.Rows, m.Columns, m.SamplesPerPixel, m.BitsAllocated)
	case TSJPEGBaseline, TSJPEGExtended:
		// The JPEG's own frame header sizes the decoder's buffers: check it
		// against the DICOM header before decoding.
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(stream))
		if err == nil && (cfg.Width != m.Columns || cfg.Height != m.Rows) {
			return nil, fmt.Errorf("%w: JPEG is %dx%d, header says %dx%d", ErrMalformed, cfg.Width, cfg.Height, m.Columns, m.Rows)
		}
		im, err := jpeg.Decode(bytes.NewReader(stream))
		if err != nil {
			if strings.Contains(err.Error(), "unsupported") {
				return nil, &ErrUnsupportedTransferSyntax{UID: m.TransferSyntax, Detail: err.Error()}
			}
			return nil, fmt.Errorf("%w: JPEG: %v", ErrMalformed, err)
		}
		return jpegSamples(im, m)
	}
	return nil, &ErrUnsupportedTransferSyntax{UID: m.TransferSyntax}
}

// jpegSamples takes the decoder's output as stored samples. A colour JPEG's
// luma is kept as a single gray channel (YBR_FULL_422's Y).
func jpegSamples(im image.Image, m *Metadata) ([]int32, error) {
	b := im.Bounds()
	if b.Dx() != m.Columns || b.Dy() != m.Rows {
		return nil, fmt.Errorf("%w: JPEG is %dx%d, header says %dx%d", ErrMalformed, b.Dx(), b.Dy(), m.Columns, m.Rows)
	}
	out := make([]int32, 0, m.Rows*m.Columns*m.SamplesPerPixel)
	switch im := im.(type) {
	case *image.Gray:
		for y := 0; y < b.Dy(); y++ {
			for _, v := range im.Pix[y*im.Stride : y*im.Stride+b.Dx()] {
				out = append(out, int32(v))
			}
		}
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				out = append(out, int32(im.Y[im.YOffset(x, y)]))
			}
		}
		m.SamplesPerPixel, m.Photometric = 1, grayOf(m.Photometric)
	default:
		return nil, &ErrUnsupportedTransferSyntax{UID: m.TransferSyntax, Detail: fmt.Sprintf("JPEG colour model %T", im)}
	}
	return out, nil
}

// grayOf keeps MONOCHROME1/2 and maps colour to MONOCHROME2 (the Y channel).
func grayOf(p string) string {
	if strings.HasPrefix(p, "MONOCHROME") {
		return p
	}
	return "MONOCHROME2"
}

// toGray reduces samples to one gray value per pixel: luminance for RGB,
// the Y channel for YBR.
func toGray(s []int32, m Metadata, planar int) []int32 {
	if m.SamplesPerPixel == 1 {
		return s
	}
	n := m.Rows * m.Columns
	at := func(i, c int) float64 {
		if planar == 1 {
			return float64(s[c*n+i])
		}
		return float64(s[i*3+c])
	}
	out := make([]int32, n)
	for i := range out {
		if m.Photometric == "RGB" {
			out[i] = int32(math.Round(0.299*at(i, 0) + 0.587*at(i, 1) + 0.114*at(i, 2)))
		} else {
			out[i] = int32(at(i, 0))
		}
	}
	return out
}

func stats(s []int32) Stats {
	st := Stats{StoredMin: math.MaxInt32, StoredMax: math.MinInt32}
	var sum float64
	for _, v := range s {
		st.StoredMin = min(st.StoredMin, int(v))
		st.StoredMax = max(st.StoredMax, int(v))
		sum += float64(v)
	}
	if len(s) > 0 {
		st.StoredMean = sum / float64(len(s))
	}
	return st
}
