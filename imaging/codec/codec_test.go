//go:build cgo && !nocodecs

package codec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The streams in testdata code a 16 x 12 ramp, value (i*37 + (i/16)*11)
// mod 2^bits at pixel i (see testdata/README.md for how each was made).
func ramp(i, bits int) int { return (i*37 + (i/16)*11) % (1 << bits) }

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func accept(Info) error { return nil }

func TestLosslessStreams(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		decode func([]byte, func(Info) error) (*Frame, error)
		bits   int
	}{
		{name: "JPEG lossless SV1, 16-bit", file: "lossless16.jpg", decode: JPEG, bits: 16},
		{name: "JPEG lossless, predictor 6, 12-bit", file: "lossless12.jpg", decode: JPEG, bits: 12},
		{name: "JPEG-LS lossless, 16-bit", file: "lossless16.jls", decode: JPEGLS, bits: 16},
		{name: "JPEG 2000 lossless, 16-bit", file: "lossless16.j2k", decode: JPEG2000, bits: 16},
		{name: "HTJ2K lossless, 12-bit", file: "htj2k12.j2c", decode: JPEG2000, bits: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.decode(read(t, tt.file), accept)
			if strings.HasPrefix(tt.file, "htj2k") && !HTSafe() {
				if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "High-Throughput") {
					t.Fatalf("HTJ2K with OpenJPEG before 2.5.1: %v, want ErrUnsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Columns != 16 || f.Rows != 12 || f.Components != 1 || f.Precision < tt.bits || f.Lossy || len(f.Words) != 192 {
				t.Fatalf("info %+v, %d words", f.Info, len(f.Words))
			}
			for i, v := range f.Words {
				if int(v) != ramp(i, tt.bits) {
					t.Fatalf("sample %d = %d, want %d", i, v, ramp(i, tt.bits))
				}
			}
		})
	}
}

// TestLossyStreamsSayLossy: DCT and near-lossless streams say so (a JPEG
// 2000 stream with the reversible wavelet may still be truncated: its
// transfer syntax says lossy, not the stream).
func TestLossyStreamsSayLossy(t *testing.T) {
	for _, tc := range []struct {
		file   string
		decode func([]byte, func(Info) error) (*Frame, error)
		bits   int
	}{{"extended12.jpg", JPEG, 12}, {"baseline8.jpg", JPEG, 8}, {"near12.jls", JPEGLS, 12}} {
		f, err := tc.decode(read(t, tc.file), accept)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !f.Lossy || f.Precision != tc.bits || f.Samples() != 192 {
			t.Errorf("%s: info %+v", tc.file, f.Info)
		}
	}
}

func TestRefusals(t *testing.T) {
	refuse := errors.New("refused")
	full := read(t, "lossless16.jls")
	tests := []struct {
		name   string
		data   []byte
		decode func([]byte, func(Info) error) (*Frame, error)
		accept func(Info) error
		is     error
	}{
		{name: "empty", data: nil, decode: JPEGLS, accept: accept, is: ErrCorrupt},
		{name: "not JPEG", data: []byte("not a jpeg at all"), decode: JPEG, accept: accept, is: ErrCorrupt},
		{name: "truncated JPEG lossless", data: read(t, "lossless16.jpg")[:120], decode: JPEG, accept: accept, is: ErrCorrupt},
		{name: "truncated JPEG-LS", data: full[:len(full)/2], decode: JPEGLS, accept: accept, is: ErrCorrupt},
		{name: "truncated JPEG 2000", data: read(t, "lossless16.j2k")[:100], decode: JPEG2000, accept: accept, is: ErrCorrupt},
		{name: "arithmetic coding", data: []byte{0xFF, 0xD8, 0xFF, 0xC9, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0}, decode: JPEG, accept: accept, is: ErrUnsupported},
		{name: "refused by the caller before allocating", data: full, decode: JPEGLS, accept: func(Info) error { return refuse }, is: refuse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.decode(tt.data, tt.accept); !errors.Is(err, tt.is) {
				t.Fatalf("error = %v, want %v", err, tt.is)
			}
		})
	}
}

