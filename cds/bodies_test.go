package cds

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/orthotriage/orthotriage/inference"
)

// Any extension is either refused or gives bodies within the limits.
func FuzzParseBodies(f *testing.F) {
	f.Add([]byte(`{"org.orthotriage.vertebrae":[{"study":"ImagingStudy/1","level":"L1","box":[1,2,30,40]}]}`))
	f.Add([]byte(`{"org.orthotriage.vertebrae":null}`))
	f.Add([]byte(`{"other":1}`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, ext []byte) {
		bodies, err := parseBodies(json.RawMessage(ext))
		if err != nil {
			return
		}
		if len(bodies) > 32 {
			t.Fatalf("%d bodies accepted", len(bodies))
		}
		for _, b := range bodies {
			if !slices.Contains(vertebralLevels, b.Level) || len(b.Box) != 4 || b.Box[0] < 0 || b.Box[1] < 0 ||
				b.Box[2] < 4 || b.Box[3] < 4 || b.Box[2] > inference.MaxCropSide || b.Box[3] > inference.MaxCropSide {
				t.Fatalf("accepted %+v", b)
			}
		}
	})
}
