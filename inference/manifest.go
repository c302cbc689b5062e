package inference

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ManifestSchema is the manifest schema this build reads. A manifest with
// another schema is refused at load, naming both.
const ManifestSchema = "orthotriage.model/v1"

// SyntheticWarning is the text every result of a model trained on
// synthetic data carries (model card, Device, cards).
const SyntheticWarning = "synthetic training data - not for clinical use"

// Manifest is a model's inference contract: what goes in, how pixels are
// prepared, what comes out and what the outputs mean. A hospital that
// validates its own weights ships them with a manifest of this shape.
type Manifest struct {
	Schema       string             `json:"schema"`
	ID           string             `json:"id"`
	Version      string             `json:"version"`
	Task         string             `json:"task"` // "hip": per-hip classification of an AP pelvis
	Architecture string             `json:"architecture"`
	File         string             `json:"file"` // the ONNX file, relative to the manifest
	Inputs       []Tensor           `json:"inputs"`
	Outputs      []Tensor           `json:"outputs"`
	Preprocess   Preprocess         `json:"preprocessing"`
	Labels       []Label            `json:"labels"`
	Calibration  Calibration        `json:"calibration"`
	Thresholds   map[string]float64 `json:"thresholds"` // label key -> probability at which the finding is reported
	Triage       []TriageRule       `json:"triage"`
	IntendedUse  string             `json:"intendedUse"`
	// FLOPs is the counted floating-point operations of one input
	// (convolutions and linear layers, a multiply-add counting two), for
	// benchmarks; 0 when unknown.
	FLOPs        int64  `json:"flopsPerInput,omitempty"`
	TrainingData string `json:"trainingData"` // "synthetic" or a description of clinical data
	Warning      string `json:"warning,omitempty"`

	fsys  fs.FS  // the model's folder
	where string // that folder, for messages
}

// Tensor describes one model input or output; -1 in Shape is a dynamic
// dimension (the batch).
type Tensor struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	DType string  `json:"dtype"`
	Role  string  `json:"role,omitempty"` // outputs: "logits" or "cam"
}

// Preprocess is the pixel preparation the model was trained with.
type Preprocess struct {
	Regions   []Region  `json:"regions"`
	Resize    Resize    `json:"resize"`
	Normalize Normalize `json:"normalize"`
}

// Region is a square crop of the decoded radiograph. Cx and Cy place its
// centre as fractions of the image width and height; Size is its side as
// a fraction of the image width. Mirror flips it left-right so that both
// hips reach the model in one orientation.
type Region struct {
	Name       string  `json:"name"`
	Laterality string  `json:"laterality"` // the patient's side: right or left
	Cx         float64 `json:"cx"`
	Cy         float64 `json:"cy"`
	Size       float64 `json:"size"`
	Mirror     bool    `json:"mirror"`
}

// Resize is the model's input size and the resampling filter.
type Resize struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Filter string `json:"filter"` // catmull-rom, bilinear or approx-bilinear
}

// Normalize maps a display value v in [0,1] to (v-Mean)/Std.
type Normalize struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
}

// Label is one output class with its code.
type Label struct {
	Key     string `json:"key"`
	Display string `json:"display"`
	System  string `json:"system"`
	Code    string `json:"code"`
	// Verified says where the code was checked, or "local" for a code of
	// the project's own system where no standard code exists.
	Verified string `json:"verified"`
	// Normal marks the label meaning "no abnormality" (at most one).
	Normal bool `json:"normal,omitempty"`
}

// Calibration is applied to the logits before the softmax.
type Calibration struct {
	Temperature float64 `json:"temperature"`
}

// TriageRule gives a priority when any of Classes reaches MinProbability;
// rules are read in order and the first match wins.
type TriageRule struct {
	Classes        []string `json:"classes"`
	MinProbability float64  `json:"minProbability"`
	Priority       string   `json:"priority"` // stat, asap, urgent or routine
}

// LoadManifest reads and validates dir/manifest.json from disk.
func LoadManifest(dir string) (*Manifest, error) {
	return LoadManifestFS(os.DirFS(dir), dir)
}

// LoadManifestFS reads and validates manifest.json of a model folder;
// where names the folder in messages.
func LoadManifestFS(fsys fs.FS, where string) (*Manifest, error) {
	path := filepath.Join(where, "manifest.json")
	data, err := fs.ReadFile(fsys, "manifest.json")
	if err != nil {
		return nil, fmt.Errorf("model manifest %s: %w", path, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("model manifest %s: %w", path, err)
	}
	m.fsys, m.where = fsys, where
	return m, nil
}

// ParseManifest decodes a manifest strictly (unknown fields are errors) and
// validates it.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ModelPath is the ONNX file's path, for messages.
func (m *Manifest) ModelPath() string { return filepath.Join(m.where, m.File) }

// ModelBytes reads the ONNX file named by the manifest.
func (m *Manifest) ModelBytes() ([]byte, error) {
	if m.fsys == nil {
		return nil, fmt.Errorf("model %s: manifest not loaded from a folder", m.ID)
	}
	b, err := fs.ReadFile(m.fsys, m.File)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.ModelPath(), err)
	}
	return b, nil
}

// LabelIndex returns the output index of a label key, or -1.
func (m *Manifest) LabelIndex(key string) int {
	return slices.IndexFunc(m.Labels, func(l Label) bool { return l.Key == key })
}

// Output returns the output with the given role, or nil.
func (m *Manifest) Output(role string) *Tensor {
	for i := range m.Outputs {
		if m.Outputs[i].Role == role {
			return &m.Outputs[i]
		}
	}
	return nil
}

