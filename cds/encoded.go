package cds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/orthotriage/orthotriage/analysis"
)

// encodedCard is a result's card (and its system actions) built, checked
// against the CDS Hooks rules and encoded once. Only the card's uuid and
// its suggestion's differ from one call to the next (they derive from the
// hookInstance): they are written into the bytes at known offsets.
// Everything else that names the call's patient or study is part of the
// result as bound to the call (its BoundKey), so a card is never reused for
// another patient.
type encodedCard struct {
	card    Card
	actions []Action
	// json is the card with placeholder uuids at uuidAt and saveAt (saveAt
	// -1: no suggestion).
	json           []byte
	uuidAt, saveAt int
	// appAt is where the card uuid is written in the SMART link's
	// appContext (-1: no app link), appLink the link's index.
	appAt, appLink int
	none           bool // the result calls for no card
}

// Placeholders of the uuids in an encodedCard: well-formed uuids that no
// card of a real call carries (a version-5 uuid has a 5 where these have 4).
const (
	placeholderCard = "00000000-0000-4000-8000-0000000000c1"
	placeholderSave = "00000000-0000-4000-8000-0000000000c2"
)

// cardFor returns the card of r (whose BoundKey is key) for one call, from
// the encoded cards when kept, else built (and, with encoded cards kept,
// for the next call).
func (e *Engine) cardFor(svc Service, hookInstance, key string, r analysis.Result, rep Report, base string) (Card, []Action, bool) {
	cardUUID, saveUUID := cardUUIDs(hookInstance, rep.ID)
	if e.encoded == nil {
		return e.card(svc, cardUUID, saveUUID, r, rep, base)
	}
	key = svc.ID + "\x00" + base + "\x00" + key // the report id derives from the result
	ec, ok := e.encoded.Get(key)
	if !ok {
		var err error
		if ec, err = e.encodeCard(svc, r, rep, base); err != nil {
			// Not kept: this call's card is checked by Marshal, which
			// names the broken element.
			e.log.Error("card not encoded", "service", svc.ID, "err", err)
			return e.card(svc, cardUUID, saveUUID, r, rep, base)
		}
		e.encoded.Put(key, ec)
	}
	if ec.none {
		return Card{}, nil, false
	}
	return ec.forCall(cardUUID, saveUUID), ec.actions, true
}

// encodeCard builds r's card with placeholder uuids, checks it and encodes
// it with its system actions.
func (e *Engine) encodeCard(svc Service, r analysis.Result, rep Report, base string) (encodedCard, error) {
	c, actions, ok := e.card(svc, placeholderCard, placeholderSave, r, rep, base)
	if !ok {
		return encodedCard{none: true}, nil
	}
	if err := c.Validate(); err != nil {
		return encodedCard{}, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return encodedCard{}, err
	}
	if !clean(b) {
		return encodedCard{}, fmt.Errorf("cds: the card has an empty or null element")
	}
	ec := encodedCard{card: c, json: b, uuidAt: onlyIndex(b, `"uuid":"`+placeholderCard+`"`), saveAt: -1, appAt: -1, appLink: -1}
	if ec.uuidAt < 0 {
		return encodedCard{}, fmt.Errorf("cds: the card's uuid is not where it is written once")
	}
	ec.uuidAt += len(`"uuid":"`)
	for i, l := range c.Links {
		if strings.Contains(l.AppContext, placeholderCard) {
			// appContext is a JSON string inside the card: its quotes
			// are escaped there.
			if ec.appAt = onlyIndex(b, `\"card\":\"`+placeholderCard+`\"`); ec.appAt < 0 {
				return encodedCard{}, fmt.Errorf("cds: the app link's card uuid is not where it is written once")
			}
			ec.appAt += len(`\"card\":\"`)
			ec.appLink = i
		}
	}
	if len(c.Suggestions) > 0 {
		if ec.saveAt = onlyIndex(b, `"uuid":"`+placeholderSave+`"`); ec.saveAt < 0 {
			return encodedCard{}, fmt.Errorf("cds: the suggestion's uuid is not where it is written once")
		}
		ec.saveAt += len(`"uuid":"`)
	}
	for _, a := range actions {
		if err := a.validate(); err != nil {
			return encodedCard{}, err
		}
		if a.encoded, err = json.Marshal(a); err != nil {
			return encodedCard{}, err
		}
		if !clean(a.encoded) {
			return encodedCard{}, fmt.Errorf("cds: a system action has an empty or null element")
		}
		ec.actions = append(ec.actions, a)
	}
	return ec, nil
}

