// Package store keeps the raw events that online serving has ingested but
// that the tile store does not cover yet: per (tile set, key), the event
// time, value and validity of each event, sorted by time. Two
// implementations share one contract: Bolt, an embedded file
// (go.etcd.io/bbolt), and Redis, for several serving replicas.
package store

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
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
	// Prune removes the events of a tile set with TS < before and returns
	// how many it removed.
	Prune(ctx context.Context, tileSet string, before int64) (int, error)
	// Close releases the store.
	Close() error
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