// Validate checks every field the service relies on and names each bad one.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if m.Schema != ManifestSchema {
		bad("schema", "%q, this build reads %q", m.Schema, ManifestSchema)
	}
	if m.ID == "" || strings.ContainsAny(m.ID, " /\\") {
		bad("id", "%q must be non-empty without spaces or slashes", m.ID)
	}
	if m.Version == "" {
		bad("version", "required")
	}
	if m.Task != "hip" {
		bad("task", "%q, this build runs \"hip\"", m.Task)
	}
	if m.File == "" || filepath.IsAbs(m.File) || strings.Contains(m.File, "..") {
		bad("file", "%q must be a file name beside the manifest", m.File)
	}
	if len(m.Inputs) != 1 {
		bad("inputs", "%d inputs, want 1 image tensor", len(m.Inputs))
	} else {
		in := m.Inputs[0]
		if in.DType != "float32" || len(in.Shape) != 4 || in.Shape[1] != 1 {
			bad("inputs[0]", "want float32 [batch,1,height,width], have %s %v", in.DType, in.Shape)
		} else if in.Shape[2] != int64(m.Preprocess.Resize.Height) || in.Shape[3] != int64(m.Preprocess.Resize.Width) {
			bad("inputs[0].shape", "%v does not match preprocessing.resize %dx%d", in.Shape, m.Preprocess.Resize.Width, m.Preprocess.Resize.Height)
		}
	}
	logits := m.Output("logits")
	if logits == nil {
		bad("outputs", "no output with role \"logits\"")
	} else if len(logits.Shape) != 2 || logits.Shape[1] != int64(len(m.Labels)) {
		bad("outputs.logits.shape", "%v, want [batch,%d] (one per label)", logits.Shape, len(m.Labels))
	}
	if cam := m.Output("cam"); cam != nil && (len(cam.Shape) != 4 || cam.Shape[1] != int64(len(m.Labels))) {
		bad("outputs.cam.shape", "%v, want [batch,%d,h,w]", cam.Shape, len(m.Labels))
	}
	for i, o := range m.Outputs {
		if o.Name == "" || o.DType != "float32" {
			bad(fmt.Sprintf("outputs[%d]", i), "want a named float32 tensor")
		}
	}
	p := m.Preprocess
	if len(p.Regions) == 0 {
		bad("preprocessing.regions", "at least one crop region required")
	}
	for i, r := range p.Regions {
		f := fmt.Sprintf("preprocessing.regions[%d]", i)
		if r.Name == "" || (r.Laterality != "right" && r.Laterality != "left") {
			bad(f, "needs a name and laterality right or left")
		}
		if !(r.Size > 0 && r.Size <= 1) || !(r.Cx >= 0 && r.Cx <= 1) || !(r.Cy >= 0 && r.Cy <= 1) {
			bad(f, "cx, cy in [0,1] and size in (0,1] required")
		}
	}
	if p.Resize.Width < 8 || p.Resize.Height < 8 || p.Resize.Width > 1024 || p.Resize.Height > 1024 {
		bad("preprocessing.resize", "%dx%d outside 8-1024", p.Resize.Width, p.Resize.Height)
	}
	if _, err := resampler(p.Resize.Filter); err != nil {
		bad("preprocessing.resize.filter", "%v", err)
	}
	if !(p.Normalize.Std > 0) || math.IsInf(p.Normalize.Mean, 0) || math.IsNaN(p.Normalize.Mean) {
		bad("preprocessing.normalize", "std must be > 0 and mean finite")
	}
	keys := map[string]bool{}
	normals := 0
	for i, l := range m.Labels {
		if l.Normal {
			if normals++; normals > 1 {
				bad(fmt.Sprintf("labels[%d].normal", i), "only one label may be the normal one")
			}
		}
		if l.Key == "" || keys[l.Key] {
			bad(fmt.Sprintf("labels[%d].key", i), "%q empty or repeated", l.Key)
		}
		keys[l.Key] = true
		if l.System == "" || l.Code == "" || l.Display == "" || l.Verified == "" {
			bad(fmt.Sprintf("labels[%d]", i), "system, code, display and verified required")
		}
	}
	if len(m.Labels) < 2 {
		bad("labels", "at least two classes required")
	}
	if !(m.Calibration.Temperature > 0) {
		bad("calibration.temperature", "must be > 0")
	}
	for k, v := range m.Thresholds {
		if !keys[k] || !(v >= 0 && v <= 1) {
			bad("thresholds."+k, "unknown label or value outside [0,1]")
		}
	}
	for i, r := range m.Triage {
		f := fmt.Sprintf("triage[%d]", i)
		switch r.Priority {
		case "stat", "asap", "urgent", "routine":
		default:
			bad(f+".priority", "%q, want stat, asap, urgent or routine", r.Priority)
		}
		for _, c := range r.Classes {
			if !keys[c] {
				bad(f+".classes", "unknown label %q", c)
			}
		}
		if !(r.MinProbability >= 0 && r.MinProbability <= 1) {
			bad(f+".minProbability", "outside [0,1]")
		}
	}
	if m.TrainingData == "" {
		bad("trainingData", "required (\"synthetic\" or a description)")
	}
	if m.TrainingData == "synthetic" && m.Warning != SyntheticWarning {
		bad("warning", "a model trained on synthetic data must carry %q", SyntheticWarning)
	}
	if m.FLOPs < 0 {
		bad("flopsPerInput", "negative")
	}
	if m.IntendedUse == "" {
		bad("intendedUse", "required")
	}
	return errors.Join(errs...)
}
