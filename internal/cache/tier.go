package cache

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/compshare/imagegraph/upstream"
)

// Tier is a second tier of the cache that several replicas share (Redis,
// in a fleet): what one replica fetched, the others read, with the time it
// was fetched, so that freshness, priming and stale-if-error work across
// replicas as they do in one. It holds opaque encoded entries. It is never
// needed for a correct answer: a tier that fails answers nothing, at once,
// and the cache carries on with its own entries.
type Tier interface {
	// Get returns the encoded entries of keys, in order; nil where there is
	// none, or when the tier fails.
	Get(ctx context.Context, keys ...string) [][]byte
	// Set stores encoded entries, each for its TTL.
	Set(ctx context.Context, entries []TierEntry)
	// Lock takes a lease of ttl on key, so that one replica of the fleet
	// refreshes an entry while the others keep answering it stale. It
	// reports false when another replica holds it; a tier that fails
	// reports true (each replica then refreshes on its own).
	Lock(ctx context.Context, key string, ttl time.Duration) bool
}

// TierEntry is one entry to store in a Tier.
type TierEntry struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// tierTimeout bounds each call to the tier: it is an optimisation, never
// worth a request waiting.
const tierTimeout = 100 * time.Millisecond

// maxTierWrites bounds the writes to the tier in flight at once; past it a
// write is dropped (the tier is best-effort).
const maxTierWrites = 8

// The encoding of an entry: a version byte, a flags byte, the fetch time
// (Unix nanoseconds, big-endian), then the response as JSON, deflated (a
// page of CJK-heavy JSON shrinks about four times).
const (
	encodingVersion byte = 1
	flagNegative    byte = 1
	headerLen            = 10
)

func encodeEntry(e *entry) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(4 << 10)
	flags := byte(0)
	if e.negative {
		flags |= flagNegative
	}
	buf.Write([]byte{encodingVersion, flags})
	_ = binary.Write(&buf, binary.BigEndian, e.fetched.UnixNano())
	zw := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(zw)
	zw.Reset(&buf)
	if err := json.NewEncoder(zw).Encode(e.resp); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// deflaters keeps the compressors: each holds tens of kilobytes of tables,
// and a page writes dozens of entries.
var deflaters = sync.Pool{New: func() any {
	zw, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
	return zw
}}

func decodeEntry(b []byte) (*entry, error) {
	if len(b) < headerLen || b[0] != encodingVersion {
		return nil, errors.New("cache: not an entry of this version")
	}
	fetched := time.Unix(0, int64(binary.BigEndian.Uint64(b[2:headerLen])))
	body, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[headerLen:])))
	if err != nil {
		return nil, err
	}
	resp, err := upstream.DecodeResponse(body)
	if err != nil {
		return nil, err
	}
	// Copied out of the decoded body, as every entry is, so that its weight
	// is what it holds.
	return &entry{resp: cloneResponse(resp), fetched: fetched, negative: b[1]&flagNegative != 0}, nil
}
