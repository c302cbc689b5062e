package lru

import "testing"

func TestForgetsLeastRecentlyUsed(t *testing.T) {
	m := New[int](2)
	m.Put("a", 1)
	m.Put("b", 2)
	if v, ok := m.Get("a"); !ok || v != 1 { // a is now the most recent
		t.Fatalf("a = %v %v", v, ok)
	}
	m.Put("c", 3) // forgets b
	if _, ok := m.Get("b"); ok {
		t.Error("b kept past the bound")
	}
	for k, want := range map[string]int{"a": 1, "c": 3} {
		if v, ok := m.Get(k); !ok || v != want {
			t.Errorf("%s = %v %v, want %d", k, v, ok, want)
		}
	}
	m.Put("a", 10)
	if v, _ := m.Get("a"); v != 10 || m.Len() != 2 {
		t.Errorf("update: a=%d len=%d", v, m.Len())
	}
	m.Delete("a")
	if _, ok := m.Get("a"); ok || m.Len() != 1 {
		t.Errorf("after Delete: len %d", m.Len())
	}
}
