package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawElement is one explicit VR little endian element for rawDICOM.
type rawElement struct {
	group, elem uint16
	vr          string
	value       []byte
}

func us(group, elem uint16, v ...uint16) rawElement {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return rawElement{group, elem, "US", b}
}

func text(group, elem uint16, vr, s string) rawElement {
	if len(s)%2 == 1 {
		if vr == "UI" {
			s += "\x00"
		} else {
			s += " "
		}
	}
	return rawElement{group, elem, vr, []byte(s)}
}

// rawDICOM writes a Part 10 file in Explicit VR Little Endian from image
// attributes and pixel data, for formats this package's writer does not
// make (colour, palette, 1 and 32 bits).
func rawDICOM(t *testing.T, rows, cols int, pi string, spp, bitsAllocated, bitsStored, planar int, pixels []byte, extra ...rawElement) string {
	t.Helper()
	els := []rawElement{
		text(0x0008, 0x0016, "UI", SOPClassCR), text(0x0008, 0x0018, "UI", "2.25.77"), text(0x0008, 0x0060, "CS", "CR"),
		text(0x0018, 0x0015, "CS", "PELVIS"), text(0x0020, 0x000D, "UI", "2.25.75"), text(0x0020, 0x000E, "UI", "2.25.76"),
		us(0x0028, 0x0002, uint16(spp)), text(0x0028, 0x0004, "CS", pi), us(0x0028, 0x0010, uint16(rows)), us(0x0028, 0x0011, uint16(cols)),
		us(0x0028, 0x0100, uint16(bitsAllocated)), us(0x0028, 0x0101, uint16(bitsStored)), us(0x0028, 0x0102, uint16(bitsStored-1)),
		us(0x0028, 0x0103, 0),
	}
	if spp > 1 {
		els = append(els, us(0x0028, 0x0006, uint16(planar)))
	}
	vr := "OW"
	if bitsAllocated <= 8 {
		vr = "OB"
	}
	if len(pixels)%2 == 1 {
		pixels = append(pixels, 0)
	}
	els = append(append(els, extra...), rawElement{0x7FE0, 0x0010, vr, pixels})
	slices.SortFunc(els, func(a, b rawElement) int {
		return int(uint32(a.group)<<16|uint32(a.elem)) - int(uint32(b.group)<<16|uint32(b.elem))
	})
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	put := func(e rawElement) {
		binary.Write(&out, binary.LittleEndian, [2]uint16{e.group, e.elem})
		out.WriteString(e.vr)
		switch e.vr {
		case "OB", "OW", "OV", "SQ", "UN":
			out.Write([]byte{0, 0})
			binary.Write(&out, binary.LittleEndian, uint32(len(e.value)))
		default:
			binary.Write(&out, binary.LittleEndian, uint16(len(e.value)))
		}
		out.Write(e.value)
	}
	ts := text(0x0002, 0x0010, "UI", TSExplicitLE)
	put(rawElement{0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(12+2+8+len(ts.value)))})
	put(rawElement{0x0002, 0x0001, "OB", []byte{0, 1}})
	put(ts)
	for _, e := range els {
		put(e)
	}
	p := filepath.Join(t.TempDir(), "raw.dcm")
	if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rgbSource is a colour test image whose three channels differ (a gray
// reading of one channel would be wrong).
func rgbSource(rows, cols int) []byte {
	px := make([]byte, 0, rows*cols*3)
	for y := range rows {
		for x := range cols {
			r := 40 + x*180/cols
			g := 20 + y*200/rows
			b := 200 - (x+y)*150/(rows+cols)
			if dx, dy := x-cols/2, y-rows/2; dx*dx+dy*dy < rows*rows/16 {
				r, g = 230, 90
			}
			px = append(px, byte(r), byte(g), byte(b))
		}
	}
	return px
}

func luminance(rgb []int64) []int64 {
	out := make([]int64, len(rgb)/3)
	for i := range out {
		out[i] = int64(math.Round(0.299*float64(rgb[3*i]) + 0.587*float64(rgb[3*i+1]) + 0.114*float64(rgb[3*i+2])))
	}
	return out
}

// dcm2pnm renders a file with dcmtk's dcm2pnm (no VOI unless opts say so)
// and returns its samples, luminance for colour.
func dcm2pnm(t *testing.T, in string, opts ...string) []int64 {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.pnm")
	run(t, "dcm2pnm", append(append([]string{}, opts...), in, out)...)
	_, _, spp, v := readPNM(t, out)
	if spp == 3 {
		return luminance(v)
	}
	return v
}

// TestColourAndPixelFormats: every colour model and sample format of
// item 2, each against a reference decoder's output (dcmtk's dcmdjpeg and
// dcm2pnm, GDCM's gdcmconv --raw): luminance for colour.
func TestColourAndPixelFormats(t *testing.T) {
	const rows, cols = 48, 64
	rgb := rgbSource(rows, cols)
	rgbFile := rawDICOM(t, rows, cols, "RGB", 3, 8, 8, 0, rgb)
	planarRGB := make([]byte, len(rgb))
	for i := range rows * cols {
		for c := range 3 {
			planarRGB[c*rows*cols+i] = rgb[3*i+c]
		}
	}
	ybr422JPEG := dcmtk(t, "dcmcjpeg", rgbFile, "+eb")
	ybrFull := dcmtk(t, "dcmdjpeg", ybr422JPEG, "+cn") // YCbCr kept, upsampled: YBR_FULL
	// Native YBR_FULL_422 from the YBR_FULL samples: Y1 Y2 Cb Cr per pair.
	full := decodeNativeSamples(t, ybrFull)
	var y422 []byte
	for i := 0; i < rows*cols; i += 2 {
		y422 = append(y422, full[3*i], full[3*i+3], byte((int(full[3*i+1])+int(full[3*i+4])+1)/2), byte((int(full[3*i+2])+int(full[3*i+5])+1)/2))
	}
	ybr422 := rawDICOM(t, rows, cols, "YBR_FULL_422", 3, 8, 8, 0, y422)
	// PALETTE COLOR: 8-bit indexes into 16-bit red, green and blue LUTs.
	idx := make([]byte, rows*cols)
	for i := range idx {
		idx[i] = byte((i%cols)*4 + (i/cols)%4)
	}
	var red, green, blue []byte
	for i := range 256 {
		red = binary.LittleEndian.AppendUint16(red, uint16(i*257))
		green = binary.LittleEndian.AppendUint16(green, uint16((255-i)*257))
		blue = binary.LittleEndian.AppendUint16(blue, uint16((i*7%256)*257))
	}
	palette := rawDICOM(t, rows, cols, "PALETTE COLOR", 1, 8, 8, 0, idx,
		us(0x0028, 0x1101, 256, 0, 16), us(0x0028, 0x1102, 256, 0, 16), us(0x0028, 0x1103, 256, 0, 16),
		rawElement{0x0028, 0x1201, "OW", red}, rawElement{0x0028, 0x1202, "OW", green}, rawElement{0x0028, 0x1203, "OW", blue})
	// 1-bit: a checker of 3-pixel squares, packed from the lowest bit.
	bits := make([]byte, (rows*cols+7)/8)
	var oneBit []int64
	for i := range rows * cols {
		v := int64((i%cols/3 + i/cols/3) % 2)
		oneBit = append(oneBit, v)
		bits[i/8] |= byte(v) << (i % 8)
	}
	// 32-bit: values over the whole unsigned 32-bit range.
	var words []byte
	var thirtyTwo []int64
	for i := range rows * cols {
		v := uint32(i) * 1_398_101
		thirtyTwo = append(thirtyTwo, int64(v))
		words = binary.LittleEndian.AppendUint32(words, v)
	}
	// gdcmconv codes RGB with the component transform but keeps the
	// photometric RGB; PS3.5 A.4.4 names such files YBR_RCT and YBR_ICT.
	j2kRCT := dcmtk(t, "gdcmconv", rgbFile, "--j2k")
	run(t, "dcmodify", "-nb", "-m", "(0028,0004)=YBR_RCT", j2kRCT)
	j2kICT := dcmtk(t, "gdcmconv", rgbFile, "--j2k", "--lossy", "-q", "45")
	run(t, "dcmodify", "-nb", "-m", "(0028,0004)=YBR_ICT", j2kICT)
	tests := []struct {
		name        string
		file        string
		photometric string
		reference   func(t *testing.T, file string) []int64
		tolerance   int // at the 99th percentile; the largest may be one more
	}{
		{name: "RGB JPEG without colour transform (dcmcjpeg +eb +cr)", file: dcmtk(t, "dcmcjpeg", rgbFile, "+eb", "+cr"), photometric: "RGB",
			reference: func(t *testing.T, f string) []int64 { return decodeFile(t, dcmtk(t, "dcmdjpeg", f)).Stored.Values() }},
		{name: "YBR_FULL_422 JPEG (dcmcjpeg +eb)", file: ybr422JPEG, photometric: "YBR_FULL_422", tolerance: 1,
			reference: func(t *testing.T, f string) []int64 { return decodeFile(t, dcmtk(t, "dcmdjpeg", f)).Stored.Values() }},
		{name: "YBR_FULL native (dcmdjpeg +cn)", file: ybrFull, photometric: "YBR_FULL", tolerance: 1,
			reference: func(t *testing.T, f string) []int64 { return dcm2pnm(t, f) }},
		{name: "YBR_FULL_422 native", file: ybr422, photometric: "YBR_FULL_422", tolerance: 1,
			reference: func(t *testing.T, f string) []int64 { return dcm2pnm(t, f) }},
		{name: "YBR_RCT JPEG 2000 lossless (gdcmconv --j2k)", file: j2kRCT, photometric: "YBR_RCT",
			reference: func(t *testing.T, f string) []int64 {
				return decodeFile(t, dcmtk(t, "gdcmconv", f, "--raw")).Stored.Values()
			}},
		{name: "YBR_ICT JPEG 2000 (gdcmconv --j2k --lossy)", file: j2kICT, photometric: "YBR_ICT", tolerance: 1,
			reference: func(t *testing.T, f string) []int64 {
				return decodeFile(t, dcmtk(t, "gdcmconv", f, "--raw")).Stored.Values()
			}},
		{name: "RGB native, planar configuration 1", file: rawDICOM(t, rows, cols, "RGB", 3, 8, 8, 1, planarRGB), photometric: "RGB",
			reference: func(t *testing.T, f string) []int64 { return dcm2pnm(t, f) }},
		{name: "PALETTE COLOR, 16-bit LUTs", file: palette, photometric: "PALETTE COLOR", tolerance: 1,
			reference: func(t *testing.T, f string) []int64 { return dcm2pnm(t, f, "+opw") }},
		{name: "1-bit MONOCHROME2", file: rawDICOM(t, rows, cols, "MONOCHROME2", 1, 1, 1, 0, bits), photometric: "MONOCHROME2",
			reference: func(t *testing.T, f string) []int64 {
				v := dcm2pnm(t, f)
				for i := range v {
					v[i] = min(v[i], 1) // dcm2pnm writes the set bit as 128
				}
				if !slices.Equal(v, oneBit) {
					t.Errorf("dcm2pnm disagrees with the source")
				}
				return v
			}},
		{name: "32-bit MONOCHROME2", file: rawDICOM(t, rows, cols, "MONOCHROME2", 1, 32, 32, 0, words), photometric: "MONOCHROME2",
			reference: func(t *testing.T, f string) []int64 {
				// dcm2pnm's min-max window to 16 bits, against the display
				// values below; the stored values against the source.
				return thirtyTwo
			}},
	}
	var table []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := decodeFile(t, tt.file)
			if img.Meta.Photometric != tt.photometric || img.Meta.Rows != rows || img.Meta.Columns != cols {
				t.Fatalf("metadata %+v, want %s", img.Meta, tt.photometric)
			}
			got := img.Stored.Values()
			want := tt.reference(t, tt.file)
			worst, p99 := diffs(got, want)
			if p99 > tt.tolerance || worst > tt.tolerance+1 {
				t.Errorf("differs from the reference: largest %d, 99th percentile %d; tolerance %d", worst, p99, tt.tolerance)
			}
			table = append(table, fmt.Sprintf("| %s | %d | %d |", tt.name, worst, p99))
			if strings.HasPrefix(tt.name, "32-bit") {
				ref := dcm2pnm(t, tt.file, "+Wm", "+opw")
				var d float64
				for i, v := range ref {
					d = max(d, math.Abs(float64(img.Pixels[i])*65535-float64(v)))
				}
				if d > 2 {
					t.Errorf("display values differ from dcm2pnm's min-max window by up to %.1f of 65535", d)
				}
			}
		})
	}
	t.Logf("colour and pixel formats against the reference (largest | 99th percentile):\n%s", strings.Join(table, "\n"))
}

// decodeNativeSamples returns the raw 8-bit samples of a native file.
func decodeNativeSamples(t *testing.T, path string) []byte {
	t.Helper()
	l, err := layOut(mustRead(t, path), 1<<30)
	if err != nil || l.native.length == 0 {
		t.Fatalf("%s: not native: %v", path, err)
	}
	return l.native.of(l.body)
}
