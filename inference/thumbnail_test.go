package inference

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"testing"
)

// Heat-map thumbnails of rotated and mirrored crops are pixel for pixel
// what they were when the whole activation map was filled in first and
// then sampled: the digest was recorded from that implementation, so any
// change in the heat's sampling, its blending or the gray levels fails.
func TestThumbnailDigest(t *testing.T) {
	m := testManifest()
	cam := make([]float32, 3*4*4)
	for i := range cam {
		cam[i] = float32(math.Sin(float64(i)*1.7)) * 3
	}
	o := Output{Probabilities: []float64{0.1, 0.8, 0.1}, CAM: cam, CAMSize: [2]int{4, 4}}
	px := make([]float32, 120*100)
	for i := range px {
		px[i] = float32(i%97) / 96
	}
	h := sha256.New()
	for _, mirror := range []bool{false, true} {
		for _, ang := range []float64{0, 0.3, -1.1, math.Pi / 2} {
			c, err := rotatedCrop(Region{Name: "x", Mirror: mirror}, [2]float64{50.3, 47.8}, 41.5, ang)
			if err != nil {
				t.Fatal(err)
			}
			f := m.Interpret(o, c)
			h.Write(Thumbnail(px, 100, 120, f.Box, f.HeatAt(o), 96).Pix)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != thumbnailDigest {
		t.Errorf("thumbnails digest %s, want %s", got, thumbnailDigest)
	}
}

const thumbnailDigest = "f614877eadc5f7eeba9159222d46b0e8a756d761717437da29f5ebf3da148c6a"
