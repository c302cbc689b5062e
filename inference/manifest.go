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
	Schema  string `json:"schema"`
	ID      string `json:"id"`
	Version string `json:"version"`
	// Task is "hip" (per-hip classification of an AP pelvis) or
	// "vertebral-fracture-acuity" (lateral spine: File is then the
	// per-vertebra network, and Vertebral names the other stages).
	Task         string             `json:"task"`
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
	// Vertebral is the vertebral pipeline beyond File: the localiser, the
	// region of interest around each body and the fusion model. Required
	// for the vertebral task, refused for the hip task.
	Vertebral *Vertebral `json:"vertebral,omitempty"`
	// Gate are the thresholds of the image gate an image passes before it
	// is read (GateThresholds); absent or zero fields take the defaults.
	Gate *Gate `json:"gate,omitempty"`

	fsys  fs.FS  // the model's folder
	where string // that folder, for messages
}

// Tasks the service runs.
const (
	TaskHip       = "hip"
	TaskVertebral = "vertebral-fracture-acuity"
)

// Vertebral is the vertebral fracture acuity pipeline: a localiser finds
// the vertebral bodies and their levels on the whole lateral radiograph;
// each body's region of interest goes through the manifest's network
// (File: none, acute or chronic, plus its pooled deep features) and
// radiomics; the fusion model turns the fractured bodies' features and the
// clinical data into the probability of an acute fracture.
type Vertebral struct {
	Localiser Localiser `json:"localiser"`
	ROI       ROI       `json:"roi"`
	// RadiomicsBins is the number of fixed bins (IBSI FBN) texture and
	// histogram features are computed with.
	RadiomicsBins int `json:"radiomicsBins"`
	// Fusion is the fusion model's file (selection, trees, nomogram),
	// relative to the manifest.
	Fusion string `json:"fusion"`
}

// Localiser is the whole-image localiser: input the radiograph resized to
// Width x Height (no crop), output per level [presence, cx, cy, w, h], all
// in [0,1], the box as fractions of the image.
type Localiser struct {
	File   string   `json:"file"`
	Input  string   `json:"input"`
	Output string   `json:"output"`
	Width  int      `json:"width"`
	Height int      `json:"height"`
	Levels []string `json:"levels"`
	// MinPresence is the presence at which a level counts as found.
	MinPresence float64 `json:"minPresence"`
}

// ROI is how a body's region of interest is cut: a square of side
// Scale x the box's longer side around the box centre goes to the network
// (at preprocessing.resize); radiomics read the box itself, inset by Inset
// of its width and height on each side.
type ROI struct {
	Scale float64 `json:"scale"`
	Inset float64 `json:"inset"`
}

// Tensor describes one model input or output; -1 in Shape is a dynamic
// dimension (the batch).
type Tensor struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	DType string  `json:"dtype"`
	Role  string  `json:"role,omitempty"` // outputs: "logits", "cam" or "features"
}

// Preprocess is the pixel preparation the model was trained with.
type Preprocess struct {
	// Regions are the hip crops: fixed squares of the image, or, with a
	// Localiser, only each crop's name, side and mirroring (the joint's box
	// places it).
	Regions []Region `json:"regions"`
	// Localiser, for a hip model, finds each hip joint and the pelvis on
	// the whole image (levels "right", "left", "pelvis", in that order);
	// each crop then follows its joint. Absent: the fixed crops of Regions
	// (for sites whose model expects them).
	Localiser *Localiser `json:"localiser,omitempty"`
	// CropScale: with a Localiser, a crop's side is CropScale x its joint
	// box's longer side, in [1,4].
	CropScale float64 `json:"cropScale,omitempty"`
	// Upright: with a Localiser, the crops are rotated so that the line
	// through both joint centres is horizontal.
	Upright   bool      `json:"upright,omitempty"`
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
	Key string `json:"key"`
	// Display is the model's wording of the class ("Normal hip"), shown to
	// readers and written as CodeableConcept.text.
	Display string `json:"display"`
	System  string `json:"system"`
	Code    string `json:"code"`
	// CodeDisplay is the code system's own display of Code (its preferred
	// term, "Normal"), written as Coding.display; empty: none is written.
	CodeDisplay string `json:"codeDisplay,omitempty"`
	// Verified says where the code and its display were checked, or
	// "local: ..." for a code of the project's own system where no
	// standard code exists.
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
func (m *Manifest) ModelBytes() ([]byte, error) { return m.ReadFile(m.File) }

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
	m.validateIdentity(bad)
	m.validateTask(bad)
	m.validateTensors(bad)
	m.Preprocess.validate(m.Task, bad)
	m.validateLabels(bad)
	m.validateUse(bad)
	if m.Gate != nil {
		m.Gate.validate(bad)
	}
	return errors.Join(errs...)
}

// badFunc records one bad field of a manifest.
type badFunc func(field, format string, args ...any)

func (m *Manifest) validateIdentity(bad badFunc) {
	if m.Schema != ManifestSchema {
		bad("schema", "%q, this build reads %q", m.Schema, ManifestSchema)
	}
	if m.ID == "" || strings.ContainsAny(m.ID, " /\\") {
		bad("id", "%q must be non-empty without spaces or slashes", m.ID)
	}
	if m.Version == "" {
		bad("version", "required")
	}
	if m.File == "" || filepath.IsAbs(m.File) || strings.Contains(m.File, "..") {
		bad("file", "%q must be a file name beside the manifest", m.File)
	}
}

