package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bolt is the embedded store. The bbolt file is a write-ahead log: each
// Append is one record under an increasing sequence number (so writes land at
// the end of the B+tree, one sync per commit), and the prune horizon of each
// tile set. Reads are served from an index in memory, rebuilt from the log
// when the file is opened; it holds the events not yet pruned, which the
// retention bounds.
type Bolt struct {
	db   *bolt.DB
	path string

	mu      sync.RWMutex
	mem     map[string]map[string][]Point // tile set -> key -> events by time
	horizon map[string]int64              // tile set -> events before it are pruned
}

var (
	logBucket     = []byte("log")
	horizonBucket = []byte("horizon")
	// receiptBucket maps an idempotency key to its encoded receipt;
	// expiryBucket indexes the receipts by expiry (8 bytes, order-preserving,
	// then the key) for PruneReceipts.
	receiptBucket = []byte("receipt")
	expiryBucket  = []byte("receipt-expiry")
)

// OpenBolt opens (creating it if missing) the bbolt file at path and loads
// its events. Only one process may hold it open; a second waits up to five
// seconds, then fails.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open online store %s: %w", path, err)
	}
	// The freelist is rebuilt on open rather than written by every commit:
	// commits (one per acknowledged ingest) stay small.
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open online store %s: another process holds it open; stop it or give this server its own --online-store path", path)
		}
		return nil, fmt.Errorf("open online store %s: %w", path, err)
	}
	db.MaxBatchDelay = time.Millisecond
	b := &Bolt{db: db, path: path, mem: map[string]map[string][]Point{}, horizon: map[string]int64{}}
	err = db.Update(func(tx *bolt.Tx) error {
		lb, err := tx.CreateBucketIfNotExists(logBucket)
		if err != nil {
			return err
		}
		hb, err := tx.CreateBucketIfNotExists(horizonBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(receiptBucket); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(expiryBucket); err != nil {
			return err
		}
		if err := hb.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("damaged horizon of tile set %q", k)
			}
			b.horizon[string(k)] = int64(binary.BigEndian.Uint64(v))
			return nil
		}); err != nil {
			return err
		}
		return lb.ForEach(func(k, v []byte) error {
			evs, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("log record %x: %w", k, err)
			}
			b.insert(evs)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open online store %s: %w", path, err)
	}
	return b, nil
}

// Close closes the file.
func (b *Bolt) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close online store %s: %w", b.path, err)
	}
	return nil
}

// Append writes the events as one log record, synced to disk, then indexes
// them. Concurrent calls share a commit (and its sync); each returns only once
// the shared commit is on disk.
func (b *Bolt) Append(_ context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	rec, err := encodeRecord(events)
	if err != nil {
		return fmt.Errorf("append %d events to online store %s: %w", len(events), b.path, err)
	}
	err = b.db.Batch(func(tx *bolt.Tx) error { return putRecord(tx, rec) })
	if err != nil {
		return fmt.Errorf("append %d events to online store %s: %w", len(events), b.path, err)
	}
	b.mu.Lock()
	b.insert(events)
	b.mu.Unlock()
	return nil
}

func putRecord(tx *bolt.Tx, rec []byte) error {
	lb := tx.Bucket(logBucket)
	seq, err := lb.NextSequence()
	if err != nil {
		return err
	}
	return lb.Put(binary.BigEndian.AppendUint64(nil, seq), rec)
}

