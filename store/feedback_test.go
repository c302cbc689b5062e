package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/store"
)

func event(key string) cds.FeedbackEvent {
	return cds.FeedbackEvent{
		Service:    "hip-radiograph-screening",
		Key:        key,
		ReceivedAt: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		Feedback:   cds.Feedback{Card: "0b3e2f5e-8a4b-4a57-9a3c-6d3f2e1b0c9d", Outcome: cds.OutcomeOverridden, OutcomeTimestamp: "2026-11-24T10:00:00Z"},
	}
}

func TestFeedbackContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testFeedbackContract(t, func(*testing.T) cds.FeedbackLog { return store.NewMemoryFeedback(1000) })
	})
	t.Run("redis", func(t *testing.T) {
		testFeedbackContract(t, func(t *testing.T) cds.FeedbackLog { return store.NewRedisFeedback(newRedis(t), 1000) })
	})
}

// testFeedbackContract is what a feedback log does, in memory or on Redis:
// each event is recorded once by its key, a repeat (the EHR's retry) is
// reported as not recorded however many events came between.
func testFeedbackContract(t *testing.T, newLog func(t *testing.T) cds.FeedbackLog) {
	log := newLog(t)
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"a", false}, {"b", true}, {"c", true}, {"a", false}, {"b", false}, {"d", true}} {
		got, err := log.Record(t.Context(), event(tt.key))
		if err != nil || got != tt.want {
			t.Fatalf("Record(%s) = %v, %v; want %v", tt.key, got, err, tt.want)
		}
	}
}

// TestMemoryFeedbackDedupesAndBounds: the embedded log keeps the newest
// events and forgets the oldest with their keys (Redis keeps the keys a
// week, feedbackSeenTTL, however its stream is trimmed).
func TestMemoryFeedbackDedupesAndBounds(t *testing.T) {
	m := store.NewMemoryFeedback(3)
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"a", false}, {"b", true}, {"c", true}, {"d", true}, {"a", true}, {"d", false}} {
		got, err := m.Record(t.Context(), event(tt.key))
		if err != nil || got != tt.want {
			t.Fatalf("Record(%s) = %v, %v; want %v", tt.key, got, err, tt.want)
		}
	}
	var keys []string
	for _, e := range m.Events() {
		keys = append(keys, e.Key)
	}
	if fmt.Sprint(keys) != "[c d a]" {
		t.Errorf("kept %v, want the newest three [c d a]", keys)
	}
}

func TestRedisFeedback(t *testing.T) {
	rdb := newRedis(t)
	log := store.NewRedisFeedback(rdb, 1000)
	ctx := t.Context()
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"a", false}, {"b", true}} {
		got, err := log.Record(ctx, event(tt.key))
		if err != nil || got != tt.want {
			t.Fatalf("Record(%s) = %v, %v; want %v", tt.key, got, err, tt.want)
		}
	}
	entries, err := rdb.XRange(ctx, store.FeedbackStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("stream holds %d entries, want 2", len(entries))
	}
	v := entries[0].Values
	if v["service"] != "hip-radiograph-screening" || v["outcome"] != "overridden" || v["key"] != "a" || v["receivedAt"] != "2026-11-24T10:00:00Z" {
		t.Errorf("first entry = %v", v)
	}
}

func TestRedisFeedbackStreamIsBounded(t *testing.T) {
	rdb := newRedis(t)
	log := store.NewRedisFeedback(rdb, 10)
	for i := range 500 {
		if _, err := log.Record(t.Context(), event(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rdb.XLen(t.Context(), store.FeedbackStream).Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so the
	// stream stays near, not exactly at, the bound.
	if n > 200 {
		t.Errorf("stream holds %d entries after 500 records with max 10", n)
	}
}

func TestRedisFeedbackReportsRedisDown(t *testing.T) {
	rdb, err := store.NewRedisClient(fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	if _, err := store.NewRedisFeedback(rdb, 10).Record(t.Context(), event("a")); err == nil {
		t.Fatal("Record against a closed port succeeded")
	}
}