// forCall is the card with this call's uuids, in its fields and its bytes.
// The bytes are not copied: the call's uuids are written over the
// placeholders as the answer is written (splicedJSON).
func (ec encodedCard) forCall(cardUUID, saveUUID string) Card {
	c := ec.card
	c.UUID = cardUUID
	sj := &splicedJSON{json: ec.json, edits: make([]splice, 1, 3)}
	sj.edits[0] = splice{ec.uuidAt, cardUUID}
	if ec.appAt >= 0 {
		c.Links = append([]Link(nil), c.Links...)
		c.Links[ec.appLink].AppContext = strings.Replace(c.Links[ec.appLink].AppContext, placeholderCard, cardUUID, 1)
		sj.edits = append(sj.edits, splice{ec.appAt, cardUUID})
	}
	if ec.saveAt >= 0 {
		c.Suggestions = append([]Suggestion(nil), c.Suggestions...)
		c.Suggestions[0].UUID = saveUUID
		sj.edits = append(sj.edits, splice{ec.saveAt, saveUUID})
	}
	slices.SortFunc(sj.edits, func(a, b splice) int { return a.at - b.at })
	c.encoded = sj
	return c
}

// splicedJSON is checked JSON shared by every call that sends it (never
// written to) and one call's text over parts of it: a uuid over its
// placeholder, of the same length, so that the JSON stays as checked.
type splicedJSON struct {
	json  []byte
	edits []splice // ascending by at, not overlapping
}

// splice is text to write at byte at.
type splice struct {
	at   int
	text string
}

// appendTo appends the JSON with its edits to b.
func (s *splicedJSON) appendTo(b []byte) []byte {
	prev := 0
	for _, e := range s.edits {
		b = append(b, s.json[prev:e.at]...)
		b = append(b, e.text...)
		prev = e.at + len(e.text)
	}
	return append(b, s.json[prev:]...)
}

// onlyIndex is the index of the one occurrence of sub in b, or -1 when
// there is none or more than one.
func onlyIndex(b []byte, sub string) int {
	i := bytes.Index(b, []byte(sub))
	if i < 0 || bytes.Contains(b[i+1:], []byte(sub)) {
		return -1
	}
	return i
}

// appendEncoded appends r to dst from its cards' and actions' checked
// bytes, when every one has them; ok is false otherwise, dst unchanged
// (AppendMarshal then encodes and checks the whole response).
func (r Response) appendEncoded(dst []byte) ([]byte, bool) {
	if len(r.Cards) == 0 {
		return dst, false
	}
	n := 32
	for _, c := range r.Cards {
		if c.encoded == nil {
			return dst, false
		}
		n += len(c.encoded.json) + 1
	}
	for _, a := range r.SystemActions {
		if a.encoded == nil {
			return dst, false
		}
		n += len(a.encoded) + 1
	}
	b := slices.Grow(dst, n)
	b = append(b, `{"cards":[`...)
	for i, c := range r.Cards {
		if i > 0 {
			b = append(b, ',')
		}
		b = c.encoded.appendTo(b)
	}
	b = append(b, ']')
	if len(r.SystemActions) > 0 {
		b = append(b, `,"systemActions":[`...)
		for i, a := range r.SystemActions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, a.encoded...)
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}