// AppendOnce writes the events' log record and the receipt in one bbolt
// transaction (shared with concurrent calls, like Append), unless an
// unexpired receipt holds the key.
func (b *Bolt) AppendOnce(_ context.Context, events []Event, r Receipt, now int64) (*Receipt, error) {
	if err := checkReceipt(r); err != nil {
		return nil, fmt.Errorf("append %d events to online store %s: %w", len(events), b.path, err)
	}
	var rec []byte
	if len(events) > 0 {
		var err error
		if rec, err = encodeRecord(events); err != nil {
			return nil, fmt.Errorf("append %d events to online store %s: %w", len(events), b.path, err)
		}
	}
	key := []byte(r.Key)
	var prior *Receipt
	// A retry usually finds its receipt: answer it from a read transaction,
	// without a commit.
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(receiptBucket).Get(key)
		if v == nil {
			return nil
		}
		old, err := decodeReceipt(r.Key, v)
		if err == nil && old.Expires > now {
			prior = old
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("append %d events to online store %s under idempotency key %q: %w", len(events), b.path, r.Key, err)
	}
	if prior != nil {
		return prior, nil
	}
	// A batched function may run more than once: it sets prior afresh.
	err = b.db.Batch(func(tx *bolt.Tx) error {
		prior = nil
		rb, eb := tx.Bucket(receiptBucket), tx.Bucket(expiryBucket)
		if v := rb.Get(key); v != nil {
			old, err := decodeReceipt(r.Key, v)
			if err != nil {
				return err
			}
			if old.Expires > now {
				prior = old
				return nil
			}
			if err := eb.Delete(expiryKey(old.Expires, r.Key)); err != nil {
				return err
			}
		}
		if rec != nil {
			if err := putRecord(tx, rec); err != nil {
				return err
			}
		}
		if err := rb.Put(key, encodeReceipt(r)); err != nil {
			return err
		}
		return eb.Put(expiryKey(r.Expires, r.Key), nil)
	})
	if err != nil {
		return nil, fmt.Errorf("append %d events to online store %s under idempotency key %q: %w", len(events), b.path, r.Key, err)
	}
	if prior != nil {
		return prior, nil
	}
	b.mu.Lock()
	b.insert(events)
	b.mu.Unlock()
	return nil, nil
}

// expiryKey orders receipts by expiry: the time with its sign bit flipped,
// big-endian, then the idempotency key.
func expiryKey(expires int64, key string) []byte {
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(expires)^(1<<63))
	return append(out, key...)
}

