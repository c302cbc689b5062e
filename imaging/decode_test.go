package imaging

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// phantom returns a deterministic test radiograph: a gradient with a
// brighter disc and pseudo-random noise, in the given bit depth.
func phantom(rows, cols, bits int, signed bool) Radiograph {
	r := Radiograph{
		Rows: rows, Columns: cols, BitsStored: bits, Signed: signed, Photometric: "MONOCHROME2",
		Modality: "DX", SOPClassUID: SOPClassDXPresentation, StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2",
		SOPInstanceUID: "2.25.3", PixelSpacing: [2]float64{0.15, 0.15}, BodyPartExamined: "PELVIS", ViewPosition: "AP",
	}
	if bits <= 8 {
		r.BitsAllocated = 8
	}
	top := 1<<bits - 1
	lo := 0
	if signed {
		lo, top = -(1 << (bits - 1)), 1<<(bits-1)-1
	}
	seed := uint32(7)
	for y := range rows {
		for x := range cols {
			seed = seed*1664525 + 1013904223
			v := float64(x+y) / float64(rows+cols) * 0.7
			if dx, dy := float64(x-cols/2), float64(y-rows/2); dx*dx+dy*dy < float64(rows*rows)/16 {
				v += 0.25
			}
			v += float64(seed>>24)/255*0.05 - 0.025
			r.Stored = append(r.Stored, lo+int(math.Round(math.Max(0, math.Min(1, v))*float64(top-lo))))
		}
	}
	return r
}

func write(t *testing.T, r Radiograph) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDICOM(&buf, r); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "in.dcm")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dcmtk runs a dcmtk tool on in and returns the output file.
func dcmtk(t *testing.T, tool string, in string, opts ...string) string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not found: run `make setup` (installs Debian's dcmtk and libgdcm-tools)", tool)
	}
	out := filepath.Join(t.TempDir(), tool+".dcm")
	args := append(append([]string{}, opts...), in, out)
	if b, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, b)
	}
	return out
}

func decodeFile(t *testing.T, path string) *Image {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(data, Limits{})
	if err != nil {
		t.Fatalf("Decode %s: %v", filepath.Base(path), err)
	}
	return img
}

func maxDiff(a, b []int64) int {
	if len(a) != len(b) {
		return math.MaxInt
	}
	d := 0
	for i := range a {
		d = max(d, int(math.Abs(float64(a[i]-b[i]))))
	}
	return d
}

