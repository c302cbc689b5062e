package imaging

import (
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// SOP classes of projection radiographs.
const (
	SOPClassCR             = "1.2.840.10008.5.1.4.1.1.1"     // Computed Radiography Image Storage
	SOPClassDXPresentation = "1.2.840.10008.5.1.4.1.1.1.1"   // Digital X-Ray Image Storage - For Presentation
	SOPClassDXProcessing   = "1.2.840.10008.5.1.4.1.1.1.1.1" // Digital X-Ray Image Storage - For Processing
)

// ImplementationClassUID identifies orthotriage as the writer of DICOM files
// (a UUID-derived UID under the 2.25 root).
const ImplementationClassUID = "2.25.124375420598592604122107479850942776240"

// Radiograph is what WriteDICOM needs to write a single-frame grayscale
// projection radiograph as Explicit VR Little Endian DICOM. The phantom
// generator and the tests use it.
type Radiograph struct {
	Rows, Columns      int
	Stored             []int // stored values, row-major, within BitsStored (two's complement when Signed)
	BitsAllocated      int   // 8 or 16; 16 when zero
	BitsStored         int
	Signed             bool
	Photometric        string // MONOCHROME1 or MONOCHROME2
	RescaleSlope       float64
	RescaleIntercept   float64
	WindowCenter       []float64
	WindowWidth        []float64
	VOILUTFunction     string
	PixelSpacing       [2]float64 // row, column spacing in mm; zero: not written
	ImagerPixelSpacing bool       // write ImagerPixelSpacing instead of PixelSpacing
	Modality           string     // DX or CR
	SOPClassUID        string
	StudyInstanceUID   string
	SeriesInstanceUID  string
	SOPInstanceUID     string
	PatientID          string
	BodyPartExamined   string
	ViewPosition       string
	ImageLaterality    string
}

// WriteDICOM writes r as a DICOM Part 10 file.
func WriteDICOM(w io.Writer, r Radiograph) error {
	ba := r.BitsAllocated
	if ba == 0 {
		ba = 16
	}
	if ba != 8 && ba != 16 {
		return fmt.Errorf("write dicom: bits allocated %d not 8 or 16", ba)
	}
	if r.Rows <= 0 || r.Columns <= 0 || len(r.Stored) != r.Rows*r.Columns {
		return fmt.Errorf("write dicom: %d stored values for %dx%d", len(r.Stored), r.Rows, r.Columns)
	}
	if r.BitsStored <= 0 || r.BitsStored > ba {
		return fmt.Errorf("write dicom: bits stored %d outside 1-%d", r.BitsStored, ba)
	}
	var pixels frame.Frame
	mask := (1 << r.BitsStored) - 1
	if ba == 8 {
		nf := frame.NewNativeFrame[uint8](8, r.Rows, r.Columns, len(r.Stored), 1)
		for i, v := range r.Stored {
			nf.RawData[i] = uint8(v & mask)
		}
		pixels.NativeData = nf
	} else {
		nf := frame.NewNativeFrame[uint16](16, r.Rows, r.Columns, len(r.Stored), 1)
		for i, v := range r.Stored {
			nf.RawData[i] = uint16(v & mask)
		}
		pixels.NativeData = nf
	}
	pr := 0
	if r.Signed {
		pr = 1
	}
	els := []*dicom.Element{}
	add := func(t tag.Tag, v any) {
		e, err := dicom.NewElement(t, v)
		if err != nil {
			panic(fmt.Sprintf("write dicom: element %v: %v", t, err)) // a bug in this function, not input
		}
		els = append(els, e)
	}
	str := func(t tag.Tag, v string) {
		if v != "" {
			add(t, []string{v})
		}
	}
	add(tag.FileMetaInformationVersion, []byte{0, 1})
	add(tag.ImplementationClassUID, []string{ImplementationClassUID})
	add(tag.MediaStorageSOPClassUID, []string{r.SOPClassUID})
	add(tag.MediaStorageSOPInstanceUID, []string{r.SOPInstanceUID})
	add(tag.TransferSyntaxUID, []string{uid.ExplicitVRLittleEndian})
	add(tag.SOPClassUID, []string{r.SOPClassUID})
	add(tag.SOPInstanceUID, []string{r.SOPInstanceUID})
	add(tag.Modality, []string{r.Modality})
	str(tag.PatientID, r.PatientID)
	str(tag.BodyPartExamined, r.BodyPartExamined)
	str(tag.ViewPosition, r.ViewPosition)
	str(tag.ImageLaterality, r.ImageLaterality)
	add(tag.StudyInstanceUID, []string{r.StudyInstanceUID})
	add(tag.SeriesInstanceUID, []string{r.SeriesInstanceUID})
	add(tag.SamplesPerPixel, []int{1})
	add(tag.PhotometricInterpretation, []string{r.Photometric})
	add(tag.Rows, []int{r.Rows})
	add(tag.Columns, []int{r.Columns})
	if r.PixelSpacing != [2]float64{} {
		t := tag.PixelSpacing
		if r.ImagerPixelSpacing {
			t = tag.ImagerPixelSpacing
		}
		add(t, []string{ds(r.PixelSpacing[0]), ds(r.PixelSpacing[1])})
	}
	add(tag.BitsAllocated, []int{ba})
	add(tag.BitsStored, []int{r.BitsStored})
	add(tag.HighBit, []int{r.BitsStored - 1})
	add(tag.PixelRepresentation, []int{pr})
	if len(r.WindowCenter) > 0 {
		add(tag.WindowCenter, dsList(r.WindowCenter))
		add(tag.WindowWidth, dsList(r.WindowWidth))
	}
	if r.RescaleSlope != 0 {
		add(tag.RescaleIntercept, []string{ds(r.RescaleIntercept)})
		add(tag.RescaleSlope, []string{ds(r.RescaleSlope)})
	}
	str(tag.VOILUTFunction, r.VOILUTFunction)
	add(tag.PixelData, dicom.PixelDataInfo{Frames: []*frame.Frame{&pixels}})
	sort.Slice(els, func(i, j int) bool {
		a, b := els[i].Tag, els[j].Tag
		return a.Group < b.Group || (a.Group == b.Group && a.Element < b.Element)
	})
	return dicom.Write(w, dicom.Dataset{Elements: els})
}

// ds formats a decimal string (VR DS, at most 16 characters).
func ds(v float64) string {
	s := strconv.FormatFloat(v, 'g', 10, 64)
	if len(s) > 16 {
		s = strconv.FormatFloat(v, 'g', 6, 64)
	}
	return s
}

func dsList(vs []float64) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = ds(v)
	}
	return out
}
