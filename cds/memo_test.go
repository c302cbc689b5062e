package cds

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// The memo decodes each byte string at most twice (it remembers from the
// second sighting), gives back exactly what decoding gave, never
// remembers errors or oversized input, and stays within its bounds.
func TestMemo(t *testing.T) {
	var c memo[string]
	calls := 0
	decode := func(b []byte) (string, error) {
		calls++
		if strings.HasPrefix(string(b), "bad") {
			return "", errors.New("bad input")
		}
		return "decoded " + string(b), nil
	}
	for range 3 {
		if v, err := c.decode([]byte(`{"id":"a"}`), decode); err != nil || v != `decoded {"id":"a"}` {
			t.Fatalf("%q, %v", v, err)
		}
	}
	if calls != 2 {
		t.Errorf("a decoded %d times, want 2", calls)
	}
	if v, _ := c.decode([]byte(`{"id":"b"}`), decode); v != `decoded {"id":"b"}` || calls != 3 {
		t.Errorf("b gave %q after %d decodings, want 3", v, calls)
	}
	for range 2 {
		if _, err := c.decode([]byte("bad"), decode); err == nil {
			t.Error("an error was not returned")
		}
	}
	if calls != 5 {
		t.Errorf("%d decodings, want 5: errors are decoded again", calls)
	}
	big := []byte(strings.Repeat("x", memoMaxBytes+1))
	for range 3 {
		c.decode(big, decode)
	}
	if calls != 8 || len(c.m) != 1 {
		t.Errorf("oversized input: %d decodings, %d entries", calls, len(c.m))
	}
	for i := range 2 * memoEntries {
		k := []byte(strconv.Itoa(i))
		for range 2 {
			if v, _ := c.decode(k, decode); v != "decoded "+string(k) {
				t.Fatalf("%s gave %q", k, v)
			}
		}
	}
	if len(c.m) != memoEntries || len(c.seen) > 4*memoEntries {
		t.Errorf("%d entries, want %d; %d seen", len(c.m), memoEntries, len(c.seen))
	}
	var size memo[string]
	chunk := strings.Repeat("y", memoMaxBytes-8)
	for i := range 2 * memoBytes / memoMaxBytes {
		size.decode([]byte(strconv.Itoa(i)+chunk), decode)
		size.decode([]byte(strconv.Itoa(i)+chunk), decode)
	}
	if size.bytes > memoBytes || size.bytes != sumKeys(size.m) || size.bytes < memoBytes/2 {
		t.Errorf("%d bytes counted, %d held, at most %d", size.bytes, sumKeys(size.m), memoBytes)
	}
}

func sumKeys(m map[string]string) int {
	n := 0
	for k := range m {
		n += len(k)
	}
	return n
}
