package radiomics_test

import (
	"math"
	"testing"

	"github.com/orthotriage/orthotriage/inference/radiomics"
)

// FuzzFeatures: any small image, mask and bin count gives features or an
// error, never a panic, NaN or infinity.
func FuzzFeatures(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(3), uint8(4))
	f.Add([]byte{0, 0, 0, 0}, uint8(2), uint8(1))
	f.Add([]byte{255}, uint8(1), uint8(32))
	f.Fuzz(func(t *testing.T, data []byte, w, bins uint8) {
		if w == 0 || len(data) == 0 || len(data) > 4096 {
			return
		}
		width := int(w)
		h := len(data) / width
		if h == 0 {
			return
		}
		s := radiomics.Slice{W: width, H: h}
		for _, b := range data[:width*h] {
			s.Values = append(s.Values, float64(b>>1))
			s.Mask = append(s.Mask, b&1 == 1)
		}
		check := func(name string, fs radiomics.Features, err error) {
			for k, v := range fs {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s: %s = %v", name, k, v)
				}
			}
		}
		fs, err := radiomics.Intensity(s)
		check("intensity", fs, err)
		fs, err = radiomics.Morphology(s, 0.7, 0.7)
		check("morphology", fs, err)
		d, err := radiomics.FixedBinNumber(s, int(bins))
		if err != nil {
			return
		}
		fs, err = radiomics.Histogram(d)
		check("histogram", fs, err)
		for _, agg := range []radiomics.Aggregation{radiomics.Averaged, radiomics.SliceMerged} {
			fs, err = radiomics.GLCM(agg, d)
			check("GLCM", fs, err)
			fs, err = radiomics.GLRLM(agg, d)
			check("GLRLM", fs, err)
		}
		fs, err = radiomics.GLSZM(d)
		check("GLSZM", fs, err)
	})
}
