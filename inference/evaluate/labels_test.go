package evaluate

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/models/modeltest"
)

func hipManifest(t *testing.T) *inference.Manifest {
	t.Helper()
	return modeltest.FixedCropHip(t) // the stand-in classifiers read fixed crops
}

// writeLabels writes text as labels.csv in a new folder and returns its path.
func writeLabels(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "labels.csv")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadHipLabels(t *testing.T) {
	m := hipManifest(t)
	normal, itf := m.LabelIndex("normal"), m.LabelIndex("itf")
	for _, tc := range []struct {
		name    string
		text    string
		want    []hipRow
		wantErr []string // substrings of the error
	}{
		{name: "classes", text: "file,left,right\na.dcm,normal,itf\nsub/b.dcm,itf,normal\n",
			want: []hipRow{{"a.dcm", map[string]hipSide{"left": {normal, ""}, "right": {itf, ""}}},
				{"sub/b.dcm", map[string]hipSide{"left": {itf, ""}, "right": {normal, ""}}}}},
		{name: "with difficulty, columns in any order", text: "right, left ,file,left_difficulty,right_difficulty\nitf,normal,a.dcm,typical,subtle\n",
			want: []hipRow{{"a.dcm", map[string]hipSide{"left": {normal, "typical"}, "right": {itf, "subtle"}}}}},
		{name: "a short row lacks its difficulty", text: "file,left,right,left_difficulty\na.dcm,normal,itf\n",
			want: []hipRow{{"a.dcm", map[string]hipSide{"left": {normal, ""}, "right": {itf, ""}}}}},
		{name: "unknown class", text: "file,left,right\na.dcm,normal,broken\n", wantErr: []string{"line 2", `right class "broken"`, "hip-000"}},
		{name: "escaping path", text: "file,left,right\n../../etc/passwd,normal,normal\n", wantErr: []string{"line 2", "inside the folder"}},
		{name: "absolute path", text: "file,left,right\n/etc/passwd,normal,normal\n", wantErr: []string{"inside the folder"}},
		{name: "no file", text: "file,left,right\n,normal,normal\n", wantErr: []string{"inside the folder"}},
		{name: "header lacks right", text: "file,left\na.dcm,normal\n", wantErr: []string{`lacks "right"`}},
		{name: "no rows", text: "file,left,right\n", wantErr: []string{"no labelled rows"}},
		{name: "bad CSV", text: "file,left,right\n\"a.dcm,normal,normal\n", wantErr: []string{"labels.csv"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readHipLabels(writeLabels(t, tc.text), m)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, rows %+v", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(hipRow{}, hipSide{})); d != "" {
				t.Errorf("rows (-want +got):\n%s", d)
			}
		})
	}
	if _, err := readHipLabels(filepath.Join(t.TempDir(), "labels.csv"), m); !os.IsNotExist(err) {
		t.Errorf("missing labels.csv: %v", err)
	}
}

func TestReadSpineLabels(t *testing.T) {
	header := "file,level,x,y,w,h,fracture,difficulty,detail,age,sex,symptom_days,trauma,tscore\n"
	for _, tc := range []struct {
		name    string
		text    string
		want    *spineLabels
		wantErr []string
	}{
		{name: "two files", text: header +
			"b.dcm,L1,10,20,30,40,acute,subtle,wedge,70,F,12,true,-2.5\n" +
			"b.dcm,L2,10,70,30,40,none,,,70,F,12,true,-2.5\n" +
			"a.dcm,T12,5,6,7,8,chronic,typical,,80,M,90,false,-3.0\n",
			want: &spineLabels{files: []string{"b.dcm", "a.dcm"}, byFile: map[string][]spineLabel{
				"b.dcm": {
					{level: "L1", fracture: "acute", difficulty: "subtle", box: image.Rect(10, 20, 40, 60),
						clinical: map[string]float64{"age": 70, "female": 1, "symptom_days": 12, "trauma": 1, "tscore": -2.5}},
					{level: "L2", fracture: "none", box: image.Rect(10, 70, 40, 110),
						clinical: map[string]float64{"age": 70, "female": 1, "symptom_days": 12, "trauma": 1, "tscore": -2.5}},
				},
				"a.dcm": {{level: "T12", fracture: "chronic", difficulty: "typical", box: image.Rect(5, 6, 12, 14),
					clinical: map[string]float64{"age": 80, "female": 0, "symptom_days": 90, "trauma": 0, "tscore": -3}}},
			}}},
		{name: "no difficulty column", text: "file,level,x,y,w,h,fracture,age,sex,symptom_days,trauma,tscore\na.dcm,L1,1,2,3,4,acute,70,F,1,true,-1\n",
			want: &spineLabels{files: []string{"a.dcm"}, byFile: map[string][]spineLabel{"a.dcm": {{level: "L1", fracture: "acute",
				box: image.Rect(1, 2, 4, 6), clinical: map[string]float64{"age": 70, "female": 1, "symptom_days": 1, "trauma": 1, "tscore": -1}}}}}},
		{name: "bad fracture", text: header + "a.dcm,L1,1,2,3,4,old,,,70,F,1,true,-1\n", wantErr: []string{"line 2", `fracture "old"`}},
		{name: "box not a number", text: header + "a.dcm,L1,1,2,wide,4,none,,,70,F,1,true,-1\n", wantErr: []string{"line 2", `w "wide" is not a number`}},
		{name: "clinical value not finite", text: header + "a.dcm,L1,1,2,3,4,none,,,NaN,F,1,true,-1\n", wantErr: []string{`age "NaN" is not a number`}},
		{name: "escaping path", text: header + "../a.dcm,L1,1,2,3,4,none,,,70,F,1,true,-1\n", wantErr: []string{"inside the folder"}},
		{name: "a hip labels.csv", text: "file,left,right\na.dcm,normal,normal\n", wantErr: []string{`lacks "level"`, "(a spine labels.csv)"}},
		{name: "no rows", text: header, wantErr: []string{"no labelled rows"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readSpineLabels(writeLabels(t, tc.text))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, labels %+v", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(spineLabels{}, spineLabel{})); d != "" {
				t.Errorf("labels (-want +got):\n%s", d)
			}
		})
	}
}
