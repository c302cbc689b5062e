package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/internal/lru"
	"github.com/redis/go-redis/v9"
)

var (
	_ analysis.Worklist = (*RedisWorklist)(nil)
	_ analysis.Worklist = (*MemoryWorklist)(nil)
)

// The worklist's bounds when none is given.
const (
	// DefaultWorklistItems is how many studies one FHIR server's worklist
	// keeps.
	DefaultWorklistItems = 2000
	// DefaultWorklistTTL is how long a worklist is kept after its last
	// note (the default results.ttl).
	DefaultWorklistTTL = 24 * time.Hour
	// memoryWorklists is how many FHIR servers' worklists the embedded
	// twin keeps; the least recently noted is forgotten first.
	memoryWorklists = 64
)

// worklistKey names the worklist of a tenant's FHIR server: a hash, so that
// neither the issuer nor the server's URL is in a Redis key.
func worklistKey(tenant, fhirServer string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + analysis.NormalizeServer(fhirServer)))
	return "orthotriage:worklist:" + hex.EncodeToString(h[:])
}

// worklistBounds are the item bound and ttl, defaulted when not positive.
func worklistBounds(ttl time.Duration, maxItems int) (time.Duration, int) {
	if ttl <= 0 {
		ttl = DefaultWorklistTTL
	}
	if maxItems <= 0 {
		maxItems = DefaultWorklistItems
	}
	return ttl, maxItems
}

// noted is item as a Note stores it: stamped when not, in UTC (so that
// Redis can order the stamps as text), without Feedback (only Mark sets
// it).
func noted(item analysis.WorkItem) analysis.WorkItem {
	if item.Updated.IsZero() {
		item.Updated = time.Now()
	}
	item.Updated, item.Feedback, item.Saved = item.Updated.UTC(), "", false
	if item.Top != nil {
		top := *item.Top
		item.Top = &top
	}
	return item
}

// listed is the first max of items in worklist order (all when max is not
// positive).
func listed(items []analysis.WorkItem, max int) []analysis.WorkItem {
	analysis.SortWorklist(items)
	if max > 0 && len(items) > max {
		items = items[:max]
	}
	return items
}

// RedisWorklist keeps each tenant's FHIR server's worklist in one Redis
// hash (worklistKey), a field per ImagingStudy holding the item's JSON.
// Each Note is one script: the merge, the hash's expiry set to ttl, and
// the bound (the least recently updated items dropped when over).
type RedisWorklist struct {
	rdb      redis.UniversalClient
	ttl      time.Duration
	maxItems int
}

// NewRedisWorklist returns the worklist on rdb, each FHIR server's kept for
// ttl after its last note (DefaultWorklistTTL when not positive) and
// holding at most maxItems studies (DefaultWorklistItems when not
// positive).
func NewRedisWorklist(rdb redis.UniversalClient, ttl time.Duration, maxItems int) *RedisWorklist {
	ttl, maxItems = worklistBounds(ttl, maxItems)
	return &RedisWorklist{rdb: rdb, ttl: ttl, maxItems: maxItems}
}

// The worklist scripts. An unreadable stored item is taken as absent and,
// stamped "", is the first dropped. Stamps are RFC 3339 in UTC as Go
// writes them (fraction without trailing zeros), padded to nanoseconds so
// that they order as text.
const worklistLua = `
local function decode(v)
  if not v then return nil end
  local ok, item = pcall(cjson.decode, v)
  if ok and type(item) == "table" then return item end
  return nil
end
local function str(v)
  if type(v) == "string" then return v end
  return ""
end
local function stamp(v)
  local base, frac = string.match(v, '"updated":"(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d)%.?(%d*)Z"')
  if not base then return "" end
  return base .. frac .. string.rep("0", 9 - #frac)
end
`

var (
	// KEYS[1] the worklist; ARGV: the ImagingStudy, the item's JSON (no
	// feedback), the ttl in ms, the most items kept. The stored item is
	// kept as analysis.WorkItem.Supersedes says, else replaced, with its
	// feedback and saved mark carried over as Carries says. Returns 1 when the item was stored, 0 when
	// the stored one was kept.
	noteScript = redis.NewScript(worklistLua + `
local item = cjson.decode(ARGV[2])
local old = decode(redis.call("HGET", KEYS[1], ARGV[1]))
local value = ARGV[2]
local stored = 1
local rank = {routine = 1, urgent = 2, asap = 3, stat = 4}
if old then
  if item.status == "pending" then
    if old.status ~= "pending" then stored = 0 end
  elseif old.status ~= "pending" and str(old.task) ~= str(item.task)
      and (rank[str(item.priority)] or 0) < (rank[str(old.priority)] or 0) then
    stored = 0
  end
  if stored == 1 and str(old.task) == str(item.task) and (str(item.model) == "" or str(item.model) == str(old.model))
      and (str(old.feedback) ~= "" or old.saved == true) then
    if str(old.feedback) ~= "" then item.feedback = old.feedback end
    if old.saved == true then item.saved = true end
    value = cjson.encode(item)
  end
end
if stored == 1 then redis.call("HSET", KEYS[1], ARGV[1], value) end
redis.call("PEXPIRE", KEYS[1], ARGV[3])
local over = redis.call("HLEN", KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  local all = redis.call("HGETALL", KEYS[1])
  local items = {}
  for i = 1, #all, 2 do items[#items + 1] = {stamp(all[i + 1]), all[i]} end
  for _ = 1, over do
    local oldest = 1
    for i = 2, #items do
      local a, b = items[i], items[oldest]
      if a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) then oldest = i end
    end
    redis.call("HDEL", KEYS[1], items[oldest][2])
    table.remove(items, oldest)
  end
end
return stored
`)
	// KEYS[1] the worklist; ARGV: the ImagingStudy, the feedback, the
	// stamp. Returns 1 when the item was there.
	markScript = redis.NewScript(worklistLua + `
local item = decode(redis.call("HGET", KEYS[1], ARGV[1]))
if not item then return 0 end
if ARGV[2] == "saved" then item.saved = true
elseif ARGV[2] == "" then item.feedback = nil
else item.feedback = ARGV[2] end
item.updated = ARGV[3]
redis.call("HSET", KEYS[1], ARGV[1], cjson.encode(item))
return 1
`)
)

