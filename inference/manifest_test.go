package inference

import (
	"encoding/json"
	"strings"
	"testing"
)

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
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
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
	} {
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
