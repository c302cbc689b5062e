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
func Marshal(v any) ([]byte, error) {
	if r, ok := v.(Response); ok {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if r.Cards == nil {
			r.Cards = []Card{}
			v = r
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	if err := checkEmpty(tree, "", true); err != nil {
		return nil, err
	}
	return b, nil
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
