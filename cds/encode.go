package cds

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxSummaryRunes is the longest card summary: the spec asks for fewer than
// 140 characters.
const MaxSummaryRunes = 139

// Marshal encodes a CDS Hooks response body (a Response or a Discovery) and
// enforces the spec's JSON rules on the result: no element is null, "", []
// or {}, except the top-level "cards": [] that means "no guidance"; and every
// card is well formed. Every CDS response goes through it.
func Marshal(v any) ([]byte, error) { return AppendMarshal(nil, v) }

// AppendMarshal is Marshal appending the encoding to dst: a Response whose
// cards were all encoded and checked beforehand (a cached answer) is
// written into dst's room, with no buffer of its own. On error dst is
// returned as it was.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	if r, ok := v.(Response); ok {
		if b, ok := r.appendEncoded(dst); ok { // each card checked when encoded
			return b, nil
		}
		if err := r.Validate(); err != nil {
			return dst, err
		}
		if r.Cards == nil {
			r.Cards = []Card{}
			v = r
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	if !clean(b) {
		// Something is empty or null: walk the decoded tree to say where.
		var tree any
		if err := json.Unmarshal(b, &tree); err != nil {
			return dst, err
		}
		if err := checkEmpty(tree, "", true); err != nil {
			return dst, err
		}
	}
	if dst == nil {
		return b, nil
	}
	return append(dst, b...), nil
}

// clean scans compact JSON (as json.Marshal writes it, RawMessage values
// compacted too) in one pass for what CDS Hooks forbids: null, "", [] and
// {}, except the top-level object's "cards":[] and the top level itself.
// A card with a large FHIR resource is checked without decoding it.
func clean(b []byte) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			if i+1 < len(b) && b[i+1] == '"' && (i+2 >= len(b) || b[i+2] != ':') {
				return false // an empty string value (an empty key is followed by ':')
			}
			for i++; i < len(b) && b[i] != '"'; i++ { // skip the string
				if b[i] == '\\' {
					i++
				}
			}
		case 'n':
			return false // the only bare n outside strings starts null
		case '{', '[':
			depth++
			if i+1 < len(b) && (b[i+1] == '}' || b[i+1] == ']') {
				topObject := c == '{' && depth == 1
				cards := c == '[' && depth == 2 && i >= 8 && string(b[i-8:i]) == `"cards":`
				if !topObject && !cards {
					return false
				}
			}
		case '}', ']':
			depth--
		}
	}
	return true
}

// checkEmpty walks a decoded JSON value and reports the first element that
// CDS Hooks forbids.
func checkEmpty(v any, path string, top bool) error {
	switch x := v.(type) {
	case nil:
		return fmt.Errorf("cds: %s is null", path)
	case string:
		if x == "" {
			return fmt.Errorf("cds: %s is an empty string", path)
		}
	case []any:
		if len(x) == 0 && path != "cards" {
			return fmt.Errorf("cds: %s is an empty array", path)
		}
		for i, e := range x {
			if err := checkEmpty(e, fmt.Sprintf("%s[%d]", path, i), false); err != nil {
				return err
			}
		}
	case map[string]any:
		if len(x) == 0 && !top {
			return fmt.Errorf("cds: %s is an empty object", path)
		}
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if err := checkEmpty(e, p, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate checks the card rules of CDS Hooks 2.0 on every card.
func (r Response) Validate() error {
	for i, c := range r.Cards {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("cds: cards[%d]: %w", i, err)
		}
	}
	for i, a := range r.SystemActions {
		if err := a.validate(); err != nil {
			return fmt.Errorf("cds: systemActions[%d]: %w", i, err)
		}
	}
	return nil
}

// Validate checks one card: summary present and at most 139 runes, a known
// indicator, a source label, a selectionBehavior when there are suggestions,
// and links of a known type with appContext only on SMART links.
func (c Card) Validate() error {
	var bad []string
	if strings.TrimSpace(c.Summary) == "" {
		bad = append(bad, "summary is required")
	} else if n := utf8.RuneCountInString(c.Summary); n > MaxSummaryRunes {
		bad = append(bad, fmt.Sprintf("summary has %d characters, at most %d allowed", n, MaxSummaryRunes))
	}
	switch c.Indicator {
	case IndicatorInfo, IndicatorWarning, IndicatorCritical:
	default:
		bad = append(bad, fmt.Sprintf("indicator %q is not info, warning or critical", c.Indicator))
	}
	if strings.TrimSpace(c.Source.Label) == "" {
		bad = append(bad, "source.label is required")
	}
	if len(c.Suggestions) > 0 {
		switch c.SelectionBehavior {
		case "at-most-one", "any":
		default:
			bad = append(bad, fmt.Sprintf("selectionBehavior %q must be at-most-one or any when suggestions are given", c.SelectionBehavior))
		}
	}
	for i, s := range c.Suggestions {
		if s.Label == "" {
			bad = append(bad, fmt.Sprintf("suggestions[%d].label is required", i))
		}
		for j, a := range s.Actions {
			if err := a.validate(); err != nil {
				bad = append(bad, fmt.Sprintf("suggestions[%d].actions[%d]: %v", i, j, err))
			}
		}
	}
	for i, l := range c.Links {
		switch {
		case l.Label == "" || l.URL == "":
			bad = append(bad, fmt.Sprintf("links[%d] needs a label and a url", i))
		case l.Type != "absolute" && l.Type != "smart":
			bad = append(bad, fmt.Sprintf("links[%d].type %q is not absolute or smart", i, l.Type))
		case l.AppContext != "" && l.Type != "smart":
			bad = append(bad, fmt.Sprintf("links[%d].appContext is only allowed on smart links", i))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

func (a Action) validate() error {
	switch a.Type {
	case "create", "update":
		if len(a.Resource) == 0 {
			return fmt.Errorf("a %s action needs a resource", a.Type)
		}
	case "delete":
		if a.ResourceID == "" {
			return fmt.Errorf("a delete action needs a resourceId")
		}
	default:
		return fmt.Errorf("type %q is not create, update or delete", a.Type)
	}
	return nil
}
