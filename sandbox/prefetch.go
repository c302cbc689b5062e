package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/orthotriage/orthotriage/internal/urlx"
)

// Prefetch states of one key, as an EHR decides them.
const (
	PrefetchFilled  = "filled"  // the query's answer is sent
	PrefetchNull    = "null"    // the data does not exist: null is sent
	PrefetchMissing = "missing" // the key is left out: the service fetches it
)

// PrefetchKey is what the prefetcher did with one template.
type PrefetchKey struct {
	Key    string `json:"key"`
	State  string `json:"state"`
	Pages  int    `json:"pages,omitempty"`
	Count  int    `json:"count,omitempty"` // entries of a search
	Reason string `json:"reason,omitempty"`
}

// Prefetcher fills a service's prefetch templates by querying the FHIR
// server, as an EHR does: tokens are replaced from the hook's context and
// the user, a read that finds nothing gives null, a search follows its next
// links (same base only) up to MaxPages and is sent as one searchset
// Bundle, and a template it cannot fill (an unknown token, a failing
// server) is left out, so the service fetches it itself.
type Prefetcher struct {
	FHIR     *fhirClient
	MaxPages int // 5 when zero
}

var token = regexp.MustCompile(`\{\{\s*([A-Za-z.]+)\s*\}\}`)

// Fill resolves every template against hookContext (the request's
// context) and user (a reference such as Practitioner/1, or "").
func (p *Prefetcher) Fill(ctx context.Context, templates map[string]string, hookContext map[string]any, user string) (map[string]json.RawMessage, []PrefetchKey) {
	out := map[string]json.RawMessage{}
	var keys []PrefetchKey
	names := make([]string, 0, len(templates))
	for k := range templates {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, key := range names {
		query, err := expand(templates[key], hookContext, user)
		if err != nil {
			keys = append(keys, PrefetchKey{Key: key, State: PrefetchMissing, Reason: err.Error()})
			continue
		}
		pk := PrefetchKey{Key: key}
		value, err := p.query(ctx, query, &pk)
		switch {
		case err == errNotFound:
			out[key] = json.RawMessage("null")
			pk.State = PrefetchNull
		case err != nil:
			pk.State, pk.Reason = PrefetchMissing, err.Error()
		default:
			out[key] = value
			pk.State = PrefetchFilled
		}
		keys = append(keys, pk)
	}
	return out, keys
}

// expand replaces the template's tokens; a token without a value is an
// error (the key is then left out).
func expand(template string, hookContext map[string]any, user string) (string, error) {
	var missing []string
	res := token.ReplaceAllStringFunc(template, func(m string) string {
		name := token.FindStringSubmatch(m)[1]
		var v string
		if c, ok := strings.CutPrefix(name, "context."); ok {
			v, _ = hookContext[c].(string)
		} else if t, ok := strings.CutPrefix(name, "user"); ok && strings.HasSuffix(t, "Id") {
			// userPractitionerId, userPatientId, ...: the user's id when
			// the user is of that type.
			if typ, id, found := strings.Cut(user, "/"); found && typ == strings.TrimSuffix(t, "Id") {
				v = id
			}
		}
		if v == "" {
			missing = append(missing, name)
		}
		return url.QueryEscape(v)
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for %s", strings.Join(missing, ", "))
	}
	return res, nil
}

// query runs one read or search.
func (p *Prefetcher) query(ctx context.Context, query string, pk *PrefetchKey) (json.RawMessage, error) {
	path, _, isSearch := strings.Cut(query, "?")
	if !isSearch && !strings.Contains(path, "/") {
		isSearch = true // a bare type is a search too
	}
	status, body, err := p.FHIR.do(ctx, http.MethodGet, query, nil)
	if err != nil {
		return nil, err
	}
	pk.Pages = 1
	if !isSearch {
		switch status {
		case http.StatusOK:
			return body, nil
		case http.StatusNotFound, http.StatusGone:
			return nil, errNotFound
		default:
			return nil, fmt.Errorf("read: %d %s", status, snippet(body))
		}
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("search: %d %s", status, snippet(body))
	}
	var entries []json.RawMessage
	maxPages := p.MaxPages
	if maxPages == 0 {
		maxPages = 5
	}
	for {
		var page struct {
			ResourceType string            `json:"resourceType"`
			Entry        []json.RawMessage `json:"entry"`
			Link         []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
		}
		if err := json.Unmarshal(body, &page); err != nil || page.ResourceType != "Bundle" {
			return nil, fmt.Errorf("search: page %d is not a Bundle", pk.Pages)
		}
		entries = append(entries, page.Entry...)
		next := ""
		for _, l := range page.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if next == "" || pk.Pages >= maxPages {
			break
		}
		if _, under := urlx.Under(p.FHIR.base, next); !under {
			pk.Reason = "a next link outside the FHIR base was not followed"
			break
		}
		if status, body, err = p.FHIR.do(ctx, http.MethodGet, next, nil); err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("search: page %d: %d", pk.Pages+1, status)
		}
		pk.Pages++
	}
	pk.Count = len(entries)
	bundle := map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(entries)}
	if len(entries) > 0 {
		bundle["entry"] = entries
	}
	b, err := json.Marshal(bundle)
	return b, err
}
