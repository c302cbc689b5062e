package evaluate

import (
	"encoding/csv"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/orthotriage/orthotriage/inference"
)

// hipRow is one radiograph of a hip labels.csv: its file and each side's
// truth.
type hipRow struct {
	file  string
	sides map[string]hipSide
}

type hipSide struct {
	truth      int // index of the class among the model's labels
	difficulty string
}

// labelTable is a labels.csv: the header's columns by name and the rows.
type labelTable struct {
	path string
	col  map[string]int
	rows [][]string
}

// readLabelTable reads a labels.csv whose header names every column in need.
func readLabelTable(path string, need []string, what string) (*labelTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no labelled rows", path)
	}
	t := &labelTable{path: path, col: map[string]int{}, rows: recs[1:]}
	for i, h := range recs[0] {
		t.col[strings.TrimSpace(h)] = i
	}
	for _, n := range need {
		if _, ok := t.col[n]; !ok {
			return nil, fmt.Errorf("%s: header %v lacks %q%s", path, recs[0], n, what)
		}
	}
	return t, nil
}

// get is row n's value in column name, "" when the row is short or the
// column absent.
func (t *labelTable) get(n int, name string) string {
	if i, ok := t.col[name]; ok && i < len(t.rows[n]) {
		return strings.TrimSpace(t.rows[n][i])
	}
	return ""
}

// file is row n's file, which must lie inside the labels' folder.
func (t *labelTable) file(n int) (string, error) {
	file := t.get(n, "file")
	if file == "" || filepath.IsAbs(file) || slices.Contains(strings.Split(filepath.ToSlash(file), "/"), "..") {
		return "", fmt.Errorf("%s line %d: file %q must be a path inside the folder", t.path, n+2, file)
	}
	return file, nil
}

// number is row n's value in column name as a finite number.
func (t *labelTable) number(n int, name string) (float64, error) {
	v, err := strconv.ParseFloat(t.get(n, name), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s line %d: %s %q is not a number", t.path, n+2, name, t.get(n, name))
	}
	return v, nil
}

// readHipLabels reads labels.csv: file, left, right and optionally
// left_difficulty, right_difficulty; classes are the model's label keys.
func readHipLabels(path string, m *inference.Manifest) ([]hipRow, error) {
	t, err := readLabelTable(path, []string{"file", "left", "right"}, "")
	if err != nil {
		return nil, err
	}
	var rows []hipRow
	for n := range t.rows {
		file, err := t.file(n)
		if err != nil {
			return nil, err
		}
		row := hipRow{file: file, sides: map[string]hipSide{}}
		for _, side := range []string{"left", "right"} {
			class := t.get(n, side)
			idx := m.LabelIndex(class)
			if idx < 0 {
				return nil, fmt.Errorf("%s line %d: %s class %q is not a label of model %s", path, n+2, side, class, m.ID)
			}
			row.sides[side] = hipSide{truth: idx, difficulty: t.get(n, side+"_difficulty")}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// spineLabel is one labels.csv row of a spine phantom (phantom.SpineHeader).
type spineLabel struct {
	level, fracture, difficulty string
	box                         image.Rectangle
	clinical                    map[string]float64
}

// spineLabels are a spine labels.csv's vertebrae by file, and the files in
// the order they first appear.
type spineLabels struct {
	byFile map[string][]spineLabel
	files  []string
}

// readSpineLabels reads a spine labels.csv (phantom.SpineHeader).
func readSpineLabels(path string) (*spineLabels, error) {
	t, err := readLabelTable(path, []string{"file", "level", "x", "y", "w", "h", "fracture", "age", "sex", "symptom_days", "trauma", "tscore"},
		" (a spine labels.csv)")
	if err != nil {
		return nil, err
	}
	out := &spineLabels{byFile: map[string][]spineLabel{}}
	for n := range t.rows {
		file, err := t.file(n)
		if err != nil {
			return nil, err
		}
		l, err := t.spineLabel(n)
		if err != nil {
			return nil, err
		}
		if _, ok := out.byFile[file]; !ok {
			out.files = append(out.files, file)
		}
		out.byFile[file] = append(out.byFile[file], l)
	}
	return out, nil
}

// spineLabel reads row n's vertebra: level, fracture, box and clinical data.
func (t *labelTable) spineLabel(n int) (spineLabel, error) {
	l := spineLabel{level: t.get(n, "level"), fracture: t.get(n, "fracture"), difficulty: t.get(n, "difficulty"), clinical: map[string]float64{}}
	if l.fracture != "none" && l.fracture != "acute" && l.fracture != "chronic" {
		return l, fmt.Errorf("%s line %d: fracture %q is not none, acute or chronic", t.path, n+2, l.fracture)
	}
	var xywh [4]int
	for i, k := range []string{"x", "y", "w", "h"} {
		v, err := t.number(n, k)
		if err != nil {
			return l, err
		}
		xywh[i] = int(v)
	}
	l.box = image.Rect(xywh[0], xywh[1], xywh[0]+xywh[2], xywh[1]+xywh[3])
	for _, k := range []string{"age", "symptom_days", "tscore"} {
		v, err := t.number(n, k)
		if err != nil {
			return l, err
		}
		l.clinical[k] = v
	}
	l.clinical["female"] = map[bool]float64{true: 1, false: 0}[t.get(n, "sex") == "F"]
	l.clinical["trauma"] = map[bool]float64{true: 1, false: 0}[t.get(n, "trauma") == "true"]
	return l, nil
}
