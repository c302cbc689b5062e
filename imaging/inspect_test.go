package imaging

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// inspectRadiograph is a 4x3 MONOCHROME1 image with a rescale.
func inspectRadiograph(t *testing.T) []byte {
	t.Helper()
	r := Radiograph{Rows: 4, Columns: 3, BitsStored: 12, Photometric: "MONOCHROME1", Modality: "DX",
		SOPClassUID: SOPClassDXPresentation, StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2", SOPInstanceUID: "2.25.3",
		RescaleSlope: 2, RescaleIntercept: -100, Stored: []int{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 4095}}
	var b bytes.Buffer
	if err := WriteDICOM(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestInspect(t *testing.T) {
	img, err := Decode(inspectRadiograph(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := Inspect("x.dcm", img)
	want := Inspection{Source: "x.dcm", TransferSyntax: TSExplicitLE, Photometric: "MONOCHROME1", Rows: 4, Columns: 3,
		BitsAllocated: 16, BitsStored: 12, Modality: "DX", VOI: "min-max", StoredMin: 0, StoredMax: 4095, StoredMean: 4645.0 / 12,
		OutputMin: 0, OutputMax: 1, OutputMean: 1 - 4645.0/12/4095} // MONOCHROME1 is inverted after min-max
	if d := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-5)); d != "" {
		t.Errorf("Inspect (-want +got):\n%s", d)
	}
	if empty := Inspect("", &Image{}); empty.OutputMin != 0 || empty.OutputMax != 0 || empty.OutputMean != 0 {
		t.Errorf("no pixels: output %v %v %v, want zeros", empty.OutputMin, empty.OutputMax, empty.OutputMean)
	}
}

func TestSourceName(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"path", "/data/x.dcm", "/data/x.dcm"},
		{"URL", "http://pacs/dicom-web/studies/1", "http://pacs/dicom-web/studies/1"},
		{"URL with a password", "http://pacs:secret@pacs/dicom-web/studies/1", "http://pacs:xxxxx@pacs/dicom-web/studies/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SourceName(tc.src); got != tc.want {
				t.Errorf("SourceName(%q) = %q, want %q", tc.src, got, tc.want)
			}
		})
	}
}

// ReadSource reads files and URLs, a WADO-RS multipart answer or a plain
// body, within the size limit.
func TestReadSource(t *testing.T) {
	dcm := inspectRadiograph(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Accept"); a != dicomAccept {
			http.Error(w, "Accept "+a, http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/multipart":
			w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=b1`)
			fmt.Fprintf(w, "--b1\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--b1--\r\n", dcm)
		case "/plain":
			w.Header().Set("Content-Type", "application/dicom")
			w.Write(dcm)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "x.dcm")
	if err := os.WriteFile(file, dcm, 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(dcm))
	for _, tc := range []struct {
		name    string
		src     string
		limit   int64
		wantErr string
		tooBig  bool
	}{
		{name: "file", src: file, limit: size},
		{name: "file over the limit", src: file, limit: size - 1, tooBig: true},
		{name: "missing file", src: file + ".none", limit: size, wantErr: "no such file"},
		{name: "multipart URL", src: srv.URL + "/multipart", limit: size},
		{name: "multipart part over the limit", src: srv.URL + "/multipart", limit: size - 1, tooBig: true},
		{name: "plain URL", src: srv.URL + "/plain", limit: size},
		{name: "plain body over the limit", src: srv.URL + "/plain", limit: size - 1, tooBig: true},
		{name: "not found", src: srv.URL + "/none", limit: size, wantErr: "GET answered 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadSource(t.Context(), tc.src, tc.limit)
			switch {
			case tc.tooBig:
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("error %v, want ErrTooLarge", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case !bytes.Equal(got, dcm):
				t.Fatalf("read %d bytes, not the file's %d", len(got), len(dcm))
			}
		})
	}
}

// The PNG renderings keep the image's size and its display values.
func TestPNGRenderings(t *testing.T) {
	img := &Image{Pixels: []float32{0, 0.5, 1, 1.5, -1, 0.25}, Meta: Metadata{Rows: 2, Columns: 3}}
	g8, g16 := img.Gray8(), img.Gray16()
	if g8.Bounds() != image.Rect(0, 0, 3, 2) || g16.Bounds() != image.Rect(0, 0, 3, 2) {
		t.Fatalf("bounds %v %v", g8.Bounds(), g16.Bounds())
	}
	if want := []uint8{0, 128, 255, 255, 0, 64}; !bytes.Equal(g8.Pix, want) {
		t.Errorf("Gray8 %v, want %v (clamped to 0-1)", g8.Pix, want)
	}
	if v := g16.Gray16At(1, 0).Y; v != 32768 {
		t.Errorf("Gray16 at 0.5 = %d", v)
	}
	path := filepath.Join(t.TempDir(), "x.png")
	if err := SavePNG(path, g16); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := png.Decode(f)
	if err != nil || back.Bounds() != g16.Bounds() {
		t.Fatalf("saved PNG: %v %v", err, back)
	}
	if err := SavePNG(filepath.Join(t.TempDir(), "no", "such", "x.png"), g8); err == nil {
		t.Error("saving into a missing folder succeeded")
	}
}
