package inference

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"
)

// Upright crops (rotated, mirrored, overhanging the image's edges) are
// value for value what they were when each crop was sampled whole into a
// 16-bit buffer before resizing: the digest was recorded from that
// implementation, for each filter.
func TestUprightCropsDigest(t *testing.T) {
	const rows, cols = 300, 260
	pixels := make([]float32, rows*cols)
	for i := range pixels {
		pixels[i] = float32(math.Sin(float64(i)*0.013)*math.Cos(float64(i%cols)*0.07))*0.8 + 0.4
	}
	pixels[77*cols+90] = float32(math.NaN())
	h := sha256.New()
	for _, filter := range []string{"catmull-rom", "bilinear", "approx-bilinear"} {
		p := testPreprocess()
		p.Resize = Resize{Width: 24, Height: 24, Filter: filter}
		var crops []Crop
		for _, tc := range []struct {
			centre     [2]float64
			side, turn float64
			mirror     bool
		}{
			{[2]float64{80, 120}, 61.3, 0.21, false},
			{[2]float64{180, 140}, 75, -0.4, true},
			{[2]float64{10, 290}, 50.5, 0.05, false}, // overhangs two edges
			{[2]float64{130, 150}, 20, math.Pi / 3, true},
		} {
			c, err := rotatedCrop(Region{Name: "x", Mirror: tc.mirror}, tc.centre, tc.side, tc.turn)
			if err != nil {
				t.Fatal(err)
			}
			crops = append(crops, c)
		}
		dst := make([]float32, len(crops)*24*24)
		if err := p.PrepareCrops(pixels, rows, cols, crops, dst); err != nil {
			t.Fatal(err)
		}
		for _, v := range dst {
			h.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != uprightCropsDigest {
		t.Errorf("crops digest %s, want %s", got, uprightCropsDigest)
	}
}

const uprightCropsDigest = "f5fe862e3544adab7e43b7cd75befffe821d7af58b740b7acb0a059292d59523"
