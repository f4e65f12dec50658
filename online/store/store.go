// Package store keeps the raw events that online serving has ingested but
// that the tile store does not cover yet: per (tile set, key), the event
// time, value and validity of each event, sorted by time. Two
// implementations share one contract: Bolt, an embedded file
// (go.etcd.io/bbolt), and Redis, for several serving replicas.
package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// Event is one ingested event of a tile set.
type Event struct {
	TileSet string
	Key     string // the grouping key as text (int keys in decimal)
	TS      int64  // microseconds since the Unix epoch
	Value   float64
	Valid   bool // false for a null value, or for a count-only tile set
}

// Point is an event as read back: its time and value.
type Point struct {
	TS    int64
	Value float64
	Valid bool
}

// Span selects the events of one (tile set, key) with From <= TS < To.
type Span struct {
	TileSet  string
	Key      string
	From, To int64
}

// Store holds ingested events. Implementations are safe for concurrent use.
type Store interface {
	// Append adds events. When it returns nil the events are durable (as
	// durable as the backend is configured to be) and later reads see them.
	Append(ctx context.Context, events []Event) error
	// Read returns, for each span, its events sorted by time (ties in
	// arrival order); out[i] belongs to spans[i].
	Read(ctx context.Context, spans []Span) ([][]Point, error)
	// AppendOnce is Append guarded by an idempotency key. When an unexpired
	// receipt (Expires > now) holds r.Key, it stores nothing and returns
	// that receipt; otherwise it stores the events and r in one atomic
	// write, replacing an expired receipt, and returns nil. Of concurrent
	// calls with one key, exactly one stores.
	AppendOnce(ctx context.Context, events []Event, r Receipt, now int64) (*Receipt, error)
	// Prune removes the events of a tile set with TS < before and returns
	// how many it removed.
	Prune(ctx context.Context, tileSet string, before int64) (int, error)
	// PruneReceipts removes the receipts that expired at or before now and
	// returns how many it removed (a store whose receipts expire by
	// themselves returns 0).
	PruneReceipts(ctx context.Context, now int64) (int, error)
	// Close releases the store.
	Close() error
}

// Receipt records the first request made with an idempotency key: what it
// sent (a digest) and what it was answered.
type Receipt struct {
	// Key is the client's idempotency key, 1 to MaxIdempotencyKeyBytes
	// bytes.
	Key string
	// Digest identifies the request, e.g. a SHA-256 of its target and body.
	Digest [32]byte
	// Reply is the answer to replay.
	Reply []byte
	// Expires is when the key may be used again, in microseconds since the
	// Unix epoch.
	Expires int64
}

// MaxIdempotencyKeyBytes bounds the length of an idempotency key.
const MaxIdempotencyKeyBytes = 255

// encodeReceipt lays out a receipt's expiry (8 bytes, big-endian), digest
// and reply; the key is stored beside it.
func encodeReceipt(r Receipt) []byte {
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 40+len(r.Reply)), uint64(r.Expires))
	out = append(out, r.Digest[:]...)
	return append(out, r.Reply...)
}

// decodeReceipt copies a receipt out of b.
func decodeReceipt(key string, b []byte) (*Receipt, error) {
	if len(b) < 40 {
		return nil, fmt.Errorf("damaged receipt of idempotency key %q: %d bytes", key, len(b))
	}
	r := &Receipt{Key: key, Expires: int64(binary.BigEndian.Uint64(b)), Reply: slices.Clone(b[40:])}
	copy(r.Digest[:], b[8:40])
	return r, nil
}

func checkReceipt(r Receipt) error {
	if r.Key == "" || len(r.Key) > MaxIdempotencyKeyBytes {
		return fmt.Errorf("idempotency key of %d bytes: want 1 to %d", len(r.Key), MaxIdempotencyKeyBytes)
	}
	return nil
}

// Open opens the store a location names: redis://host:port/db (or
// rediss://) for Redis, bolt:///path or a plain file path for an embedded
// bbolt file.
func Open(location string) (Store, error) {
	switch {
	case strings.HasPrefix(location, "redis://"), strings.HasPrefix(location, "rediss://"):
		return OpenRedis(location)
	case strings.HasPrefix(location, "bolt://"):
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("open online store %s: %w", location, err)
		}
		return OpenBolt(filepath.FromSlash(u.Host + u.Path))
	case strings.Contains(location, "://"):
		return nil, fmt.Errorf("open online store %s: unknown scheme; use redis://host:port/db or a file path for the embedded store", location)
	}
	return OpenBolt(location)
}

// MaxKeyBytes bounds the length of a key's text.
const MaxKeyBytes = 1024