// PruneReceipts deletes the receipts that expired at or before now.
func (b *Bolt) PruneReceipts(_ context.Context, now int64) (int, error) {
	n := 0
	err := b.db.Update(func(tx *bolt.Tx) error {
		n = 0
		rb, eb := tx.Bucket(receiptBucket), tx.Bucket(expiryBucket)
		var doomed [][]byte
		c := eb.Cursor()
		for k, _ := c.First(); k != nil && len(k) >= 8 && decodeTS(k) <= now; k, _ = c.Next() {
			doomed = append(doomed, slices.Clone(k))
		}
		for _, k := range doomed {
			if err := eb.Delete(k); err != nil {
				return err
			}
			if err := rb.Delete(k[8:]); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune idempotency receipts in online store %s: %w", b.path, err)
	}
	return n, nil
}

// insert indexes events, keeping each key's events sorted by time (ties in
// arrival order) and leaving out pruned ones. The caller holds mu or owns b.
func (b *Bolt) insert(events []Event) {
	for _, e := range events {
		if h, ok := b.horizon[e.TileSet]; ok && e.TS < h {
			continue
		}
		keys := b.mem[e.TileSet]
		if keys == nil {
			keys = map[string][]Point{}
			b.mem[e.TileSet] = keys
		}
		pts := keys[e.Key]
		p := Point{TS: e.TS, Value: e.Value, Valid: e.Valid}
		if n := len(pts); n == 0 || pts[n-1].TS <= e.TS {
			keys[e.Key] = append(pts, p)
			continue
		}
		i, _ := slices.BinarySearchFunc(pts, e.TS+1, func(p Point, t int64) int { return cmpInt(p.TS, t) })
		keys[e.Key] = slices.Insert(pts, i, p)
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Read returns copies of the indexed events of each span.
func (b *Bolt) Read(_ context.Context, spans []Span) ([][]Point, error) {
	out := make([][]Point, len(spans))
	b.mu.RLock()
	defer b.mu.RUnlock()
	for i, sp := range spans {
		if sp.From >= sp.To {
			continue
		}
		pts := b.mem[sp.TileSet][sp.Key]
		lo, _ := slices.BinarySearchFunc(pts, sp.From, func(p Point, t int64) int { return cmpInt(p.TS, t) })
		hi, _ := slices.BinarySearchFunc(pts, sp.To, func(p Point, t int64) int { return cmpInt(p.TS, t) })
		if lo < hi {
			out[i] = slices.Clone(pts[lo:hi])
		}
	}
	return out, nil
}

// Prune records the tile set's horizon, drops its older events from the
// index and deletes the log records whose every event is pruned.
func (b *Bolt) Prune(_ context.Context, tileSet string, before int64) (int, error) {
	b.mu.Lock()
	if h, ok := b.horizon[tileSet]; ok && h >= before {
		b.mu.Unlock()
		return 0, nil
	}
	b.horizon[tileSet] = before
	removed := 0
	for k, pts := range b.mem[tileSet] {
		i, _ := slices.BinarySearchFunc(pts, before, func(p Point, t int64) int { return cmpInt(p.TS, t) })
		removed += i
		if i == len(pts) {
			delete(b.mem[tileSet], k)
		} else if i > 0 {
			b.mem[tileSet][k] = slices.Clone(pts[i:])
		}
	}
	horizon := make(map[string]int64, len(b.horizon))
	for id, h := range b.horizon {
		horizon[id] = h
	}
	b.mu.Unlock()

	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(horizonBucket).Put([]byte(tileSet), binary.BigEndian.AppendUint64(nil, uint64(before))); err != nil {
			return err
		}
		lb := tx.Bucket(logBucket)
		var doomed [][]byte
		err := lb.ForEach(func(k, v []byte) error {
			evs, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("log record %x: %w", k, err)
			}
			for _, e := range evs {
				if h, ok := horizon[e.TileSet]; !ok || e.TS >= h {
					return nil
				}
			}
			doomed = append(doomed, slices.Clone(k))
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range doomed {
			if err := lb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("prune tile set %s in online store %s: %w", tileSet, b.path, err)
	}
	return removed, nil
}

// encodeRecord lays out events as (len tile set, tile set, len key, key,
// time, value bits, valid) each, lengths as uint16, numbers big-endian.
func encodeRecord(events []Event) ([]byte, error) {
	size := 0
	for _, e := range events {
		size += 4 + len(e.TileSet) + len(e.Key) + 17
	}
	out := make([]byte, 0, size)
	for _, e := range events {
		if len(e.Key) > MaxKeyBytes {
			return nil, fmt.Errorf("tile set %s: key of %d bytes is longer than %d", e.TileSet, len(e.Key), MaxKeyBytes)
		}
		if len(e.TileSet) > math.MaxUint16 {
			return nil, fmt.Errorf("tile set name of %d bytes is too long", len(e.TileSet))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e.TileSet)))
		out = append(out, e.TileSet...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(e.Key)))
		out = append(out, e.Key...)
		out = binary.BigEndian.AppendUint64(out, uint64(e.TS))
		out = append(out, eventValue(e.Value, e.Valid)...)
	}
	return out, nil
}

func decodeRecord(b []byte) ([]Event, error) {
	var out []Event
	str := func() (string, bool) {
		if len(b) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return "", false
		}
		s := string(b[2 : 2+n])
		b = b[2+n:]
		return s, true
	}
	for len(b) > 0 {
		ts, ok1 := str()
		key, ok2 := str()
		if !ok1 || !ok2 || len(b) < 17 {
			return nil, errors.New("truncated record")
		}
		out = append(out, Event{TileSet: ts, Key: key, TS: int64(binary.BigEndian.Uint64(b)),
			Value: math.Float64frombits(binary.BigEndian.Uint64(b[8:])), Valid: b[16] == 1})
		b = b[17:]
	}
	return out, nil
}

func decodeTS(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func eventValue(v float64, valid bool) []byte {
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 9), math.Float64bits(v))
	if valid {
		return append(out, 1)
	}
	return append(out, 0)
}
