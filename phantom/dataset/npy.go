package dataset

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeNPYHeader writes a NumPy .npy version 1.0 header for a C-ordered
// little-endian float32 array of the given shape.
func writeNPYHeader(w io.Writer, shape []int) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(dims) == 1 {
		tuple += "," // a Python tuple of one
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	// Magic (6) + version (2) + header length (2) + dict, padded with
	// spaces and a newline to a multiple of 64 bytes.
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	hdr := append([]byte("\x93NUMPY\x01\x00"), byte(len(dict)), byte(len(dict)>>8))
	_, err := w.Write(append(hdr, dict...))
	return err
}

// outputs owns the output files of one run: CSV and .npy writers in one
// folder, flushed together by finish.
type outputs struct {
	dir   string
	files []*os.File
	csvs  []*csv.Writer
	npys  []*npyWriter
	err   error
}

// npyWriter streams float32 values into a .npy file; a writer made by
// npyLater learns its first dimension at the end.
type npyWriter struct {
	name  string
	shape []int // without the first dimension when later
	later bool
	f     *os.File
	w     *bufio.Writer
	n     int // values written
	err   error
}

func newOutputs(dir string) *outputs { return &outputs{dir: dir} }

func (s *outputs) create(name string) *os.File {
	f, err := os.Create(filepath.Join(s.dir, name))
	if err != nil {
		s.err = errors.Join(s.err, err)
		return nil
	}
	s.files = append(s.files, f)
	return f
}

// csv creates a CSV file and writes its header; a file that cannot be
// created fails finish.
func (s *outputs) csv(name string, header []string) *csv.Writer {
	f := s.create(name)
	if f == nil {
		return csv.NewWriter(io.Discard)
	}
	w := csv.NewWriter(f)
	w.Write(header)
	s.csvs = append(s.csvs, w)
	return w
}

// npy creates a .npy file of a shape known now.
func (s *outputs) npy(name string, shape []int) (*npyWriter, error) {
	f := s.create(name)
	if f == nil {
		return nil, s.err
	}
	w := &npyWriter{name: name, shape: shape, f: f, w: bufio.NewWriterSize(f, 1<<20)}
	if err := writeNPYHeader(w.w, shape); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.npys = append(s.npys, w)
	return w, nil
}

// npyLater writes the values to NAME.part and the header at finish, when
// the number of rows (of the given shape) is known.
func (s *outputs) npyLater(name string, shape []int) (*npyWriter, error) {
	f := s.create(name + ".part")
	if f == nil {
		return nil, s.err
	}
	w := &npyWriter{name: name, shape: shape, later: true, f: f, w: bufio.NewWriterSize(f, 1<<20)}
	s.npys = append(s.npys, w)
	return w, nil
}

func (w *npyWriter) write(v []float32) {
	if w.err == nil {
		w.err = binary.Write(w.w, binary.LittleEndian, v)
		w.n += len(v)
	}
}

// finish flushes every file and gives the later .npy files their header.
func (s *outputs) finish() error {
	for _, c := range s.csvs {
		c.Flush()
		s.err = errors.Join(s.err, c.Error())
	}
	for _, w := range s.npys {
		s.err = errors.Join(s.err, w.err, w.w.Flush())
		if !w.later || s.err != nil {
			continue
		}
		per := 1
		for _, d := range w.shape {
			per *= d
		}
		s.err = errors.Join(s.err, w.assemble(filepath.Join(s.dir, w.name), w.n/max(per, 1)))
	}
	return s.err
}

// assemble writes the header for n rows, then the values of the .part file.
func (w *npyWriter) assemble(path string, n int) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	if err := writeNPYHeader(bw, append([]int{n}, w.shape...)); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	part := w.f.Name()
	in, err := os.Open(part)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := io.Copy(bw, in); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	return os.Remove(part)
}

// close closes every file (after finish, or on an error).
func (s *outputs) close() {
	for _, f := range s.files {
		f.Close()
	}
}
