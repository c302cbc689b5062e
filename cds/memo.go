package cds

import (
	"hash/maphash"
	"sync"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// An EHR sends the same Patient and ImagingStudy JSON each time a chart is
// opened; decoding it into FHIR structs was the largest part of a cached
// patient-view. A memo keeps what decoding a resource's exact bytes gave,
// so bytes seen recently are not decoded on every call. The key is the
// whole byte string, not a hash of it: equal keys are equal input, so a
// remembered value is exactly what decoding would give, and no two
// patients can share one. Values handed out are shared between calls:
// read only.
const (
	memoEntries  = 1024     // per kind of resource
	memoBytes    = 8 << 20  // of keys, per kind of resource
	memoMaxBytes = 64 << 10 // larger resources are decoded each time
)

// memo remembers decode(raw) for up to memoEntries byte strings of at most
// memoMaxBytes, memoBytes in all, from the second time each is seen (a
// byte string seen once, as most are, costs a hash and no copy); errors
// are not remembered. When full, arbitrary entries make room. The zero
// memo is ready to use.
type memo[T any] struct {
	mu    sync.Mutex
	m     map[string]T
	bytes int
	// seen holds the hashes of byte strings seen once, up to
	// 4 x memoEntries; a hash collision only remembers a value early.
	seen map[uint64]struct{}
	seed maphash.Seed
}

func (c *memo[T]) decode(raw []byte, decode func([]byte) (T, error)) (T, error) {
	if len(raw) > memoMaxBytes {
		return decode(raw)
	}
	c.mu.Lock()
	v, ok := c.m[string(raw)]
	if !ok && c.seen == nil {
		c.seen, c.seed = make(map[uint64]struct{}), maphash.MakeSeed()
	}
	seed := c.seed
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := decode(raw)
	if err != nil {
		return v, err
	}
	h := maphash.Bytes(seed, raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, again := c.seen[h]; !again {
		if len(c.seen) >= 4*memoEntries {
			clear(c.seen)
		}
		c.seen[h] = struct{}{}
		return v, nil
	}
	delete(c.seen, h)
	if c.m == nil {
		c.m = make(map[string]T)
	}
	for k := range c.m {
		if len(c.m) < memoEntries && c.bytes+len(raw) <= memoBytes {
			break
		}
		delete(c.m, k)
		c.bytes -= len(k)
	}
	if _, ok := c.m[string(raw)]; !ok {
		c.m[string(raw)] = v
		c.bytes += len(raw)
	}
	return v, nil
}

// decodedMemos are a Resolver's memos, one per kind of resource it decodes
// on every call.
type decodedMemos struct {
	patients memo[models.Patient]
	studies  memo[models.ImagingStudy]
	bundles  memo[models.Bundle]
}
