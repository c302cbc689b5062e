package phantom

import (
	"fmt"
	"math"
	"strings"

	"github.com/orthotriage/orthotriage/imaging"
)

// mark is a lead marker or a line of burnt-in text on an image: what it
// says and its box in pixels, [x0, x1) x [y0, y1).
type mark struct {
	what           string
	x0, y0, x1, y1 int
}

// glyph is a 5 x 7 bitmap character of the markers and burnt-in text.
func glyph(r rune) [7]string {
	switch r {
	case 'A':
		return [7]string{" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}
	case 'B':
		return [7]string{"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "}
	case 'C':
		return [7]string{" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "}
	case 'D':
		return [7]string{"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "}
	case 'E':
		return [7]string{"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"}
	case 'G':
		return [7]string{" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"}
	case 'I':
		return [7]string{" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}
	case 'K':
		return [7]string{"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"}
	case 'L':
		return [7]string{"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"}
	case 'M':
		return [7]string{"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"}
	case 'N':
		return [7]string{"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"}
	case 'O':
		return [7]string{" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}
	case 'P':
		return [7]string{"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "}
	case 'R':
		return [7]string{"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"}
	case 'S':
		return [7]string{" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "}
	case 'T':
		return [7]string{"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "}
	case 'U':
		return [7]string{"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}
	case 'V':
		return [7]string{"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "}
	case '0':
		return [7]string{" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}
	case '1':
		return [7]string{"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}
	case '2':
		return [7]string{" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}
	case '3':
		return [7]string{"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "}
	case '4':
		return [7]string{"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}
	case '5':
		return [7]string{"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}
	case '6':
		return [7]string{"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}
	case '7':
		return [7]string{"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}
	case '8':
		return [7]string{" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}
	case '9':
		return [7]string{" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}
	case '-':
		return [7]string{"     ", "     ", "     ", "#####", "     ", "     ", "     "}
	}
	return [7]string{} // space, and anything the texts below never use
}

// inGlyph says whether glyph coordinates (u, v), in cells from the glyph's
// top-left corner, fall on a stroke of r.
func inGlyph(r rune, u, v float64) bool {
	if u < 0 || v < 0 || u >= 5 || v >= 7 {
		return false
	}
	row := glyph(r)[int(v)]
	return row != "" && row[int(u)] == '#'
}

// Attenuation of a lead marker's letter and of its plastic holder, per the
// attenuation map's units (a THA head is about 200, a screw about 50).
const (
	leadAttenuation   = 60
	holderAttenuation = 1.5
)

// leadMarker draws a lead letter in its plastic holder into the metal
// layer, centred on pixel c, heightPx tall and turned by phi radians.
func leadMarker(m *canvas, letter rune, c vec, heightPx, phi float64) mark {
	cell := heightPx / 7
	reach := int(math.Ceil(cell * 6))
	out := mark{what: string(letter), x0: int(c.x) - reach, y0: int(c.y) - reach, x1: int(c.x) + reach + 1, y1: int(c.y) + reach + 1}
	const sub = 3 // subsamples per pixel side
	for i := max(0, out.y0); i < min(m.rows, out.y1); i++ {
		for j := max(0, out.x0); j < min(m.cols, out.x1); j++ {
			var lead, holder int
			for si := range sub {
				for sj := range sub {
					p := vec{float64(j) + (float64(sj)+0.5)/sub, float64(i) + (float64(si)+0.5)/sub}
					q := p.sub(c).rot(-phi).mul(1 / cell).add(vec{2.5, 3.5})
					if inGlyph(letter, q.x, q.y) {
						lead++
					}
					if q.x >= -1.2 && q.x < 6.2 && q.y >= -1.2 && q.y < 8.2 {
						holder++
					}
				}
			}
			m.a[i*m.cols+j] += (leadAttenuation*float64(lead) + holderAttenuation*float64(holder)) / (sub * sub)
		}
	}
	return out
}

// burnText writes line into r's stored values as a modality burns in an
// annotation: white strokes cell pixels wide with a black outline, the
// text's top-left corner at pixel (x, y).
func burnText(r *imaging.Radiograph, line string, x, y, cell int) mark {
	maxV := 1<<r.BitsStored - 1
	white, black := maxV, 0
	if r.Photometric == "MONOCHROME1" {
		white, black = 0, maxV
	}
	runes := []rune(line)
	w, h := len(runes)*6*cell-cell, 7*cell
	on := func(px, py int) bool { // a stroke pixel, in text coordinates
		if px < 0 || py < 0 || px >= w || py >= h {
			return false
		}
		k := px / (6 * cell)
		u := px % (6 * cell)
		return u < 5*cell && inGlyph(runes[k], float64(u/cell), float64(py/cell))
	}
	for py := -1; py <= h; py++ {
		for px := -1; px <= w; px++ {
			i, j := y+py, x+px
			if i < 0 || j < 0 || i >= r.Rows || j >= r.Columns {
				continue
			}
			switch {
			case on(px, py):
				r.Stored[i*r.Columns+j] = white
			case on(px-1, py) || on(px+1, py) || on(px, py-1) || on(px, py+1):
				r.Stored[i*r.Columns+j] = black
			}
		}
	}
	return mark{what: line, x0: x - 1, y0: y - 1, x1: x + w + 1, y1: y + h + 1}
}

// markerPlacement are the draws placing the lead markers and the text.
type markerPlacement struct {
	side         [2][4]float64 // per marker (R, L): along, across, turn, size
	view, kv, ma float64
	corners      [2]float64
}

// leadMarkers draws the case's lead side markers, if any, into the metal
// layer of canvas m inside collimation c: for a pelvis R on the image's
// left (the patient's right) and L on its right, one or both, in the upper
// lateral field; for a lateral spine the one letter of the side against
// the detector, near a corner.
func (v Variation) leadMarkers(d variationDraws, kind string, m *canvas, c [4]float64) (string, []mark) {
	if d.markers >= v.Markers {
		return "", nil
	}
	p := d.place
	sides := "R L"
	switch {
	case kind == "spine" && d.markerSides < 0.5:
		sides = "R"
	case kind == "spine":
		sides = "L"
	case d.markerSides < 0.4:
		sides = "R"
	case d.markerSides < 0.8:
		sides = "L"
	}
	open := [4]float64{c[0] * float64(m.cols), (1 - c[1]) * float64(m.cols), c[2] * float64(m.rows), (1 - c[3]) * float64(m.rows)}
	var marks []mark
	for k, letter := range []rune{'R', 'L'} {
		if !strings.ContainsRune(sides, letter) {
			continue
		}
		s := p.side[k]
		height := (12 + 5*s[3]) / m.spacing
		inset := height * (0.9 + 1.5*s[1])
		x := open[0] + inset
		if letter == 'L' && kind == "pelvis" || kind == "spine" && s[1] > 0.5 {
			x = open[1] - inset
		}
		y := open[2] + height + (open[3]-open[2]-2*height)*0.35*s[0]
		if kind == "spine" && s[0] > 0.5 {
			y = open[3] - height - (open[3]-open[2]-2*height)*0.35*(s[0]-0.5)
		}
		marks = append(marks, leadMarker(m, letter, vec{x, y}, height, (s[2]-0.5)*0.5))
	}
	return sides, marks
}

// burnedText burns the case's text, if any, into r: the view in one
// corner and, on half the images, the technique (kV, mAs) in another.
func (v Variation) burnedText(d variationDraws, kind string, r *imaging.Radiograph) (string, []mark) {
	if d.text >= v.Text {
		return "", nil
	}
	p := d.place
	views := []string{"AP PELVIS", "PELVIS AP", "AP SUPINE", "AP", "PORTABLE AP", "AP STANDING"}
	kv, mas := 65+int(20*p.kv), 8+int(32*p.ma)
	if kind == "spine" {
		views = []string{"LAT", "LATERAL", "LAT T-L SPINE", "L-SPINE LAT", "STANDING LAT"}
		kv, mas = 75+int(20*p.kv), 20+int(40*p.ma)
	}
	lines := []string{views[int(p.view*float64(len(views)))]}
	if d.twoText < 0.5 {
		lines = append(lines, fmt.Sprintf("KV %d MAS %d", kv, mas))
	}
	cell := max(2, int(math.Round(float64(r.Rows)/220)))
	margin := r.Columns / 50
	first := int(4 * p.corners[0])
	corners := []int{first, (first + 1 + int(3*p.corners[1])) % 4}
	var marks []mark
	for k, line := range lines {
		w := len(line)*6*cell - cell
		x, y := margin, margin
		if corners[k]%2 == 1 {
			x = r.Columns - margin - w
		}
		if corners[k] >= 2 {
			y = r.Rows - margin - 7*cell
		}
		marks = append(marks, burnText(r, line, max(0, x), y, cell))
	}
	return strings.Join(lines, "; "), marks
}
