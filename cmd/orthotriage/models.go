package main

import (
	"fmt"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// loadManifest reads a model folder when arg names one, else a shipped
// model by id or by task (the first shipped model of that task): the rule
// the service's onnxruntime.models follows (models.Lookup).
func loadManifest(arg string) (*inference.Manifest, error) { return models.Lookup(arg) }

// openModel loads ONNX Runtime and everything the model named by arg needs
// (see loadManifest).
func openModel(arg, library string, threads int) (*onnx.Loaded, error) {
	m, err := loadManifest(arg)
	if err != nil {
		return nil, err
	}
	return onnx.Open(m, onnx.Options{Library: library, Session: onnx.SessionOptions{IntraOpThreads: threads}})
}

// openSpine loads the stages of a vertebral model folder that exist: the
// localiser, then the network, then the fusion model. Training writes them
// in that order, and each stage's training data needs the ones before.
func openSpine(m *inference.Manifest, library string, threads int) (*spine.Pipeline, func(), error) {
	l, err := onnx.Open(m, onnx.Options{Library: library, Session: onnx.SessionOptions{IntraOpThreads: threads}, Partial: true})
	if err != nil {
		return nil, nil, err
	}
	return l.Pipeline, func() { l.Close() }, nil
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

// hipLocaliser is a loaded model's hip localiser, nil (not a typed nil)
// when it has none.
func hipLocaliser(l *onnx.Loaded) analysis.HipLocaliser {
	if l.HipLocaliser == nil {
		return nil
	}
	return l.HipLocaliser
}

// reviewBelow is the service's default review threshold, which `analyze`
// and `eval` apply as the service does.
func reviewBelow() analysis.Policy {
	return analysis.Policy{ReviewBelow: config.Default().Results.ReviewBelow}
}
