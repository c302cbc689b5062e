package imaging

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// attrs reads attributes of a parsed dataset without the parser's Must*
// helpers, which panic on unexpected value types.
type attrs struct{ ds dicom.Dataset }

func (a attrs) value(t tag.Tag) any {
	el, err := a.ds.FindElementByTag(t)
	if err != nil || el == nil || el.Value == nil {
		return nil
	}
	return el.Value.GetValue()
}

func (a attrs) str(t tag.Tag) string {
	if v, ok := a.value(t).([]string); ok && len(v) > 0 {
		return strings.TrimRight(strings.TrimSpace(v[0]), "\x00")
	}
	return ""
}

func (a attrs) int(t tag.Tag, def int) int {
	switch v := a.value(t).(type) {
	case []int:
		if len(v) > 0 {
			return v[0]
		}
	case []string:
		if len(v) > 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(v[0])); err == nil {
				return n
			}
		}
	}
	return def
}

// floats reads a multi-valued decimal string (DS) or float attribute; an
// unparsable value yields nil.
func (a attrs) floats(t tag.Tag) []float64 {
	switch v := a.value(t).(type) {
	case []float64:
		return v
	case []string:
		out := make([]float64, 0, len(v))
		for _, s := range v {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil
			}
			out = append(out, f)
		}
		return out
	}
	return nil
}

// sequenceItems returns the items of a sequence attribute as attrs.
func (a attrs) sequenceItems(t tag.Tag) []attrs {
	items, _ := a.value(t).([]*dicom.SequenceItemValue)
	var out []attrs
	for _, it := range items {
		if els, ok := it.GetValue().([]*dicom.Element); ok {
			out = append(out, attrs{dicom.Dataset{Elements: els}})
		}
	}
	return out
}

// uint16s reads US/OW data, parsed either as integers or as raw bytes
// (little endian, as the parser leaves OW in explicit little endian files).
func (a attrs) uint16s(t tag.Tag) []int {
	switch v := a.value(t).(type) {
	case []int:
		return v
	case []byte:
		out := make([]int, len(v)/2)
		for i := range out {
			out[i] = int(binary.LittleEndian.Uint16(v[2*i:]))
		}
		return out
	}
	return nil
}
