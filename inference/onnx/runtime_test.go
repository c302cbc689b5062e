package onnx_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

func TestRuntimeVersionLoadsTheRealLibrary(t *testing.T) {
	lib := filepath.Join(testenv.RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so")
	path, err := onnx.FindLibrary(lib)
	if err != nil {
		t.Fatalf("%v: run `make setup` to install ONNX Runtime", err)
	}
	v, err := onnx.RuntimeVersion(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "1.") {
		t.Errorf("version = %q, want 1.x", v)
	}
}

func TestFindLibraryNamesTheMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so")
	_, err := onnx.FindLibrary(missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "onnxruntime.library") {
		t.Fatalf("error = %v, want one naming the key and %s", err, missing)
	}
}
