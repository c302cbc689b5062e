package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	r := imaging.Radiograph{Rows: 4, Columns: 3, BitsStored: 12, Photometric: "MONOCHROME1", Modality: "DX",
		SOPClassUID: imaging.SOPClassDXPresentation, StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2", SOPInstanceUID: "2.25.3",
		RescaleSlope: 2, RescaleIntercept: -100, Stored: []int{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 4095}}
	var b bytes.Buffer
	if err := imaging.WriteDICOM(&b, r); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "x.dcm")
	os.WriteFile(file, b.Bytes(), 0o600)
	out := filepath.Join(dir, "x.png")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"inspect", file, "--png", out}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("inspect: %v\n%s", err, stderr.String())
	}
	var got imaging.Inspection
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %s", stdout.String())
	}
	want := imaging.Inspection{Source: file, TransferSyntax: imaging.TSExplicitLE, Photometric: "MONOCHROME1", Rows: 4, Columns: 3,
		BitsAllocated: 16, BitsStored: 12, Modality: "DX", VOI: "min-max", StoredMin: 0, StoredMax: 4095, StoredMean: 4645.0 / 12,
		OutputMin: 0, OutputMax: 1}
	if d := got.OutputMean - (1 - 4645.0/12/4095); d > 1e-5 || d < -1e-5 {
		t.Errorf("outputMean %v: MONOCHROME1 must be inverted after min-max", got.OutputMean)
	}
	got.OutputMean = 0
	got.StoredMean = float64(int(got.StoredMean*1000)) / 1000
	want.StoredMean = float64(int(want.StoredMean*1000)) / 1000
	if got != want {
		t.Errorf("report\n got %+v\nwant %+v", got, want)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() != 3 || img.Bounds().Dy() != 4 {
		t.Fatalf("png: %v %v", err, img)
	}

	garbage := filepath.Join(dir, "garbage.dcm")
	os.WriteFile(garbage, []byte("not dicom"), 0o600)
	err = run(t.Context(), []string{"inspect", garbage}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "DICM") {
		t.Errorf("undecodable input: error %q, want one line naming the problem", err)
	}
}

// TestInspectWADORSInstance: `inspect URL` reads a WADO-RS instance URL of a
// real Orthanc (which answers a bare Accept: application/dicom with 400),
// here a JPEG-LS file decoded locally.
func TestInspectWADORSInstance(t *testing.T) {
	base := testenv.Orthanc(t, "pacs", "secret")
	r := imaging.Radiograph{Rows: 16, Columns: 12, BitsStored: 12, Photometric: "MONOCHROME2", Modality: "DX",
		SOPClassUID: imaging.SOPClassDXPresentation, StudyInstanceUID: "2.25.61", SeriesInstanceUID: "2.25.62", SOPInstanceUID: "2.25.63"}
	for i := range 16 * 12 {
		r.Stored = append(r.Stored, i*21)
	}
	var b bytes.Buffer
	if err := imaging.WriteDICOM(&b, r); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "jls.dcm")
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("dcmcjpls", in, out).CombinedOutput(); err != nil {
		t.Fatalf("dcmcjpls (run `make setup`): %v %s", err, msg)
	}
	jls, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/instances", bytes.NewReader(jls))
	req.SetBasicAuth("pacs", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	url := strings.Replace(base, "http://", "http://pacs:secret@", 1) + "/dicom-web/studies/2.25.61/series/2.25.62/instances/2.25.63"
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"inspect", url}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("inspect %s: %v\n%s", url, err, stderr.String())
	}
	var got imaging.Inspection
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %s", stdout.String())
	}
	if got.TransferSyntax != imaging.TSJPEGLS || got.Rows != 16 || got.Columns != 12 || got.StoredMax != 191*21 || got.Lossy {
		t.Errorf("report %+v", got)
	}
}