// validateTask checks the task and the blocks that belong to it.
func (m *Manifest) validateTask(bad badFunc) {
	switch m.Task {
	case TaskHip:
		if m.Vertebral != nil {
			bad("vertebral", "only for task %q", TaskVertebral)
		}
		if len(m.Preprocess.Regions) == 0 {
			bad("preprocessing.regions", "at least one crop region required")
		}
	case TaskVertebral:
		if m.Vertebral == nil {
			bad("vertebral", "required for task %q", TaskVertebral)
		} else {
			m.Vertebral.validate(bad)
		}
		if len(m.Preprocess.Regions) != 0 {
			bad("preprocessing.regions", "the vertebral regions come from the localiser, not the manifest")
		}
		if m.Preprocess.Localiser != nil {
			bad("preprocessing.localiser", "the vertebral localiser is vertebral.localiser")
		}
	default:
		bad("task", "%q, this build runs %q and %q", m.Task, TaskHip, TaskVertebral)
	}
}

// validateTensors checks the network's inputs and outputs.
func (m *Manifest) validateTensors(bad badFunc) {
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
	if f := m.Output("features"); f != nil && len(f.Shape) != 2 {
		bad("outputs.features.shape", "%v, want [batch,n]", f.Shape)
	}
}

// validate checks the preprocessing block: the regions (fixed crops, or
// with a hip localiser only names, sides and mirroring), the crop
// geometry, the resize and the normalisation.
func (p Preprocess) validate(task string, bad badFunc) {
	if p.Localiser != nil {
		p.validateLocaliser(bad)
	} else {
		if p.CropScale != 0 {
			bad("preprocessing.cropScale", "only with preprocessing.localiser (fixed crops have their size)")
		}
		if p.Upright {
			bad("preprocessing.upright", "only with preprocessing.localiser (fixed crops are not rotated)")
		}
	}
	for i, r := range p.Regions {
		f := fmt.Sprintf("preprocessing.regions[%d]", i)
		if r.Name == "" || (r.Laterality != "right" && r.Laterality != "left") {
			bad(f, "needs a name and laterality right or left")
		}
		switch {
		case p.Localiser != nil:
			if r.Cx != 0 || r.Cy != 0 || r.Size != 0 {
				bad(f, "cx, cy and size are for fixed crops: with preprocessing.localiser the joint's box places the crop")
			}
		case !(r.Size > 0 && r.Size <= 1) || !(r.Cx >= 0 && r.Cx <= 1) || !(r.Cy >= 0 && r.Cy <= 1):
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
}

// HipLevels are the levels a hip localiser outputs, in this order.
var HipLevels = []string{"right", "left", "pelvis"}

// validateLocaliser checks a hip localiser stage and the crops it places.
func (p Preprocess) validateLocaliser(bad badFunc) {
	p.Localiser.validate("preprocessing.localiser", bad)
	if !slices.Equal(p.Localiser.Levels, HipLevels) {
		bad("preprocessing.localiser.levels", "%q, a hip localiser outputs %q", p.Localiser.Levels, HipLevels)
	}
	if !(p.CropScale >= 1 && p.CropScale <= 4) {
		bad("preprocessing.cropScale", "%v: with a localiser the crop side is cropScale x the joint box's longer side, in [1,4]", p.CropScale)
	}
	sides := map[string]int{}
	for _, r := range p.Regions {
		if sides[r.Laterality]++; sides[r.Laterality] > 1 {
			bad("preprocessing.regions", "with a localiser each side has one region (%s twice)", r.Laterality)
		}
	}
}

// validate checks a localiser stage; field names it in messages.
func (l Localiser) validate(field string, bad badFunc) {
	if !besideManifest(l.File) {
		bad(field+".file", "%q must be a file name beside the manifest", l.File)
	}
	if l.Input == "" || l.Output == "" {
		bad(field, "input and output tensor names required")
	}
	if l.Width < 8 || l.Height < 8 || l.Width > 1024 || l.Height > 1024 {
		bad(field, "input %dx%d outside 8-1024", l.Width, l.Height)
	}
	if len(l.Levels) == 0 {
		bad(field+".levels", "at least one level required")
	}
	if !(l.MinPresence > 0 && l.MinPresence < 1) {
		bad(field+".minPresence", "must be in (0,1)")
	}
}

// validateLabels checks the labels, the calibration, the thresholds and
// the triage rules.
func (m *Manifest) validateLabels(bad badFunc) {
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
}

// validateUse checks the training data, warning, FLOPs and intended use.
func (m *Manifest) validateUse(bad badFunc) {
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
}

// besideManifest checks a file name that must lie beside the manifest.
func besideManifest(name string) bool {
	return name != "" && !filepath.IsAbs(name) && !strings.Contains(name, "..") && !strings.ContainsAny(name, "/\\")
}

func (v *Vertebral) validate(bad badFunc) {
	v.Localiser.validate("vertebral.localiser", bad)
	if !(v.ROI.Scale >= 1 && v.ROI.Scale <= 4) {
		bad("vertebral.roi.scale", "must be in [1,4]")
	}
	if !(v.ROI.Inset >= 0 && v.ROI.Inset < 0.4) {
		bad("vertebral.roi.inset", "must be in [0,0.4)")
	}
	if v.RadiomicsBins < 2 || v.RadiomicsBins > 256 {
		bad("vertebral.radiomicsBins", "%d outside 2-256", v.RadiomicsBins)
	}
	if !besideManifest(v.Fusion) {
		bad("vertebral.fusion", "%q must be a file name beside the manifest", v.Fusion)
	}
}

// ReadFile reads a file beside the manifest (the localiser, the fusion
// model).
func (m *Manifest) ReadFile(name string) ([]byte, error) {
	if m.fsys == nil {
		return nil, fmt.Errorf("model %s: manifest not loaded from a folder", m.ID)
	}
	b, err := fs.ReadFile(m.fsys, name)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", filepath.Join(m.where, name), err)
	}
	return b, nil
}