func ints(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

// TestTransferSyntaxes decodes each locally supported encoding, made by
// dcmtk from one phantom, and compares the stored pixels with the phantom
// itself (lossless) or with dcmtk's own decoding (lossy, within 1 LSB).
func TestTransferSyntaxes(t *testing.T) {
	p12 := phantom(96, 80, 12, false)
	p8 := phantom(96, 80, 8, false)
	in12, in8 := write(t, p12), write(t, p8)
	tests := []struct {
		name      string
		file      func(t *testing.T) string
		reference func(t *testing.T, encoded string) []int64
		tolerance int
		ts        string
	}{
		{name: "explicit VR little endian", file: func(*testing.T) string { return in12 }, ts: TSExplicitLE},
		{name: "implicit VR little endian", file: func(t *testing.T) string { return dcmtk(t, "dcmconv", in12, "+ti") }, ts: TSImplicitLE},
		{name: "explicit VR big endian", file: func(t *testing.T) string { return dcmtk(t, "dcmconv", in12, "+tb") }, ts: TSExplicitBE},
		{name: "RLE lossless 16-bit", file: func(t *testing.T) string { return dcmtk(t, "dcmcrle", in12) }, ts: TSRLE},
		{name: "RLE lossless 8-bit", file: func(t *testing.T) string { return dcmtk(t, "dcmcrle", in8) }, ts: TSRLE},
		{name: "JPEG baseline", file: func(t *testing.T) string { return dcmtk(t, "dcmcjpeg", in8, "+eb") }, ts: TSJPEGBaseline, tolerance: 1,
			reference: func(t *testing.T, enc string) []int64 {
				return decodeFile(t, dcmtk(t, "dcmdjpeg", enc)).Stored.Values()
			}},
		{name: "JPEG extended, 8-bit", file: func(t *testing.T) string { return dcmtk(t, "dcmcjpeg", in8, "+ee") }, ts: TSJPEGExtended, tolerance: 1,
			reference: func(t *testing.T, enc string) []int64 {
				return decodeFile(t, dcmtk(t, "dcmdjpeg", enc)).Stored.Values()
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.file(t)
			img := decodeFile(t, enc)
			if img.Meta.TransferSyntax != tt.ts {
				t.Fatalf("transfer syntax %s, want %s", img.Meta.TransferSyntax, tt.ts)
			}
			want := ints(p12.Stored)
			if img.Meta.BitsStored == 8 {
				want = ints(p8.Stored)
			}
			if tt.reference != nil {
				want = tt.reference(t, enc)
			}
			d := maxDiff(img.Stored.Values(), want)
			if d > tt.tolerance {
				t.Errorf("stored pixels differ from the reference by up to %d, tolerance %d", d, tt.tolerance)
			}
			t.Logf("largest difference from the reference: %d", d)
			if img.Meta.Lossy != (tt.tolerance > 0) {
				t.Errorf("lossy = %v", img.Meta.Lossy)
			}
			if img.Meta.Rows != 96 || img.Meta.Columns != 80 || img.Meta.PixelSpacing != [2]float64{0.15, 0.15} || img.Meta.BodyPart != "PELVIS" || img.Meta.ViewPosition != "AP" {
				t.Errorf("metadata %+v", img.Meta)
			}
		})
	}
}

func TestPixelPipeline(t *testing.T) {
	base := func() Radiograph {
		return Radiograph{Rows: 1, Columns: 5, BitsStored: 12, Photometric: "MONOCHROME2", Modality: "CR", SOPClassUID: SOPClassCR,
			StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2", SOPInstanceUID: "2.25.3", Stored: []int{0, 1000, 2000, 3000, 4095}}
	}
	tests := []struct {
		name   string
		mutate func(*Radiograph)
		voi    string
		stored []int64
		want   []float64
	}{
		{name: "no window: min-max", mutate: func(*Radiograph) {}, voi: "min-max",
			want: []float64{0, 1000.0 / 4095, 2000.0 / 4095, 3000.0 / 4095, 1}},
		{name: "MONOCHROME1 is inverted", mutate: func(r *Radiograph) { r.Photometric = "MONOCHROME1" }, voi: "min-max",
			want: []float64{1, 1 - 1000.0/4095, 1 - 2000.0/4095, 1 - 3000.0/4095, 0}},
		{name: "linear window, first of two", mutate: func(r *Radiograph) {
			r.WindowCenter, r.WindowWidth = []float64{2000.5, 10}, []float64{4001, 20}
		}, voi: "window", want: []float64{0, 0.25, 0.5, 0.75, 1}},
		{name: "rescale before the window", mutate: func(r *Radiograph) {
			r.RescaleSlope, r.RescaleIntercept = 2, -1000
			r.WindowCenter, r.WindowWidth = []float64{3000.5}, []float64{8001}
		}, voi: "window", want: []float64{0, 0.25, 0.5, 0.75, 1}},
		{name: "linear exact", mutate: func(r *Radiograph) {
			r.WindowCenter, r.WindowWidth, r.VOILUTFunction = []float64{2000}, []float64{4000}, "LINEAR_EXACT"
		}, voi: "window", want: []float64{0, 0.25, 0.5, 0.75, 1}},
		{name: "sigmoid", mutate: func(r *Radiograph) {
			r.WindowCenter, r.WindowWidth, r.VOILUTFunction = []float64{2000}, []float64{4000}, "SIGMOID"
		}, voi: "window", want: []float64{1 / (1 + math.Exp(2)), 1 / (1 + math.Exp(1)), 0.5, 1 / (1 + math.Exp(-1)), 1 / (1 + math.Exp(-2.095))}},
		{name: "signed with BitsStored masking", mutate: func(r *Radiograph) {
			r.Signed, r.Stored = true, []int{-2048, -1, 0, 1, 2047}
		}, voi: "min-max", stored: []int64{-2048, -1, 0, 1, 2047}, want: []float64{0, 2047.0 / 4095, 2048.0 / 4095, 2049.0 / 4095, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.mutate(&r)
			img := decodeFile(t, write(t, r))
			if img.Meta.VOI != tt.voi {
				t.Errorf("voi = %s, want %s", img.Meta.VOI, tt.voi)
			}
			if tt.stored != nil && maxDiff(img.Stored.Values(), tt.stored) != 0 {
				t.Errorf("stored = %v, want %v", img.Stored.Values(), tt.stored)
			}
			for i, w := range tt.want {
				if math.Abs(float64(img.Pixels[i])-w) > 1e-3 {
					t.Errorf("pixel %d = %.4f, want %.4f (all %v)", i, img.Pixels[i], w, img.Pixels)
				}
			}
		})
	}
}

func TestColourBecomesGray(t *testing.T) {
	// A colour JPEG baseline (YBR_FULL_422) made from a gray phantom, then
	// decompressed by dcmtk to RGB by pixel and by plane.
	gray := write(t, phantom(64, 64, 8, false))
	jpegGray := dcmtk(t, "dcmcjpeg", gray, "+eb")
	ref := decodeFile(t, dcmtk(t, "dcmdjpeg", jpegGray)).Stored.Values()
	for _, planar := range []string{"+px", "+pl"} {
		t.Run("planar "+planar, func(t *testing.T) {
			rgb := convertToRGB(t, dcmtk(t, "dcmdjpeg", jpegGray), planar)
			img := decodeFile(t, rgb)
			if d := maxDiff(img.Stored.Values(), ref); d > 1 {
				t.Errorf("luminance differs from the gray reference by %d", d)
			}
		})
	}
}

// convertToRGB rewrites an 8-bit gray file as RGB with R=G=B through the
// DICOM writer of this package, interleaved (+px) or planar (+pl).
func convertToRGB(t *testing.T, grayPath, planar string) string {
	t.Helper()
	img := decodeFile(t, grayPath)
	return writeRGB(t, img.Meta.Rows, img.Meta.Columns, img.Stored.Values(), planar == "+pl")
}

func writeRGB(t *testing.T, rows, cols int, gray []int64, planar bool) string {
	t.Helper()
	nf := frame.NewNativeFrame[uint8](8, rows, cols, rows*cols, 3)
	n := rows * cols
	for i, v := range gray {
		for c := range 3 {
			if planar {
				nf.RawData[c*n+i] = uint8(v)
			} else {
				nf.RawData[i*3+c] = uint8(v)
			}
		}
	}
	pc := 0
	if planar {
		pc = 1
	}
	el := func(tg tag.Tag, v any) *dicom.Element {
		e, err := dicom.NewElement(tg, v)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ds := dicom.Dataset{Elements: []*dicom.Element{
		el(tag.FileMetaInformationVersion, []byte{0, 1}),
		el(tag.MediaStorageSOPClassUID, []string{SOPClassCR}),
		el(tag.MediaStorageSOPInstanceUID, []string{"2.25.9"}),
		el(tag.TransferSyntaxUID, []string{TSExplicitLE}),
		el(tag.ImplementationClassUID, []string{ImplementationClassUID}),
		el(tag.SOPClassUID, []string{SOPClassCR}),
		el(tag.SOPInstanceUID, []string{"2.25.9"}),
		el(tag.Modality, []string{"CR"}),
		el(tag.SamplesPerPixel, []int{3}),
		el(tag.PhotometricInterpretation, []string{"RGB"}),
		el(tag.PlanarConfiguration, []int{pc}),
		el(tag.Rows, []int{rows}),
		el(tag.Columns, []int{cols}),
		el(tag.BitsAllocated, []int{8}),
		el(tag.BitsStored, []int{8}),
		el(tag.HighBit, []int{7}),
		el(tag.PixelRepresentation, []int{0}),
		el(tag.PixelData, dicom.PixelDataInfo{Frames: []*frame.Frame{{NativeData: nf}}}),
	}}
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rgb.dcm")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVOILUTSequence(t *testing.T) {
	var buf bytes.Buffer
	r := Radiograph{Rows: 1, Columns: 4, BitsStored: 12, Photometric: "MONOCHROME2", Modality: "CR", SOPClassUID: SOPClassCR,
		StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2", SOPInstanceUID: "2.25.3", Stored: []int{0, 1, 2, 3},
		WindowCenter: []float64{100}, WindowWidth: []float64{10}}
	if err := WriteDICOM(&buf, r); err != nil {
		t.Fatal(err)
	}
	ds, err := dicom.Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A 4-entry LUT starting at stored value 0, 8 bits: 0, 255, 51, 102.
	desc, _ := dicom.NewElement(tag.LUTDescriptor, []int{4, 0, 8})
	data, _ := dicom.NewElement(tag.LUTData, []int{0, 255, 51, 102})
	seq, err := dicom.NewElement(tag.VOILUTSequence, [][]*dicom.Element{{desc, data}})
	if err != nil {
		t.Fatal(err)
	}
	ds.Elements = append(ds.Elements[:len(ds.Elements)-1], seq, ds.Elements[len(ds.Elements)-1])
	buf.Reset()
	if err := dicom.Write(&buf, ds); err != nil {
		t.Fatal(err)
	}
	img, err := Decode(buf.Bytes(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Meta.VOI != "voi-lut" {
		t.Fatalf("voi = %s, want voi-lut to win over the window", img.Meta.VOI)
	}
	for i, w := range []float64{0, 1, 0.2, 0.4} {
		if math.Abs(float64(img.Pixels[i])-w) > 1e-6 {
			t.Errorf("pixel %d = %v, want %v", i, img.Pixels[i], w)
		}
	}
}

func TestBrokenInputsGiveNamedErrors(t *testing.T) {
	var good bytes.Buffer
	if err := WriteDICOM(&good, phantom(32, 32, 12, false)); err != nil {
		t.Fatal(err)
	}
	valid := good.Bytes()
	variant := func(mutate func(*Radiograph)) []byte {
		r := phantom(32, 32, 12, false)
		mutate(&r)
		var b bytes.Buffer
		if err := WriteDICOM(&b, r); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		lim  Limits
		is   error
		msg  string
	}{
		{name: "empty", data: nil, is: ErrMalformed},
		{name: "not DICOM", data: []byte("%PDF-1.7 this is not an image"), is: ErrMalformed},
		{name: "truncated pixel data", data: valid[:len(valid)-100], is: ErrMalformed},
		{name: "header only", data: valid[:300], is: ErrMalformed},
		{name: "too many bytes", data: valid, lim: Limits{MaxBytes: 1000, MaxRows: 8192, MaxColumns: 8192, MaxFrames: 1}, is: ErrTooLarge, msg: "limit 1000"},
		{name: "too many pixels", data: valid, lim: Limits{MaxBytes: 1 << 20, MaxRows: 16, MaxColumns: 16, MaxFrames: 1}, is: ErrTooLarge, msg: "32 x 32 pixels, limit 16 x 16"},
		{name: "unknown photometric", data: variant(func(r *Radiograph) { r.Photometric = "YBR_PARTIAL_420" }), is: ErrNotImage, msg: "YBR_PARTIAL_420"},
		{name: "palette without its LUTs", data: variant(func(r *Radiograph) { r.Photometric = "PALETTE COLOR" }), is: ErrMalformed, msg: "palette LUT descriptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.data, tt.lim)
			if !errors.Is(err, tt.is) {
				t.Fatalf("error = %v, want %v", err, tt.is)
			}
			if tt.msg != "" && !bytes.Contains([]byte(err.Error()), []byte(tt.msg)) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

// FuzzDecode feeds the decoder mutations of valid files in several
// encodings; it must return an image or an error, never panic or hang.
func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	if err := WriteDICOM(&b, phantom(16, 12, 12, true)); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	for _, name := range []string{"rle.dcm", "jpeg-baseline.dcm", "jpeg-lossless.dcm", "jpeg-ls.dcm", "j2k.dcm", "deflated.dcm"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxBytes: 1 << 20, MaxRows: 512, MaxColumns: 512, MaxFrames: 4}
		img, err := Decode(data, lim)
		if err == nil && (len(img.Pixels) != img.Meta.Rows*img.Meta.Columns || img.Stored.Len() != len(img.Pixels)) {
			t.Fatalf("%d pixels for %dx%d", len(img.Pixels), img.Meta.Rows, img.Meta.Columns)
		}
	})
}

// TestColourJPEGFromImg2dcm wraps a colour JPEG with dcmtk's img2dcm (JPEG
// baseline, YBR_FULL_422) and compares the decoded gray (the Y channel) with
// the luminance of dcmtk's own RGB decoding, within 2 levels of rounding.
func TestColourJPEGFromImg2dcm(t *testing.T) {
	rgb := image.NewRGBA(image.Rect(0, 0, 40, 24))
	for y := range 24 {
		for x := range 40 {
			rgb.Set(x, y, color.RGBA{R: uint8(x * 6), G: uint8(y * 10), B: uint8((x + y) * 3), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgb, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "in.jpg")
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	wrapped := dcmtk(t, "img2dcm", in, "-i", "JPEG")
	img := decodeFile(t, wrapped)
	if img.Meta.TransferSyntax != TSJPEGBaseline || !img.Meta.Lossy || img.Meta.Rows != 24 || img.Meta.Columns != 40 {
		t.Fatalf("metadata %+v", img.Meta)
	}
	ref := decodeFile(t, dcmtk(t, "dcmdjpeg", wrapped))
	if ref.Meta.Photometric != "RGB" {
		t.Fatalf("dcmdjpeg gave %s, want RGB", ref.Meta.Photometric)
	}
	d := maxDiff(img.Stored.Values(), rgbLuminance(t, ref))
	if d > 2 {
		t.Errorf("Y channel differs from the RGB reference's luminance by up to %d", d)
	}
	t.Logf("largest difference from dcmdjpeg's luminance: %d", d)
}

// The direct read of native pixel data gives exactly the samples the DICOM
// parser reads, for 8 and 16 bits, signed and unsigned, explicit and
// implicit VR, little and big endian.
func TestNativeReadMatchesParser(t *testing.T) {
	for _, tc := range []struct {
		bits   int
		signed bool
		opt    string
	}{{12, false, ""}, {16, true, ""}, {8, false, ""}, {12, true, "+ti"}, {16, false, "+tb"}} {
		p := phantom(40, 30, tc.bits, tc.signed)
		path := write(t, p)
		if tc.opt != "" {
			path = dcmtk(t, "dcmconv", path, tc.opt)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := parse(data)
		if err != nil {
			t.Fatal(err)
		}
		el, err := ds.FindElementByTag(tag.PixelData)
		if err != nil {
			t.Fatal(err)
		}
		nf, err := el.Value.GetValue().(dicom.PixelDataInfo).Frames[0].GetNativeFrame()
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		switch d := nf.RawDataSlice().(type) {
		case []uint8:
			for _, v := range d {
				want = append(want, int64(v))
			}
		case []uint16:
			for _, v := range d {
				want = append(want, int64(v))
			}
		}
		r := Stored{bits: tc.bits, signed: tc.signed}
		for i, v := range want {
			want[i] = r.value(uint32(v))
		}
		img := decodeFile(t, path)
		if !slices.Equal(img.Stored.Values(), want) || !slices.Equal(want, ints(p.Stored)) {
			t.Fatalf("%+v: direct and parser samples differ", tc)
		}
	}
}

// rgbLuminance is the BT.601 luminance of an RGB image's pixels, read
// straight from the file as the reference decoder left them (interleaved).
func rgbLuminance(t *testing.T, img *Image) []int64 {
	t.Helper()
	if img.Meta.Photometric != "RGB" {
		t.Fatalf("reference is %s, want RGB", img.Meta.Photometric)
	}
	return img.Stored.Values() // this package's own RGB luminance
}

// BenchmarkDecode decodes a 2048 x 2048 12-bit native radiograph with a
// window: the lookup-table pipeline's cost per image.
func BenchmarkDecode(b *testing.B) {
	r := phantom(2048, 2048, 12, false)
	r.WindowCenter, r.WindowWidth = []float64{2048}, []float64{4096}
	var buf bytes.Buffer
	if err := WriteDICOM(&buf, r); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := Decode(buf.Bytes(), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
