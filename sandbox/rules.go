package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxSummary is CDS Hooks 2.0's bound on a card's summary: under 140
// characters.
const MaxSummary = 139

// Answer is a hook answer as the kit reads it.
type Answer struct {
	Cards         []Card   `json:"cards"`
	SystemActions []Action `json:"systemActions"`
}

// Card is one card of an answer.
type Card struct {
	UUID              string `json:"uuid"`
	Summary           string `json:"summary"`
	Detail            string `json:"detail"`
	Indicator         string `json:"indicator"`
	SelectionBehavior string `json:"selectionBehavior"`
	Source            struct {
		Label, URL, Icon string
	} `json:"source"`
	Suggestions []struct {
		Label   string   `json:"label"`
		UUID    string   `json:"uuid"`
		Actions []Action `json:"actions"`
	} `json:"suggestions"`
	OverrideReasons []struct{ Code, System, Display string } `json:"overrideReasons"`
	Links           []struct {
		Label, URL, Type string
		AppContext       string `json:"appContext"`
	} `json:"links"`
}

// Action is a suggestion's or a system action.
type Action struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Resource    json.RawMessage `json:"resource"`
	ResourceID  string          `json:"resourceId"`
}

// CheckAnswer decodes a hook answer and returns it with every breach of
// the CDS Hooks 2.0 rules found in it, each naming where.
func CheckAnswer(body []byte) (Answer, []string) {
	var problems []string
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return Answer{}, []string{"answer is not JSON: " + err.Error()}
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return Answer{}, []string{"answer is not a JSON object"}
	}
	if _, ok := top["cards"].([]any); !ok {
		problems = append(problems, "cards: required (an array; [] means no guidance)")
	}
	for k, v := range top {
		if k == "cards" {
			continue // [] is the one allowed empty value
		}
		problems = append(problems, emptyValues(k, v)...)
	}
	if cards, ok := top["cards"].([]any); ok {
		for i, c := range cards {
			problems = append(problems, emptyValues(fmt.Sprintf("cards[%d]", i), c)...)
		}
	}
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, append(problems, "answer does not have the CDS Hooks shape: "+err.Error())
	}
	for i, c := range a.Cards {
		problems = append(problems, checkCard(fmt.Sprintf("cards[%d]", i), c)...)
	}
	for i, act := range a.SystemActions {
		problems = append(problems, checkAction(fmt.Sprintf("systemActions[%d]", i), act)...)
	}
	return a, problems
}

// emptyValues finds null, "", [] and {} anywhere under v: CDS Hooks JSON
// never carries them (an element without a value is left out).
func emptyValues(path string, v any) []string {
	switch x := v.(type) {
	case nil:
		return []string{path + ": null (leave the element out)"}
	case string:
		if x == "" {
			return []string{path + `: "" (leave the element out)`}
		}
	case []any:
		if len(x) == 0 {
			return []string{path + ": [] (leave the element out)"}
		}
		var out []string
		for i, e := range x {
			out = append(out, emptyValues(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
		return out
	case map[string]any:
		if len(x) == 0 {
			return []string{path + ": {} (leave the element out)"}
		}
		var out []string
		for k, e := range x {
			out = append(out, emptyValues(path+"."+k, e)...)
		}
		return out
	}
	return nil
}

func checkCard(at string, c Card) []string {
	var p []string
	add := func(f string, args ...any) { p = append(p, at+"."+fmt.Sprintf(f, args...)) }
	if c.UUID == "" {
		add("uuid: required for feedback")
	} else if _, err := uuid.Parse(c.UUID); err != nil {
		add("uuid: %q is not a UUID", c.UUID)
	}
	switch n := utf8.RuneCountInString(c.Summary); {
	case n == 0:
		add("summary: required")
	case n > MaxSummary:
		add("summary: %d characters, must be under 140", n)
	}
	switch c.Indicator {
	case "info", "warning", "critical":
	default:
		add("indicator: %q, want info, warning or critical", c.Indicator)
	}
	if c.Source.Label == "" {
		add("source.label: required")
	}
	if c.Source.URL != "" && !absoluteURL(c.Source.URL) {
		add("source.url: not an absolute URL")
	}
	if len(c.Suggestions) > 0 && c.SelectionBehavior != "at-most-one" && c.SelectionBehavior != "any" {
		add("selectionBehavior: %q, required with suggestions (at-most-one or any)", c.SelectionBehavior)
	}
	for i, s := range c.Suggestions {
		if s.Label == "" {
			add("suggestions[%d].label: required", i)
		}
		if s.UUID == "" {
			add("suggestions[%d].uuid: needed to report it accepted in feedback", i)
		}
		for j, a := range s.Actions {
			p = append(p, checkAction(fmt.Sprintf("%s.suggestions[%d].actions[%d]", at, i, j), a)...)
		}
	}
	for i, r := range c.OverrideReasons {
		if r.Code == "" || r.System == "" {
			add("overrideReasons[%d]: code and system required", i)
		}
	}
	for i, l := range c.Links {
		if l.Label == "" {
			add("links[%d].label: required", i)
		}
		switch l.Type {
		case "absolute", "smart":
		default:
			add("links[%d].type: %q, want absolute or smart", i, l.Type)
		}
		if !absoluteURL(l.URL) {
			add("links[%d].url: %q is not an absolute URL", i, l.URL)
		}
		if l.AppContext != "" && l.Type != "smart" {
			add("links[%d].appContext: only for smart links", i)
		}
	}
	return p
}

func checkAction(at string, a Action) []string {
	var p []string
	switch a.Type {
	case "create", "update":
		var r struct {
			ResourceType string `json:"resourceType"`
		}
		if len(a.Resource) == 0 || json.Unmarshal(a.Resource, &r) != nil || r.ResourceType == "" {
			p = append(p, at+".resource: a FHIR resource required for "+a.Type)
		}
	case "delete":
		if a.ResourceID == "" && len(a.Resource) == 0 {
			p = append(p, at+".resourceId: required for delete")
		}
	default:
		p = append(p, fmt.Sprintf("%s.type: %q, want create, update or delete", at, a.Type))
	}
	return p
}

func absoluteURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && !strings.ContainsAny(s, " \n")
}

// Resources returns every resource an answer carries: its suggestions'
// and its system actions'.
func (a Answer) Resources() []json.RawMessage {
	var out []json.RawMessage
	for _, c := range a.Cards {
		for _, s := range c.Suggestions {
			for _, act := range s.Actions {
				if len(act.Resource) > 0 {
					out = append(out, act.Resource)
				}
			}
		}
	}
	for _, act := range a.SystemActions {
		if len(act.Resource) > 0 {
			out = append(out, act.Resource)
		}
	}
	return out
}