// Note records item (see analysis.Worklist) and sets the worklist's expiry.
func (w *RedisWorklist) Note(ctx context.Context, tenant, fhirServer string, item analysis.WorkItem) error {
	if item.ImagingStudy == "" {
		return fmt.Errorf("note worklist item: no ImagingStudy")
	}
	b, err := json.Marshal(noted(item))
	if err != nil {
		return fmt.Errorf("encode worklist item: %w", err)
	}
	err = noteScript.Run(ctx, w.rdb, []string{worklistKey(tenant, fhirServer)}, item.ImagingStudy, b, w.ttl.Milliseconds(), w.maxItems).Err()
	if err != nil {
		return fmt.Errorf("redis note worklist item: %w", err)
	}
	return nil
}

// Mark records the app's mark on the study's item (see analysis.Worklist), when it is on the list.
func (w *RedisWorklist) Mark(ctx context.Context, tenant, fhirServer, imagingStudy, mark string) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	err := markScript.Run(ctx, w.rdb, []string{worklistKey(tenant, fhirServer)}, imagingStudy, mark, now).Err()
	if err != nil {
		return fmt.Errorf("redis mark worklist item: %w", err)
	}
	return nil
}

// List returns the FHIR server's first max items in worklist order; an
// unreadable stored item is left out.
func (w *RedisWorklist) List(ctx context.Context, tenant, fhirServer string, max int) ([]analysis.WorkItem, error) {
	all, err := w.rdb.HGetAll(ctx, worklistKey(tenant, fhirServer)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list worklist: %w", err)
	}
	items := make([]analysis.WorkItem, 0, len(all))
	for study, v := range all {
		var item analysis.WorkItem
		if json.Unmarshal([]byte(v), &item) != nil {
			continue
		}
		item.ImagingStudy = study
		items = append(items, item)
	}
	return listed(items, max), nil
}

// MemoryWorklist is the embedded twin of RedisWorklist: each FHIR server's
// worklist forgotten ttl after its last note, at most maxItems studies in
// each (the least recently updated dropped when over), and at most
// memoryWorklists worklists (the least recently noted forgotten). Safe for
// concurrent use.
type MemoryWorklist struct {
	mu       sync.Mutex // makes each Note and Mark one step
	ttl      time.Duration
	maxItems int
	lists    *lru.Expiring[map[string]analysis.WorkItem]
}

// NewMemoryWorklist returns a worklist bounded as NewRedisWorklist's.
func NewMemoryWorklist(ttl time.Duration, maxItems int) *MemoryWorklist {
	ttl, maxItems = worklistBounds(ttl, maxItems)
	return &MemoryWorklist{ttl: ttl, maxItems: maxItems, lists: lru.NewExpiring[map[string]analysis.WorkItem](memoryWorklists)}
}

// Note records item (see analysis.Worklist) and sets the worklist's expiry.
func (w *MemoryWorklist) Note(_ context.Context, tenant, fhirServer string, item analysis.WorkItem) error {
	if item.ImagingStudy == "" {
		return fmt.Errorf("note worklist item: no ImagingStudy")
	}
	item = noted(item)
	w.mu.Lock()
	defer w.mu.Unlock()
	key := worklistKey(tenant, fhirServer)
	list, ok := w.lists.Get(key)
	if !ok {
		list = map[string]analysis.WorkItem{}
	}
	old, had := list[item.ImagingStudy]
	if !had || item.Supersedes(old) {
		if had && item.Carries(old) {
			item.Feedback, item.Saved = old.Feedback, old.Saved
		}
		list[item.ImagingStudy] = item
	}
	for len(list) > w.maxItems {
		delete(list, oldestItem(list))
	}
	w.lists.Put(key, list, w.ttl)
	return nil
}

// oldestItem is the least recently updated item's study (the first
// ImagingStudy of those updated at once).
func oldestItem(list map[string]analysis.WorkItem) string {
	var oldest string
	var at time.Time
	for study, it := range list {
		if oldest == "" || it.Updated.Before(at) || (it.Updated.Equal(at) && study < oldest) {
			oldest, at = study, it.Updated
		}
	}
	return oldest
}

// Mark records the app's mark on the study's item (see analysis.Worklist), when it is on the list.
func (w *MemoryWorklist) Mark(_ context.Context, tenant, fhirServer, imagingStudy, mark string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	list, ok := w.lists.Get(worklistKey(tenant, fhirServer))
	if !ok {
		return nil
	}
	if item, ok := list[imagingStudy]; ok {
		if mark == analysis.WorkSaved {
			item.Saved = true
		} else {
			item.Feedback = mark
		}
		item.Updated = time.Now().UTC()
		list[imagingStudy] = item
	}
	return nil
}

// List returns the FHIR server's first max items in worklist order.
func (w *MemoryWorklist) List(_ context.Context, tenant, fhirServer string, max int) ([]analysis.WorkItem, error) {
	w.mu.Lock()
	list, _ := w.lists.Get(worklistKey(tenant, fhirServer))
	items := make([]analysis.WorkItem, 0, len(list))
	for _, it := range list {
		if it.Top != nil {
			top := *it.Top
			it.Top = &top
		}
		items = append(items, it)
	}
	w.mu.Unlock()
	return listed(items, max), nil
}
