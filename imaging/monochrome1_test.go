package imaging

import (
	"bytes"
	"math"
	"testing"
)

// A MONOCHROME2 file rewritten as MONOCHROME1 has inverted stored values
// and decodes to the same display values, whatever its rescale, window
// function and sign.
func TestAsMonochrome1(t *testing.T) {
	base := func() Radiograph {
		return Radiograph{Rows: 2, Columns: 4, BitsStored: 12, Photometric: "MONOCHROME2", Modality: "DX", SOPClassUID: SOPClassDXPresentation,
			StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2", SOPInstanceUID: "2.25.3", PatientID: "p1", BodyPartExamined: "PELVIS",
			ViewPosition: "AP", PixelSpacing: [2]float64{0.2, 0.2}, Stored: []int{0, 500, 1000, 1700, 2100, 2900, 3500, 4095}}
	}
	tests := []struct {
		name   string
		mutate func(*Radiograph)
	}{
		{name: "min-max", mutate: func(*Radiograph) {}},
		{name: "linear window and a second one", mutate: func(r *Radiograph) {
			r.WindowCenter, r.WindowWidth = []float64{2000, 1800}, []float64{3001, 1200}
		}},
		{name: "rescale and linear window", mutate: func(r *Radiograph) {
			r.RescaleSlope, r.RescaleIntercept = 0.5, -512
			r.WindowCenter, r.WindowWidth = []float64{500}, []float64{1500}
		}},
		{name: "linear exact", mutate: func(r *Radiograph) {
			r.WindowCenter, r.WindowWidth, r.VOILUTFunction = []float64{1900}, []float64{2500}, "LINEAR_EXACT"
		}},
		{name: "sigmoid with rescale", mutate: func(r *Radiograph) {
			r.RescaleSlope, r.RescaleIntercept = 2, 100
			r.WindowCenter, r.WindowWidth, r.VOILUTFunction = []float64{4200}, []float64{5000}, "SIGMOID"
		}},
		{name: "signed", mutate: func(r *Radiograph) {
			r.Signed, r.Stored = true, []int{-2048, -1000, -1, 0, 1, 700, 1500, 2047}
			r.WindowCenter, r.WindowWidth = []float64{100}, []float64{3000}
		}},
		{name: "8 bits", mutate: func(r *Radiograph) {
			r.BitsAllocated, r.BitsStored, r.Stored = 8, 8, []int{0, 10, 60, 100, 128, 200, 250, 255}
		}},
		{name: "imager pixel spacing", mutate: func(r *Radiograph) { r.ImagerPixelSpacing = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.mutate(&r)
			var src bytes.Buffer
			if err := WriteDICOM(&src, r); err != nil {
				t.Fatal(err)
			}
			before, err := Decode(src.Bytes(), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			out, converted, err := AsMonochrome1(src.Bytes(), Limits{})
			if err != nil || !converted {
				t.Fatalf("AsMonochrome1: converted %v, %v", converted, err)
			}
			after, err := Decode(out, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if after.Meta.Photometric != "MONOCHROME1" || after.Meta.VOI != before.Meta.VOI {
				t.Errorf("photometric %s, VOI %s (before %s)", after.Meta.Photometric, after.Meta.VOI, before.Meta.VOI)
			}
			k := int64(1)<<r.BitsStored - 1
			if r.Signed {
				k = -1
			}
			for i := range r.Stored {
				if got, want := after.Stored.At(i), k-before.Stored.At(i); got != want {
					t.Errorf("stored %d = %d, want %d", i, got, want)
				}
				if d := math.Abs(float64(after.Pixels[i] - before.Pixels[i])); d > 1e-5 {
					t.Errorf("pixel %d = %.6f, was %.6f", i, after.Pixels[i], before.Pixels[i])
				}
			}
			b, a := before.Meta, after.Meta
			b.Photometric, b.VOI = a.Photometric, a.VOI
			if a != b {
				t.Errorf("metadata\n%+v, was\n%+v", a, b)
			}
		})
	}
	// A file already MONOCHROME1 comes back as it is.
	r := base()
	r.Photometric = "MONOCHROME1"
	var src bytes.Buffer
	if err := WriteDICOM(&src, r); err != nil {
		t.Fatal(err)
	}
	out, converted, err := AsMonochrome1(src.Bytes(), Limits{})
	if err != nil || converted || !bytes.Equal(out, src.Bytes()) {
		t.Errorf("already MONOCHROME1: converted %v, %v", converted, err)
	}
	if _, _, err := AsMonochrome1([]byte("not dicom"), Limits{}); err == nil {
		t.Error("not DICOM: no error")
	}
}
