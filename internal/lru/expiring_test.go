package lru

import (
	"testing"
	"time"
)

func TestExpiringForgetsWhatExpired(t *testing.T) {
	e := NewExpiring[int](2)
	e.Put("a", 1, 50*time.Millisecond)
	e.Put("b", 2, time.Hour)
	if v, ok := e.Get("a"); !ok || v != 1 {
		t.Fatalf("a = %v %v", v, ok)
	}
	if !e.Touch("b", 50*time.Millisecond) {
		t.Fatal("touch of b: not there")
	}
	time.Sleep(80 * time.Millisecond)
	for _, k := range []string{"a", "b"} {
		if _, ok := e.Get(k); ok {
			t.Errorf("%s outlived its expiry", k)
		}
	}
	if e.Touch("a", time.Hour) {
		t.Error("touch brought an expired entry back")
	}
	if e.m.Len() != 0 {
		t.Errorf("%d expired entries still held", e.m.Len())
	}
	e.Put("a", 1, time.Hour)
	e.Put("b", 2, time.Hour)
	e.Put("c", 3, time.Hour) // forgets a, the least recently used
	if _, ok := e.Get("a"); ok {
		t.Error("a kept past the bound")
	}
}
