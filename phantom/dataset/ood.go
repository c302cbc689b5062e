package dataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
)

// OODHeader is the header of an out-of-distribution run's labels.csv.
var OODHeader = []string{"file", "kind"}

// oodBits is the depth of the stored values OOD writes.
const oodBits = 12

// SpineOODKinds are the kinds of an out-of-distribution run tagged as a
// lateral spine: the vertebral localiser's negative kinds and a plain AP
// pelvis (another region, tagged as a spine).
var SpineOODKinds = append(slices.Clone(SpineNegativeKinds), "pelvis")

// oodRegion is what an out-of-distribution run tagged as a region holds:
// its kinds, and the body part and view its images are tagged with, as
// that region's phantoms are.
type oodRegion struct {
	kinds          []string
	bodyPart, view string
}

// oodRegions are the regions OODAs names ("" is pelvis).
var oodRegions = map[string]oodRegion{
	"":       {OODKinds, "PELVIS", "AP"},
	"pelvis": {OODKinds, "PELVIS", "AP"},
	"spine":  {SpineOODKinds, "SPINE", "LL"},
}

// OOD writes out-of-distribution radiographs, the image gate's test set:
// DICOM files of the kinds OODKinds names (the hip localiser's negatives,
// made by the same code, and kinds it is not trained on), or with OODAs
// "spine" SpineOODKinds, cycling through them by case index, every one
// tagged as the pelvis phantoms are (Modality DX or CR, Body Part Examined
// PELVIS, View Position AP), or as the spine phantoms (SPINE, LL), so that
// only the pixels can tell; and labels.csv (file, kind). It prints how many
// of each kind it wrote.
func (g Run) OOD(ctx context.Context, stdout io.Writer) error {
	if err := g.Vary.Validate(); err != nil {
		return err
	}
	region, ok := oodRegions[g.OODAs]
	if !ok {
		return fmt.Errorf("out-of-distribution images as %q: say pelvis or spine", g.OODAs)
	}
	began := time.Now()
	lf, err := os.Create(filepath.Join(g.Out, "labels.csv"))
	if err != nil {
		return err
	}
	defer lf.Close()
	labels := csv.NewWriter(lf)
	labels.Write(OODHeader)
	type item struct {
		file, kind string
		err        error
	}
	counts := map[string]int{}
	err = inOrder(ctx, g.N, func(i int) item {
		file, kind, err := g.oodCase(region, g.Start+i)
		return item{file: file, kind: kind, err: err}
	}, func(i int, it item) error {
		if it.err != nil {
			return it.err
		}
		labels.Write([]string{it.file, it.kind})
		counts[it.kind]++
		if done := i + 1; done%100 == 0 || done == g.N {
			fmt.Fprintf(g.progress(), "phantom: %d/%d out-of-distribution images (%.1fs)\n", done, g.N, time.Since(began).Seconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	labels.Flush()
	if err := labels.Error(); err != nil {
		return fmt.Errorf("labels.csv: %w", err)
	}
	if err := lf.Close(); err != nil {
		return fmt.Errorf("labels.csv: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d out-of-distribution images tagged %s/%s to %s (labels.csv):", g.N, region.bodyPart, region.view, g.Out)
	for _, k := range region.kinds {
		fmt.Fprintf(stdout, " %s %d", k, counts[k])
	}
	fmt.Fprintln(stdout)
	return nil
}

// oodCase writes out-of-distribution case i (its kind region.kinds[i mod
// len]) as DICOM tagged as the region, with its PNG preview when asked.
func (g Run) oodCase(region oodRegion, i int) (file, kind string, err error) {
	n, err := g.negativeOf(region.kinds[i%len(region.kinds)], i)
	if err != nil {
		return "", "", err
	}
	r := OODRadiograph(n.template, n.pixels, n.rows, n.cols, g.Seed, i)
	r.BodyPartExamined, r.ViewPosition = region.bodyPart, region.view
	var dcm bytes.Buffer
	if err := imaging.WriteDICOM(&dcm, r); err != nil {
		return "", "", fmt.Errorf("case %s: %w", n.id, err)
	}
	file = n.id + ".dcm"
	if err := os.WriteFile(filepath.Join(g.Out, file), dcm.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	if g.PNG {
		dec, err := imaging.Decode(dcm.Bytes(), imaging.Limits{})
		if err != nil {
			return "", "", fmt.Errorf("case %s: decode: %w", n.id, err)
		}
		if err := imaging.SavePNG(filepath.Join(g.Out, n.id+".png"), dec.Gray8()); err != nil {
			return "", "", err
		}
	}
	return file, n.kind, nil
}

// OODRadiograph is display values (rows x cols, in [0,1]) as a 12-bit
// MONOCHROME2 radiograph tagged as an AP pelvis (OOD retags it for its
// region), with template's
// modality, SOP class and spacing, fresh UIDs from (seed, i), and a linear
// window over the whole stored range, so that the service's decoder gives
// back the display values to within one stored step.
func OODRadiograph(template imaging.Radiograph, pixels []float32, rows, cols int, seed uint64, i int) imaging.Radiograph {
	maxV := float64(int(1)<<oodBits - 1)
	stored := make([]int, len(pixels))
	for k, v := range pixels {
		stored[k] = int(math.Round(math.Max(0, math.Min(1, float64(v))) * maxV))
	}
	rng := rand.New(rand.NewPCG(seed^0x6f6f64, uint64(i)))
	r := imaging.Radiograph{
		Rows: rows, Columns: cols, Stored: stored, BitsAllocated: 16, BitsStored: oodBits,
		Photometric: "MONOCHROME2", RescaleSlope: 1, RescaleIntercept: 0,
		// LINEAR: (x - (c - 0.5)) / (w - 1) + 0.5 = x / maxV.
		WindowCenter: []float64{(maxV + 1) / 2}, WindowWidth: []float64{maxV + 1},
		PixelSpacing: template.PixelSpacing, ImagerPixelSpacing: template.ImagerPixelSpacing,
		Modality: template.Modality, SOPClassUID: template.SOPClassUID,
		StudyInstanceUID: oodUID(rng), SeriesInstanceUID: oodUID(rng), SOPInstanceUID: oodUID(rng),
		PatientID:        fmt.Sprintf("ood-s%d-%05d", seed, i),
		BodyPartExamined: "PELVIS", ViewPosition: "AP",
	}
	return r
}

// oodUID is a DICOM UID under the 2.25 root drawn from rng.
func oodUID(rng *rand.Rand) string {
	hi, lo := rng.Uint64(), rng.Uint64()
	hi = hi&^(0xf<<12) | 4<<12
	lo = lo&^(3<<62) | 2<<62
	n := new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
	n.Or(n, new(big.Int).SetUint64(lo))
	return "2.25." + n.String()
}
