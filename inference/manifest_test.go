package inference

import (
	"encoding/json"
	"strings"
	"testing"
)

// fixedCropManifest is the shipped hip manifest with fixed crops (as
// hip-000 0.1.0 placed them) instead of its localiser stage.
func fixedCropManifest(t *testing.T) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(shippedManifest(t), &m); err != nil {
		t.Fatal(err)
	}
	pre := m["preprocessing"].(map[string]any)
	delete(pre, "localiser")
	delete(pre, "cropScale")
	delete(pre, "upright")
	pre["regions"] = []any{
		map[string]any{"name": "right-hip", "laterality": "right", "cx": 0.225, "cy": 0.58, "size": 0.31, "mirror": false},
		map[string]any{"name": "left-hip", "laterality": "left", "cx": 0.775, "cy": 0.58, "size": 0.31, "mirror": true},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest(b); err != nil {
		t.Fatalf("the shipped manifest with fixed crops: %v", err)
	}
	return b
}

func shippedManifest(t *testing.T) []byte {
	t.Helper()
	// Read from the folder: the models package (which embeds it) imports
	// this one.
	m, err := LoadManifest("models/hip-000")
	if err != nil {
		t.Fatalf("the shipped manifest does not validate: %v", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each broken manifest is refused with a message naming the field.
func TestManifestValidation(t *testing.T) {
	good := shippedManifest(t)
	refused(t, good, []manifestEdit{
		{"schema", func(m map[string]any) { m["schema"] = "orthotriage.model/v0" }, "schema"},
		{"no labels", func(m map[string]any) { m["labels"] = []any{} }, "labels"},
		{"logits shape", func(m map[string]any) {
			m["outputs"].([]any)[0].(map[string]any)["shape"] = []any{-1, 7}
		}, "outputs.logits.shape"},
		{"input size", func(m map[string]any) {
			m["inputs"].([]any)[0].(map[string]any)["shape"] = []any{-1, 1, 64, 64}
		}, "inputs[0].shape"},
		{"filter", func(m map[string]any) {
			m["preprocessing"].(map[string]any)["resize"].(map[string]any)["filter"] = "nearest"
		}, "preprocessing.resize.filter"},
		{"triage priority", func(m map[string]any) { m["triage"].([]any)[0].(map[string]any)["priority"] = "now" }, "triage[0].priority"},
		{"triage class", func(m map[string]any) { m["triage"].([]any)[0].(map[string]any)["classes"] = []any{"broken"} }, "triage[0].classes"},
		{"warning", func(m map[string]any) { delete(m, "warning") }, "warning"},
		{"file escape", func(m map[string]any) { m["file"] = "../model.onnx" }, "file"},
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }, "extra"},
		{"temperature", func(m map[string]any) { m["calibration"] = map[string]any{"temperature": 0} }, "calibration.temperature"},
	})
}

// The vertebral manifest validates, and each broken vertebral part is
// refused naming the field.
func TestVertebralManifestValidation(t *testing.T) {
	m, err := LoadManifest("models/spine-000")
	if err != nil {
		t.Fatalf("the shipped vertebral manifest does not validate: %v", err)
	}
	good, _ := json.Marshal(m)
	vert := func(m map[string]any) map[string]any { return m["vertebral"].(map[string]any) }
	refused(t, good, []manifestEdit{
		{"no vertebral block", func(m map[string]any) { delete(m, "vertebral") }, "vertebral"},
		{"hip task with a vertebral block", func(m map[string]any) { m["task"] = "hip" }, "vertebral"},
		{"regions", func(m map[string]any) {
			m["preprocessing"].(map[string]any)["regions"] = []any{map[string]any{"name": "x", "laterality": "left", "cx": 0.5, "cy": 0.5, "size": 0.2}}
		}, "preprocessing.regions"},
		{"localiser file", func(m map[string]any) { vert(m)["localiser"].(map[string]any)["file"] = "../x.onnx" }, "vertebral.localiser.file"},
		{"no levels", func(m map[string]any) { vert(m)["localiser"].(map[string]any)["levels"] = []any{} }, "vertebral.localiser.levels"},
		{"presence", func(m map[string]any) { vert(m)["localiser"].(map[string]any)["minPresence"] = 1.5 }, "vertebral.localiser.minPresence"},
		{"roi scale", func(m map[string]any) { vert(m)["roi"].(map[string]any)["scale"] = 0.5 }, "vertebral.roi.scale"},
		{"bins", func(m map[string]any) { vert(m)["radiomicsBins"] = 1 }, "vertebral.radiomicsBins"},
		{"fusion file", func(m map[string]any) { vert(m)["fusion"] = "/etc/passwd" }, "vertebral.fusion"},
		{"unknown task", func(m map[string]any) { m["task"] = "knee" }, "task"},
	})
}

// manifestEdit breaks a good manifest; the error must name field.
type manifestEdit struct {
	name  string
	edit  func(m map[string]any)
	field string
}

// refused applies each edit to good and expects ParseManifest to refuse
// it, naming the field.
func refused(t *testing.T, good []byte, edits []manifestEdit) {
	t.Helper()
	for _, tc := range edits {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			b, _ := json.Marshal(m)
			_, err := ParseManifest(b)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}

// hipLocaliserManifest is the shipped hip manifest with a localiser stage.
func hipLocaliserManifest(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(shippedManifest(t), &m); err != nil {
		t.Fatal(err)
	}
	pre := m["preprocessing"].(map[string]any)
	pre["localiser"] = map[string]any{"file": "localiser.onnx", "input": "image", "output": "levels", "width": 160, "height": 128,
		"levels": []any{"right", "left", "pelvis"}, "minPresence": 0.5}
	pre["cropScale"] = 1.6
	pre["upright"] = true
	pre["regions"] = []any{map[string]any{"name": "right-hip", "laterality": "right"}, map[string]any{"name": "left-hip", "laterality": "left", "mirror": true}}
	m["gate"] = map[string]any{"minStd": 0.05, "minLevels": 3}
	return m
}

// A hip manifest with a localiser validates; each broken part of it is
// refused naming the field, and the fixed crops refuse the localiser's
// geometry.
func TestHipLocaliserManifestValidation(t *testing.T) {
	m := hipLocaliserManifest(t)
	good, _ := json.Marshal(m)
	parsed, err := ParseManifest(good)
	if err != nil {
		t.Fatalf("hip manifest with a localiser: %v", err)
	}
	if g := parsed.GateThresholds(); g.MinStd != 0.05 || g.MinPelvis != 0.5 || g.MinRange != 0.1 || g.Views[0] != "AP" || g.MinLevels != 3 {
		t.Errorf("gate thresholds %+v", g)
	}
	pre := func(m map[string]any) map[string]any { return m["preprocessing"].(map[string]any) }
	loc := func(m map[string]any) map[string]any { return pre(m)["localiser"].(map[string]any) }
	refused(t, good, []manifestEdit{
		{"levels", func(m map[string]any) { loc(m)["levels"] = []any{"left", "right", "pelvis"} }, "preprocessing.localiser.levels"},
		{"file", func(m map[string]any) { loc(m)["file"] = "../l.onnx" }, "preprocessing.localiser.file"},
		{"presence", func(m map[string]any) { loc(m)["minPresence"] = 0 }, "preprocessing.localiser.minPresence"},
		{"no scale", func(m map[string]any) { delete(pre(m), "cropScale") }, "preprocessing.cropScale"},
		{"fixed geometry", func(m map[string]any) {
			pre(m)["regions"].([]any)[0].(map[string]any)["cx"] = 0.2
		}, "preprocessing.regions[0]"},
		{"one side twice", func(m map[string]any) {
			pre(m)["regions"].([]any)[1].(map[string]any)["laterality"] = "right"
		}, "preprocessing.regions"},
		{"gate range", func(m map[string]any) { m["gate"].(map[string]any)["maxClipped"] = 2 }, "gate.maxClipped"},
		{"gate view", func(m map[string]any) { m["gate"].(map[string]any)["views"] = []any{"ap"} }, "gate"},
		{"vertebral with a hip localiser", func(m map[string]any) { m["task"] = "vertebral-fracture-acuity" }, "preprocessing.localiser"},
	})
	fixed := fixedCropManifest(t)
	refused(t, fixed, []manifestEdit{
		{"scale without localiser", func(m map[string]any) { pre(m)["cropScale"] = 1.5 }, "preprocessing.cropScale"},
		{"upright without localiser", func(m map[string]any) { pre(m)["upright"] = true }, "preprocessing.upright"},
	})
}
