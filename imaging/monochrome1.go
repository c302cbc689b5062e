package imaging

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// AsMonochrome1 rewrites a MONOCHROME2 radiograph as the MONOCHROME1 file
// that displays the same: every stored value inverted within its range,
// the photometric interpretation MONOCHROME1, and the rescale kept, with
// the window centres moved so that the inverted values window to the
// inverted display, which the decoder inverts back. It is how `orthotriage
// eval --perturb mono1` tests the MONOCHROME1 decode path. The file is
// written uncompressed (Explicit VR Little Endian), first frame only, with
// the attributes the pipeline reads. A file already MONOCHROME1 is returned
// as it is, with converted false. Files with a VOI LUT Sequence, colour,
// or samples other than 8 or 16 bits are refused.
func AsMonochrome1(data []byte, lim Limits) (out []byte, converted bool, err error) {
	img, err := Decode(data, lim)
	if err != nil {
		return nil, false, err
	}
	m := img.Meta
	switch {
	case m.Photometric == "MONOCHROME1":
		return data, false, nil
	case m.Photometric != "MONOCHROME2":
		return nil, false, fmt.Errorf("as MONOCHROME1: %w: photometric interpretation %s", ErrNotImage, m.Photometric)
	case m.BitsAllocated != 8 && m.BitsAllocated != 16:
		return nil, false, fmt.Errorf("as MONOCHROME1: %w: %d-bit samples (8 or 16 supported)", ErrNotImage, m.BitsAllocated)
	}
	a, err := header(data, lim)
	if err != nil {
		return nil, false, err
	}
	if len(a.sequenceItems(tag.VOILUTSequence)) > 0 {
		return nil, false, errors.New("as MONOCHROME1: a VOI LUT Sequence is not supported")
	}
	r := Radiograph{
		Rows: m.Rows, Columns: m.Columns, BitsAllocated: m.BitsAllocated, BitsStored: m.BitsStored, Signed: m.PixelRepresentation == 1,
		Photometric: "MONOCHROME1", PixelSpacing: m.PixelSpacing, ImagerPixelSpacing: m.SpacingSource == "ImagerPixelSpacing",
		Modality: m.Modality, SOPClassUID: m.SOPClassUID, StudyInstanceUID: m.StudyInstanceUID, SeriesInstanceUID: m.SeriesInstanceUID,
		SOPInstanceUID: m.SOPInstanceUID, PatientID: a.str(tag.PatientID), BodyPartExamined: m.BodyPart, ViewPosition: m.ViewPosition,
		ImageLaterality: m.Laterality, VOILUTFunction: a.str(tag.VOILUTFunction),
	}
	// Stored values v become k - v, which keeps them in range: k is the
	// sum of the smallest and largest value of the bits stored.
	k := int64(1)<<m.BitsStored - 1
	if r.Signed {
		k = -1
	}
	r.Stored = make([]int, img.Stored.Len())
	for i := range r.Stored {
		r.Stored[i] = int(k - img.Stored.At(i))
	}
	// The rescaled value x becomes kx - x.
	slope, intercept := rescale(a)
	if a.value(tag.RescaleSlope) != nil || a.value(tag.RescaleIntercept) != nil {
		r.RescaleSlope, r.RescaleIntercept = slope, intercept
	}
	kx := slope*float64(k) + 2*intercept
	// A window (c, w) of x is the window (kx - c, w) of kx - x mirrored:
	// exactly for LINEAR_EXACT and SIGMOID; LINEAR's half-pixel offset
	// (PS3.3 C.11.2.1.2.1) moves the mirrored centre by 1.
	shift := 1.0
	if f := strings.ToUpper(r.VOILUTFunction); f == "LINEAR_EXACT" || f == "SIGMOID" {
		shift = 0
	}
	centres, widths := a.floats(tag.WindowCenter), a.floats(tag.WindowWidth)
	if len(centres) > 0 && len(widths) > 0 {
		n := min(len(centres), len(widths))
		r.WindowWidth = widths[:n]
		for _, c := range centres[:n] {
			r.WindowCenter = append(r.WindowCenter, kx-c+shift)
		}
	}
	var b bytes.Buffer
	if err := WriteDICOM(&b, r); err != nil {
		return nil, false, fmt.Errorf("as MONOCHROME1: %w", err)
	}
	return b.Bytes(), true, nil
}

// header parses the attributes of a DICOM instance before its pixel data.
func header(data []byte, lim Limits) (attrs, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits()
	}
	l, err := layOut(data, lim.MaxBytes)
	if err != nil {
		return attrs{}, err
	}
	ds, err := parse(l.parserInput())
	if err != nil {
		return attrs{}, err
	}
	return attrs{ds}, nil
}

// rescale is the modality rescale as displayTransform applies it: slope 1
// and intercept 0 unless the tags give finite values (and a non-zero slope).
func rescale(a attrs) (slope, intercept float64) {
	slope = 1
	if v := a.floats(tag.RescaleSlope); len(v) > 0 && v[0] != 0 && !math.IsNaN(v[0]) && !math.IsInf(v[0], 0) {
		slope = v[0]
	}
	if v := a.floats(tag.RescaleIntercept); len(v) > 0 && !math.IsNaN(v[0]) && !math.IsInf(v[0], 0) {
		intercept = v[0]
	}
	return slope, intercept
}
