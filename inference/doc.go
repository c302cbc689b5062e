// Package inference is what a model means, in pure Go: manifests and their
// tasks, the manifest-driven preprocessing (crops, localiser input,
// resizing), the postprocessing of a network's outputs (softmax,
// calibration, findings, activation maps) and the decoding of the
// vertebral localiser's boxes. It builds without cgo; running the networks
// is the adapter inference/onnx's, over ONNX Runtime.
package inference
