// Package onnx is the one adapter over ONNX Runtime (via
// github.com/yalue/onnxruntime_go): it finds and loads the runtime library,
// creates the sessions of a manifest's networks (the classifier and the
// vertebral localiser) with their execution provider, batches concurrent
// requests, and loads all a manifest needs in one call (Open). What the
// outputs mean is package inference's; this package only needs cgo.
package onnx

import (
	"errors"
	"fmt"
	"os"

	ort "github.com/yalue/onnxruntime_go"
)

// defaultLibraryPaths are searched, in order, when no library is configured.
// The first is where `make setup` installs the library from the npm package
// onnxruntime-node, relative to the repository root the service is run from.
func defaultLibraryPaths() []string {
	return []string{
		".cache/onnxruntime/libonnxruntime.so",
		"/usr/local/lib/libonnxruntime.so",
		"/usr/lib/libonnxruntime.so",
	}
}

// ErrNoRuntime means no ONNX Runtime library was found.
var ErrNoRuntime = errors.New("onnx runtime library not found")

// FindLibrary returns configured when it names an existing file, else the
// first default path that exists.
func FindLibrary(configured string) (string, error) {
	if configured != "" {
		if _, err := os.Stat(configured); err != nil {
			return "", fmt.Errorf("onnxruntime.library %s: %w", configured, err)
		}
		return configured, nil
	}
	for _, p := range defaultLibraryPaths() {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w in %v (run `make setup`, or set ORTHOTRIAGE_ONNXRUNTIME_LIBRARY)", ErrNoRuntime, defaultLibraryPaths())
}

// Start finds the library (see FindLibrary) and initialises ONNX Runtime
// from it (see Init); it returns the library's path.
func Start(library string) (string, error) {
	path, err := FindLibrary(library)
	if err != nil {
		return "", err
	}
	if err := Init(path); err != nil {
		return "", err
	}
	return path, nil
}

// RuntimeVersion loads the library at path and returns its version. ONNX
// Runtime's environment is one per process: this initialises and then
// destroys it when no environment exists yet; otherwise it reports the
// version of the library already loaded.
func RuntimeVersion(path string) (string, error) {
	envMu.Lock()
	defer envMu.Unlock()
	if ort.IsInitialized() { // sessions exist: the loaded library answers
		return ort.GetVersion(), nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(); err != nil {
		return "", fmt.Errorf("load onnx runtime %s: %w", path, err)
	}
	v := ort.GetVersion()
	if err := ort.DestroyEnvironment(); err != nil {
		return v, fmt.Errorf("release onnx runtime: %w", err)
	}
	return v, nil
}
