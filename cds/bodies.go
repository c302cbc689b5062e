package cds

import (
	"encoding/json"
	"image"
	"slices"

	"github.com/orthotriage/orthotriage"
	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// ExtensionBodies is the request extension (CDS Hooks' extension member)
// by which a caller gives the vertebral bodies to read instead of the
// localiser's, e.g. a radiologist's correction:
//
//	"extension": {"org.orthotriage.vertebrae": [
//	  {"study": "ImagingStudy/123", "level": "L1", "box": [120, 340, 64, 48]}]}
//
// box is x, y, width, height in pixels of the study's first lateral image;
// study (an ImagingStudy reference or a Study Instance UID) may be left
// out when the call concerns one study.
const ExtensionBodies = "org.orthotriage.vertebrae"

// vertebralLevels are the levels a given body may name.
var vertebralLevels = []string{"T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"}

// givenBody is one body of the extension.
type givenBody struct {
	Study string `json:"study"`
	Level string `json:"level"`
	Box   []int  `json:"box"`
}

// parseBodies reads the extension's bodies; a malformed one is the
// caller's error (400).
func parseBodies(extension json.RawMessage) ([]givenBody, error) {
	if len(extension) == 0 {
		return nil, nil
	}
	var ext map[string]json.RawMessage
	if err := json.Unmarshal(extension, &ext); err != nil {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "extension must be a JSON object")
	}
	raw, ok := ext[ExtensionBodies]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var bodies []givenBody
	if err := json.Unmarshal(raw, &bodies); err != nil {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "extension %s must be a list of {study, level, box: [x, y, width, height]}", ExtensionBodies)
	}
	if len(bodies) > spine.MaxBodies {
		return nil, orthotriage.Errorf(orthotriage.EInvalid, "extension %s: %d bodies, limit %d", ExtensionBodies, len(bodies), spine.MaxBodies)
	}
	for i, b := range bodies {
		if !slices.Contains(vertebralLevels, b.Level) {
			return nil, orthotriage.Errorf(orthotriage.EInvalid, "extension %s[%d].level %q is not one of %v", ExtensionBodies, i, b.Level, vertebralLevels)
		}
		if len(b.Box) != 4 || b.Box[0] < 0 || b.Box[1] < 0 || b.Box[2] < 4 || b.Box[3] < 4 || b.Box[2] > inference.MaxCropSide || b.Box[3] > inference.MaxCropSide ||
			b.Box[0] > 1<<20 || b.Box[1] > 1<<20 {
			return nil, orthotriage.Errorf(orthotriage.EInvalid, "extension %s[%d].box must be [x, y, width, height] in pixels, x and y >= 0, sides 4-%d", ExtensionBodies, i, inference.MaxCropSide)
		}
	}
	return bodies, nil
}

// bodies are the extension's bodies as the analysis takes them.
func bodies(given []givenBody) []analysis.GivenBody {
	var out []analysis.GivenBody
	for _, b := range given {
		out = append(out, analysis.GivenBody{Study: b.Study,
			Body: inference.Body{Level: b.Level, Presence: 1, Box: image.Rect(b.Box[0], b.Box[1], b.Box[0]+b.Box[2], b.Box[1]+b.Box[3])}})
	}
	return out
}
