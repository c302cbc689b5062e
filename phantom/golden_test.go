package phantom

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
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

// The default phantoms are the ones the shipped models were trained and
// evaluated on: without a variation they stay what they were before
// Variation existed, pixel for pixel and tag for tag. The digests were
// recorded from the generator at commit 7e3c819.
func TestDefaultUnchanged(t *testing.T) {
	pelvis := map[int]string{
		0: "b3293e2f3c3f3767539f9d895ad278235bbe2e321c4785492854935d15819e01",
		1: "1d5425ddcd7c4fe47c79722be057e32f2aaca9eefcbc5d025d534a3f78e1cf89",
		2: "be6a6e82edbdc7d8d9cdd83316c774f0a0354d28a370e99719bfcb313b136154",
		7: "d65efba340a1923b927a9b6116ae4685be6fcd560e7695de2b5d85037d41744b",
	}
	spine := map[int]string{
		0: "ab9f0cb14aaec410851d34a1c6e4dd14fe6b0c7ef9c7eab4afee45ece9376a5f",
		1: "b87d0304852aa7dae522d60ddaf51e782a163034819fce76f42746aa56e115a0",
		4: "1734ba34ff1de8a91eb07e6e1a5190efc9cbc16ba061928bdd6d3142ef16edcd",
	}
	for i, want := range pelvis {
		pc := Pelvis(3, i)
		if got := radiographHash(pc.Image); got != want {
			t.Errorf("pelvis case %d: digest %s, want %s", i, got, want)
		}
		v, err := PelvisVaried(3, i, Variation{})
		if err != nil || !slices.Equal(v.Image.Stored, pc.Image.Stored) || v.Right != pc.Right || v.Left != pc.Left {
			t.Errorf("pelvis case %d: PelvisVaried with no variation differs from Pelvis (%v)", i, err)
		}
		if pc.Acquisition.Markers != "" || pc.Acquisition.Text != "" || pc.Acquisition.Zoom != 1 || pc.Acquisition.Exposure != 0 {
			t.Errorf("pelvis case %d: default acquisition %+v", i, pc.Acquisition)
		}
	}
	for i, want := range spine {
		if got := radiographHash(Spine(3, i).Image); got != want {
			t.Errorf("spine case %d: digest %s, want %s", i, got, want)
		}
	}
}
