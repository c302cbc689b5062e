package models_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/orthotriage/orthotriage/internal/testenv"
)

// onnxGolden is a golden file the trainers write (trainlib.write_golden):
// stored inputs of an ONNX file and what PyTorch computed on them.
type onnxGolden struct {
	Schema       string  `json:"schema"`
	File         string  `json:"file"`
	Input        string  `json:"input"`
	Shape        []int64 `json:"shape"`
	InputFloat16 string  `json:"inputFloat16"`
	Tolerance    float64 `json:"tolerance"`
	Selection    string  `json:"selection"`
	Outputs      []struct {
		Name      string    `json:"name"`
		Transform string    `json:"transform"` // "softmax" (over axis 1) or ""
		Shape     []int64   `json:"shape"`
		Values    []float64 `json:"values"`
	} `json:"outputs"`
}

// shippedONNX is every ONNX file of the shipped models, each with the
// golden file its trainer writes next to it.
var shippedONNX = []struct{ model, file, golden string }{
	{"hip-000", "model.onnx", "model.golden.json"},
	{"hip-000", "localiser.onnx", "localiser.golden.json"},
	{"spine-000", "model.onnx", "model.golden.json"},
	{"spine-000", "localiser.onnx", "localiser.golden.json"},
}

// TestGoldenONNX runs ONNX Runtime on each shipped ONNX file's stored
// golden inputs (chosen by the trainer so that the outputs are not
// saturated) and compares with PyTorch's outputs: probabilities for
// logits, the values for other outputs, within the file's tolerance
// relative to max(1, |value|). A file not shipped is skipped; a shipped
// file without a golden fails.
func TestGoldenONNX(t *testing.T) {
	initRuntime(t)
	root := filepath.Join(testenv.RepoRoot(t), "inference", "models")
	for _, s := range shippedONNX {
		t.Run(s.model+"/"+s.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, s.model, s.file))
			if os.IsNotExist(err) {
				t.Skipf("%s/%s is not shipped", s.model, s.file)
			}
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(root, s.model, s.golden))
			if os.IsNotExist(err) {
				t.Fatalf("%s/%s has no golden file %s: retrain with the trainer's golden option (make train-hip, make train-spine)", s.model, s.file, s.golden)
			}
			if err != nil {
				t.Fatal(err)
			}
			var g onnxGolden
			if err := json.Unmarshal(raw, &g); err != nil {
				t.Fatal(err)
			}
			if g.Schema != "orthotriage.golden/v1" || g.File != s.file {
				t.Fatalf("golden %s: schema %q for %q", s.golden, g.Schema, g.File)
			}
			checkGolden(t, data, g)
		})
	}
}

func checkGolden(t *testing.T, data []byte, g onnxGolden) {
	t.Helper()
	in, err := halfInputs(g)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(g.Outputs))
	for i, o := range g.Outputs {
		names[i] = o.Name
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{g.Input}, names, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	x, err := ort.NewTensor(ort.NewShape(g.Shape...), in)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	outs := make([]ort.Value, len(names))
	if err := s.Run([]ort.Value{x}, outs); err != nil {
		t.Fatal(err)
	}
	tol := g.Tolerance
	if tol <= 0 {
		tol = 1e-4
	}
	for i, o := range g.Outputs {
		defer outs[i].Destroy()
		ten, ok := outs[i].(*ort.Tensor[float32])
		if !ok {
			t.Fatalf("output %s is not float32", o.Name)
		}
		if shape := []int64(ten.GetShape()); !slices.Equal(shape, o.Shape) {
			t.Fatalf("output %s has shape %v, the golden %v", o.Name, shape, o.Shape)
		}
		got := ten.GetData()
		if len(got) != len(o.Values) {
			t.Fatalf("output %s: %d values, the golden %d", o.Name, len(got), len(o.Values))
		}
		vals := make([]float64, len(got))
		for k, v := range got {
			vals[k] = float64(v)
		}
		if o.Transform == "softmax" {
			softmaxRows(vals, int(o.Shape[0]))
		} else if o.Transform != "" {
			t.Fatalf("output %s: unknown transform %q", o.Name, o.Transform)
		}
		var worst float64
		for k, v := range vals {
			want := o.Values[k]
			d := math.Abs(v-want) / math.Max(1, math.Abs(want))
			if !(d <= tol) { // also NaN
				t.Errorf("output %s value %d: ONNX Runtime %.7g, PyTorch %.7g (difference %.3g > %.3g)", o.Name, k, v, want, d, tol)
				break
			}
			worst = math.Max(worst, d)
		}
		t.Logf("%s: %d values, largest difference from PyTorch %.2g (%s)", o.Name, len(vals), worst, g.Selection)
	}
}

// halfInputs decodes the golden's little-endian float16 inputs.
func halfInputs(g onnxGolden) ([]float32, error) {
	b, err := base64.StdEncoding.DecodeString(g.InputFloat16)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, d := range g.Shape {
		n *= d
	}
	if int64(len(b)) != 2*n {
		return nil, errShape
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = halfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out, nil
}

var errShape = errorString("golden: the inputs do not match the shape")

type errorString string

func (e errorString) Error() string { return string(e) }

// halfToFloat32 converts an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac x 2^-24
		v := float32(frac) * float32(math.Ldexp(1, -24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// softmaxRows replaces each of the rows of v by its softmax.
func softmaxRows(v []float64, rows int) {
	k := len(v) / rows
	for r := range rows {
		row := v[r*k : (r+1)*k]
		m := slices.Max(row)
		var sum float64
		for i, x := range row {
			row[i] = math.Exp(x - m)
			sum += row[i]
		}
		for i := range row {
			row[i] /= sum
		}
	}
}

func TestHalfToFloat32(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x3555: 0.333251953125, 0x0001: 5.960464477539063e-08, 0x7bff: 65504, 0x8000: float32(math.Copysign(0, -1))} {
		if got := halfToFloat32(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("half %#04x: %g, want %g", h, got, want)
		}
	}
}
