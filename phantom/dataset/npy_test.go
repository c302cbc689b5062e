package dataset

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// npyHeader splits a .npy file into its header dict and its values.
func npyHeader(t *testing.T, b []byte) (string, []float32) {
	t.Helper()
	if len(b) < 10 || !bytes.HasPrefix(b, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("not a .npy 1.0 file: % x", b[:min(10, len(b))])
	}
	n := int(b[8]) | int(b[9])<<8
	if (10+n)%64 != 0 || b[10+n-1] != '\n' {
		t.Errorf("header of %d bytes is not padded to 64 with a final newline", 10+n)
	}
	body := b[10+n:]
	v := make([]float32, len(body)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return string(b[10 : 10+n]), v
}

func readNPY(t *testing.T, path string) (string, []float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return npyHeader(t, b)
}

func TestWriteNPYHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int
		want  string
	}{
		{"4-d", []int{6, 1, 128, 128}, "'shape': (6, 1, 128, 128)"},
		{"2-d", []int{3, 2048}, "'shape': (3, 2048)"},
		{"1-d is a tuple of one", []int{5}, "'shape': (5,)"},
		{"long", []int{100000, 1, 224, 128, 7, 7, 7, 7}, "'shape': (100000, 1, 224, 128, 7, 7, 7, 7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeNPYHeader(&b, tc.shape); err != nil {
				t.Fatal(err)
			}
			header, values := npyHeader(t, b.Bytes())
			if !strings.HasPrefix(header, "{'descr': '<f4', 'fortran_order': False, "+tc.want+", }") || len(values) != 0 {
				t.Errorf("header %q", header)
			}
		})
	}
}

// A .npy file written later gets the number of rows written; the part
// file goes; CSV files get their header; a file that cannot be created
// fails finish.
func TestOutputs(t *testing.T) {
	dir := t.TempDir()
	o := newOutputs(dir)
	now, err := o.npy("now.npy", []int{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	later, err := o.npyLater("later.npy", []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	c := o.csv("rows.csv", []string{"index", "name"})
	now.write([]float32{1, 2, 3, 4, 5, 6})
	for i := range 3 {
		later.write([]float32{float32(i), -float32(i)})
		c.Write([]string{"0", "x"})
	}
	if err := o.finish(); err != nil {
		t.Fatal(err)
	}
	o.close()
	if h, v := readNPY(t, filepath.Join(dir, "now.npy")); !strings.Contains(h, "(2, 3)") || len(v) != 6 || v[5] != 6 {
		t.Errorf("now.npy %q %v", h, v)
	}
	if h, v := readNPY(t, filepath.Join(dir, "later.npy")); !strings.Contains(h, "(3, 1, 2)") || len(v) != 6 || v[5] != -2 {
		t.Errorf("later.npy %q %v", h, v)
	}
	if _, err := os.Stat(filepath.Join(dir, "later.npy.part")); !os.IsNotExist(err) {
		t.Errorf("the part file is left: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rows.csv")); string(b) != "index,name\n0,x\n0,x\n0,x\n" {
		t.Errorf("rows.csv %q", b)
	}

	bad := newOutputs(filepath.Join(dir, "missing"))
	defer bad.close()
	bad.csv("rows.csv", []string{"index"}).Write([]string{"1"})
	if err := bad.finish(); !os.IsNotExist(err) && (err == nil || !strings.Contains(err.Error(), "no such file")) {
		t.Errorf("finish into a missing folder: %v", err)
	}
	if _, err := bad.npy("x.npy", []int{1}); err == nil {
		t.Error("npy into a missing folder: no error")
	}
}

func itoa(v int) string { return strconv.Itoa(v) }
