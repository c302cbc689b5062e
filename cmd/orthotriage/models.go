package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// loadManifest reads a model folder when arg names one, else a shipped
// model by id or by task (the first shipped model of that task).
func loadManifest(arg string) (*inference.Manifest, error) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return inference.LoadManifest(arg)
	}
	if arg == inference.TaskHip || arg == inference.TaskVertebral {
		for _, id := range models.IDs() {
			if m, err := models.Manifest(id); err == nil && m.Task == arg {
				return m, nil
			}
		}
		return nil, fmt.Errorf("no shipped model for task %s (shipped: %s)", arg, strings.Join(models.IDs(), ", "))
	}
	m, err := models.Manifest(arg)
	if err != nil {
		return nil, fmt.Errorf("model %s: not a folder, and %w", arg, err)
	}
	return m, nil
}

// openModel loads ONNX Runtime and a session for the model named by arg
// (see loadManifest).
func openModel(arg, library string, threads int) (*inference.Model, error) {
	m, err := loadManifest(arg)
	if err != nil {
		return nil, err
	}
	lib, err := inference.FindLibrary(library)
	if err != nil {
		return nil, err
	}
	if err := inference.Init(lib); err != nil {
		return nil, err
	}
	return inference.Load(m, inference.SessionOptions{IntraOpThreads: threads})
}

// modelClassifier runs a loaded model directly (no batching), for offline
// work.
type modelClassifier struct{ m *inference.Model }

func (c modelClassifier) Classify(_ context.Context, crops []float32, n int) ([]inference.Output, error) {
	return c.m.Run(crops, n)
}
func (c modelClassifier) Model() *inference.Model { return c.m }

// openSpine loads the stages of a vertebral model folder that exist: the
// localiser, then the network, then the fusion model. Training writes them
// in that order, and each stage's training data needs the ones before.
func openSpine(m *inference.Manifest, library string, threads int) (*spine.Pipeline, func(), error) {
	p := &spine.Pipeline{Manifest: m}
	closers := []func(){}
	closeAll := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	has := func(name string) bool {
		_, err := m.ReadFile(name)
		return err == nil
	}
	if !has(m.Vertebral.Localiser.File) {
		return p, closeAll, nil
	}
	lib, err := inference.FindLibrary(library)
	if err != nil {
		return nil, nil, err
	}
	if err := inference.Init(lib); err != nil {
		return nil, nil, err
	}
	opt := inference.SessionOptions{IntraOpThreads: threads}
	if p.Localiser, err = inference.LoadLocaliser(m, opt); err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { p.Localiser.Close() })
	if !has(m.File) {
		return p, closeAll, nil
	}
	md, err := inference.Load(m, opt)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	p.Net = modelClassifier{md}
	closers = append(closers, func() { md.Close() })
	if !has(m.Vertebral.Fusion) {
		return p, closeAll, nil
	}
	data, _ := m.ReadFile(m.Vertebral.Fusion)
	if p.Fusion, err = spine.ParseFusion(data); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("model %s: %w", m.ID, err)
	}
	return p, closeAll, nil
}

// openVertebral opens a vertebral model with every stage, for reading.
func openVertebral(m *inference.Manifest, library string, threads int) (*spine.Pipeline, func(), error) {
	p, closeAll, err := openSpine(m, library, threads)
	if err != nil {
		return nil, nil, err
	}
	if p.Localiser == nil || p.Net == nil || p.Fusion == nil {
		closeAll()
		return nil, nil, fmt.Errorf("model %s lacks its localiser, network or fusion file", m.ID)
	}
	return p, closeAll, nil
}
