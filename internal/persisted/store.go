package persisted

import (
	"context"
	"math"

	"github.com/maypok86/otter/v2"
)

// Store keeps APQ documents by the SHA-256 hex of their text (the shape of
// gqlgen's graphql.Cache[string]). [Extension] checks a document against its
// hash before it adds it, so a Store need not.
type Store interface {
	// Get returns the document stored under hash, if there is one.
	Get(ctx context.Context, hash string) (string, bool)
	// Add stores query under hash. A Store may drop it at any time.
	Add(ctx context.Context, hash, query string)
}

// EntryOverhead is the weight, in bytes, that a [MemoryStore] counts for each
// entry on top of the bytes of its hash and document: an estimate of what
// otter spends to keep an entry (its node, with the key and value string
// headers, list links and policy fields, and the entry's slot in the hash
// table), measured at under 90 bytes on 64-bit platforms and rounded up.
const EntryOverhead = 128

// MemoryStore is a [Store] in process memory, bounded by bytes: each entry
// weighs the length of its hash, plus the length of its document, plus
// [EntryOverhead]. When the total is over the bound, otter evicts the entries
// its policy (W-TinyLFU: recency and frequency) thinks least likely to be used
// again. It is safe for concurrent use.
type MemoryStore struct {
	cache *otter.Cache[string, string]
	// limit is the heaviest entry the store keeps: its bound, or the most
	// an otter weight (uint32) can say, whichever is less.
	limit uint64
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns a MemoryStore that keeps at most maxBytes of
// entries (see [MemoryStore] for what an entry weighs), as the settings
// checked it (a bound under 1 is 1). A single document heavier than the
// bound is not kept.
func NewMemoryStore(maxBytes int64) *MemoryStore {
	maxBytes = max(maxBytes, 1)
	cache := otter.Must(&otter.Options[string, string]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(hash, query string) uint32 {
			// Add keeps out anything heavier than fits in a uint32.
			return uint32(weight(hash, query))
		},
	})
	return &MemoryStore{cache: cache, limit: min(uint64(maxBytes), math.MaxUint32)}
}

// Get returns the document stored under hash, if it is still kept.
func (s *MemoryStore) Get(_ context.Context, hash string) (string, bool) {
	return s.cache.GetIfPresent(hash)
}

// Add stores query under hash, unless the entry alone is heavier than the
// store's bound. Adding a hash that is already kept changes nothing.
func (s *MemoryStore) Add(_ context.Context, hash, query string) {
	if weight(hash, query) > s.limit {
		return
	}
	s.cache.SetIfAbsent(hash, query)
}

// weight is what an entry counts against a MemoryStore's bound.
func weight(hash, query string) uint64 {
	return uint64(len(hash)) + uint64(len(query)) + EntryOverhead
}
