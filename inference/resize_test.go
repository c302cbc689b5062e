package inference

import (
	"image"
	"math/rand/v2"
	"testing"

	"golang.org/x/image/draw"
)

// The resizer gives x/image/draw's Kernel.Scale output bit for bit, for
// shrinking and enlarging, smooth and noisy images, both kernels.
func TestResizeMatchesXImageDraw(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range []*draw.Kernel{draw.CatmullRom, draw.BiLinear} {
		for _, size := range [][4]int{{200, 200, 128, 128}, {223, 223, 128, 128}, {90, 90, 128, 128}, {128, 128, 128, 128}, {37, 53, 16, 11}, {5, 3, 8, 8}, {1000, 1200, 128, 128}, {611, 611, 224, 224}} {
			sw, sh, dw, dh := size[0], size[1], size[2], size[3]
			src := image.NewGray16(image.Rect(0, 0, sw, sh))
			for i := range sw * sh {
				v := uint16(rng.IntN(65536))
				if i%3 != 0 { // mostly smooth, some extremes
					v = uint16(32768 + 20000*float64(i%sw)/float64(sw))
				}
				src.Pix[2*i], src.Pix[2*i+1] = byte(v>>8), byte(v)
			}
			want := image.NewGray16(image.Rect(0, 0, dw, dh))
			k.Scale(want, want.Bounds(), src, src.Bounds(), draw.Src, nil)
			in := make([]uint16, sw*sh)
			for i := range in {
				in[i] = uint16(src.Pix[2*i])<<8 | uint16(src.Pix[2*i+1])
			}
			got := make([]uint16, dw*dh)
			resize(newKernelResizer(k, dw, dh, sw, sh), got, in)
			for i, g := range got {
				w := uint16(want.Pix[2*i])<<8 | uint16(want.Pix[2*i+1])
				if g != w {
					t.Fatalf("%v %dx%d -> %dx%d: pixel %d is %d, x/image/draw %d", k == draw.CatmullRom, sw, sh, dw, dh, i, g, w)
				}
			}
		}
	}
}

// BenchmarkResize is the whole-image resize into a localiser's input: a
// 2,000 x 2,400 radiograph to 256 x 256.
func BenchmarkResize(b *testing.B) {
	const sw, sh, dw, dh = 2000, 2400, 256, 256
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]uint16, sw*sh)
	for i := range src {
		src[i] = uint16(rng.IntN(65536))
	}
	dst := make([]uint16, dw*dh)
	for _, k := range []struct {
		name string
		k    *draw.Kernel
	}{{"bilinear", draw.BiLinear}, {"catmullrom", draw.CatmullRom}} {
		b.Run(k.name, func(b *testing.B) {
			for b.Loop() {
				resize(newKernelResizer(k.k, dw, dh, sw, sh), dst, src)
			}
		})
	}
	// The phantom pelvis (521 x 429) into hip-000's localiser input.
	b.Run("localiser", func(b *testing.B) {
		const sw, sh, dw, dh = 521, 429, 192, 160
		dst := make([]uint16, dw*dh)
		for b.Loop() {
			resize(newKernelResizer(draw.CatmullRom, dw, dh, sw, sh), dst, src[:sw*sh])
		}
	})
}

// resize maps src (sw x sh 16-bit values, row major) to dst (dw x dh).
func resize(z *kernelResizer, dst, src []uint16) {
	z.resizeRows(dst, func(y int, row []float64) {
		for x, v := range src[y*z.sw : (y+1)*z.sw] {
			row[x] = float64(v)
		}
	})
}