// fuzzAccept bounds what a fuzzed header may make the decoders allocate.
func fuzzAccept(i Info) error {
	if i.Samples() > 1<<20 {
		return errors.New("too large for fuzzing")
	}
	return nil
}

func fuzz(f *testing.F, decode func([]byte, func(Info) error) (*Frame, error), seeds ...string) {
	for _, s := range seeds {
		f.Add(read(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decode(data, fuzzAccept)
		if err == nil && len(fr.Bytes)+len(fr.Words) != fr.Samples() {
			t.Fatalf("%d samples for %+v", len(fr.Bytes)+len(fr.Words), fr.Info)
		}
	})
}

// FuzzJPEG feeds IJG (all three builds) mutated JPEG streams.
func FuzzJPEG(f *testing.F) {
	fuzz(f, JPEG, "lossless16.jpg", "lossless12.jpg", "extended12.jpg", "baseline8.jpg")
}

// FuzzJPEGLS feeds CharLS mutated JPEG-LS streams.
func FuzzJPEGLS(f *testing.F) { fuzz(f, JPEGLS, "lossless16.jls", "near12.jls") }

// FuzzJPEG2000 feeds OpenJPEG mutated JPEG 2000 and HTJ2K code streams.
func FuzzJPEG2000(f *testing.F) { fuzz(f, JPEG2000, "lossless16.j2k", "lossy12.j2k", "htj2k12.j2c") }

// TestHarmlessJPEGWarnings: a sequential scan with odd SOS parameters (IJG
// warns and ignores them, as dcmtk and GDCM do) decodes as the plain one.
func TestHarmlessJPEGWarnings(t *testing.T) {
	plain := read(t, "baseline8.jpg")
	want, err := JPEG(plain, accept)
	if err != nil {
		t.Fatal(err)
	}
	odd := slices.Clone(plain)
	sos := bytes.Index(odd, []byte{0xFF, 0xDA})
	ns := int(odd[sos+4])
	odd[sos+5+2*ns+1] = 0x3E // Se 62 instead of 63: JWRN_NOT_SEQUENTIAL
	got, err := JPEG(odd, accept)
	if err != nil {
		t.Fatalf("odd SOS parameters: %v", err)
	}
	if !bytes.Equal(got.Bytes, want.Bytes) {
		t.Error("pixels differ from the plain stream's")
	}
}

// TestHTDetection: the scan that keeps High-Throughput code blocks away from
// an OpenJPEG that aborts on malformed ones finds them in OpenJPH's stream
// (and in the stream FuzzJPEG2000 found aborting OpenJPEG 2.5.0), and none
// in Part 1 streams.
func TestHTDetection(t *testing.T) {
	crasher := []byte(nil)
	if b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzJPEG2000", "380b523040d32419")); err == nil {
		crasher = b
	}
	for _, tc := range []struct {
		file string
		ht   bool
	}{{"htj2k12.j2c", true}, {"lossless16.j2k", false}, {"lossy12.j2k", false}} {
		ht, err := j2kUsesHT(read(t, tc.file))
		if err != nil || ht != tc.ht {
			t.Errorf("%s: HT %v, %v; want %v", tc.file, ht, err, tc.ht)
		}
	}
	if crasher == nil {
		t.Fatal("testdata/fuzz/FuzzJPEG2000/380b523040d32419 is missing")
	}
	if _, err := JPEG2000(fuzzInput(t, crasher), fuzzAccept); !HTSafe() && err == nil {
		t.Error("the stream that aborted OpenJPEG 2.5.0 was decoded")
	}
}

// fuzzInput reads the []byte of a go test fuzz corpus file.
func fuzzInput(t *testing.T, file []byte) []byte {
	t.Helper()
	lines := strings.SplitN(string(file), "\n", 3)
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("not a fuzz corpus file: %q", lines)
	}
	v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[1]), "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(v)
}
