package phantom

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/orthotriage/orthotriage/imaging"
)

// radiographHash is a digest of everything the generator decides about a
// radiograph: its stored values and every tag.
func radiographHash(r imaging.Radiograph) string {
	h := sha256.New()
	for _, v := range r.Stored {
		binary.Write(h, binary.LittleEndian, int32(v))
	}
	r.Stored = nil
	fmt.Fprintf(h, "%+v", r)
	return hex.EncodeToString(h.Sum(nil))
}

func TestPrintHashes(t *testing.T) {
	for _, i := range []int{0, 1, 2, 7} {
		t.Logf("pelvis %d %s %+v %+v", i, radiographHash(Pelvis(3, i).Image), Pelvis(3, i).Right, Pelvis(3, i).Left)
	}
	for _, i := range []int{0, 1, 4} {
		t.Logf("spine %d %s", i, radiographHash(Spine(3, i).Image))
	}
}
