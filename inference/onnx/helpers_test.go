package onnx_test

import (
	"testing"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/inference/onnx/onnxtest"
	"github.com/orthotriage/orthotriage/phantom"
)

func library(t testing.TB) string { return onnxtest.Library(t) }

func initRuntime(t testing.TB) { onnxtest.InitRuntime(t) }

// loadHip loads the shipped hip model with a session of one intra-op
// thread.
func loadHip(t testing.TB) *onnx.Model { return onnxtest.LoadHip(t, 1) }

func prepared(t testing.TB, md *onnx.Model, seed uint64, i int) (phantom.PelvisCase, []float32, []inference.Crop) {
	return onnxtest.Prepared(t, md, seed, i)
}
