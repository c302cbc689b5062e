package lru

import (
	"sync"
	"time"
)

// Expiring is a Map whose entries also expire: each is kept for the time
// it was put with, or until it is the least recently used of a full map.
type Expiring[V any] struct {
	mu sync.Mutex // makes Touch's read and write one step
	m  *Map[expiring[V]]
}

type expiring[V any] struct {
	val     V
	expires time.Time
}

// NewExpiring returns an Expiring holding at most size (at least 1)
// entries.
func NewExpiring[V any](size int) *Expiring[V] {
	return &Expiring[V]{m: New[expiring[V]](size)}
}

// Get returns the unexpired value under key; an expired one is forgotten.
func (e *Expiring[V]) Get(key string) (V, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.live(key)
	return v.val, ok
}

// Put keeps val under key for ttl, replacing what was there and its
// expiry.
func (e *Expiring[V]) Put(key string, val V, ttl time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m.Put(key, expiring[V]{val: val, expires: time.Now().Add(ttl)})
}

// Touch sets the expiry of the unexpired value under key to ttl from now
// and reports whether it is there.
func (e *Expiring[V]) Touch(key string, ttl time.Duration) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.live(key)
	if ok {
		v.expires = time.Now().Add(ttl)
		e.m.Put(key, v)
	}
	return ok
}

// live returns key's entry while it has not expired; e.mu is held.
func (e *Expiring[V]) live(key string) (expiring[V], bool) {
	v, ok := e.m.Get(key)
	if ok && !time.Now().Before(v.expires) {
		e.m.Delete(key)
		return expiring[V]{}, false
	}
	return v, ok
}
