package web

import (
	"io/fs"
	"testing"
)

func TestFSIsDist(t *testing.T) {
	if _, err := fs.Stat(FS(), "README.md"); err != nil {
		t.Fatalf("FS has no README.md at its root: %v", err)
	}
	_, err := fs.Stat(FS(), "viewer.js")
	if got, want := Built(), err == nil; got != want {
		t.Errorf("Built() = %v, but viewer.js at FS's root: %v", got, want)
	}
}
