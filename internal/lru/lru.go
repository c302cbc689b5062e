// Package lru is a small bounded map that forgets the least recently used
// entry first; safe for concurrent use.
package lru

import (
	"container/list"
	"sync"
)

// Map holds at most Max entries.
type Map[V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[string]*list.Element
}

type entry[V any] struct {
	key string
	val V
}

// New returns a Map holding at most size (at least 1) entries.
func New[V any](size int) *Map[V] {
	return &Map[V]{max: max(1, size), order: list.New(), items: map[string]*list.Element{}}
}

// Get returns the value under key and marks it recently used.
func (m *Map[V]) Get(key string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.order.MoveToFront(el)
		return el.Value.(*entry[V]).val, true
	}
	var zero V
	return zero, false
}

// Put stores val under key, forgetting the least recently used entry when
// full.
func (m *Map[V]) Put(key string, val V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		el.Value.(*entry[V]).val = val
		m.order.MoveToFront(el)
		return
	}
	m.items[key] = m.order.PushFront(&entry[V]{key, val})
	for m.order.Len() > m.max {
		old := m.order.Back()
		m.order.Remove(old)
		delete(m.items, old.Value.(*entry[V]).key)
	}
}

// Delete forgets key.
func (m *Map[V]) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.order.Remove(el)
		delete(m.items, key)
	}
}

// Len is the number of entries.
func (m *Map[V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}
