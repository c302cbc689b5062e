package models_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/inference/models"
)

// Lookup takes a shipped id, a task or a model folder, and names what it
// could not find.
func TestLookup(t *testing.T) {
	dir := t.TempDir()
	fsys, err := models.FS("hip-000")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"manifest.json", "model.onnx"} {
		b, _ := fs.ReadFile(fsys, name)
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	tests := []struct{ name, want, wantErr string }{
		{name: "spine-000", want: "spine-000"},
		{name: "hip", want: "hip-000"},
		{name: dir, want: "hip-000"},
		{name: "hip-999", wantErr: `no shipped model "hip-999"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := models.Lookup(tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || m.ID != tc.want {
				t.Fatalf("got %v, %v; want %s", m, err, tc.want)
			}
		})
	}
}
