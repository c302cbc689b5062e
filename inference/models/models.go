// Package models carries the reference models shipped with orthotriage:
// for each, manifest.json, the ONNX file and MODEL_CARD.md, embedded so
// that the binary serves them with no configuration. Training scripts live
// beside them (ID/train.py, with what they share in trainlib.py) and are not
// embedded.
package models

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/orthotriage/orthotriage/inference"
)

//go:embed hip-000/manifest.json hip-000/*.onnx hip-000/MODEL_CARD.md
//go:embed spine-000/manifest.json spine-000/model.onnx spine-000/localiser.onnx spine-000/fusion.json spine-000/MODEL_CARD.md
var files embed.FS

// IDs lists the shipped models.
func IDs() []string {
	entries, _ := fs.ReadDir(files, ".")
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// FS returns the folder of one shipped model.
func FS(id string) (fs.FS, error) {
	if fs.ValidPath(id) && !strings.Contains(id, "/") {
		if sub, err := fs.Sub(files, id); err == nil {
			if _, err := fs.Stat(sub, "manifest.json"); err == nil {
				return sub, nil
			}
		}
	}
	return nil, fmt.Errorf("no shipped model %q (shipped: %s)", id, strings.Join(IDs(), ", "))
}

// Manifest loads and validates the manifest of one shipped model.
func Manifest(id string) (*inference.Manifest, error) {
	fsys, err := FS(id)
	if err != nil {
		return nil, err
	}
	return inference.LoadManifestFS(fsys, "inference/models/"+id)
}

// Lookup loads the manifest a setting or flag names: a model folder when
// name is one (manifest.json and the ONNX file), else a shipped model by id,
// or by task (the first shipped model of that task).
func Lookup(name string) (*inference.Manifest, error) {
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		return inference.LoadManifest(name)
	}
	if name == inference.TaskHip || name == inference.TaskVertebral {
		for _, id := range IDs() {
			if m, err := Manifest(id); err == nil && m.Task == name {
				return m, nil
			}
		}
		return nil, fmt.Errorf("no shipped model for task %s (shipped: %s)", name, strings.Join(IDs(), ", "))
	}
	m, err := Manifest(name)
	if err != nil {
		return nil, fmt.Errorf("model %s: not a folder, and %w", name, err)
	}
	return m, nil
}
