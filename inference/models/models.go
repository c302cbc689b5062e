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
	"strings"

	"github.com/orthotriage/orthotriage/inference"
)

//go:embed hip-000/manifest.json hip-000/model.onnx hip-000/MODEL_CARD.md
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
