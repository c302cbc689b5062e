// Package models carries the reference models shipped with orthotriage:
// for each, manifest.json, the ONNX file and MODEL_CARD.md, embedded so
// that the binary serves them with no configuration. Training scripts live
// beside them and are not embedded.
package models

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed hip-000/manifest.json hip-000/model.onnx hip-000/MODEL_CARD.md
var files embed.FS

// FS returns the folder of one shipped model.
func FS(id string) (fs.FS, error) {
	sub, err := fs.Sub(files, id)
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(sub, "manifest.json"); err != nil {
		return nil, fmt.Errorf("no shipped model %q", id)
	}
	return sub, nil
}
