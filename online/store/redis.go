package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps events in Redis, shared by several serving replicas: one
// sorted set per (tile set, key), scored by event time, and one set per tile
// set listing its keys (for Prune).
//
// An acknowledged Append is as durable as the server's persistence: run Redis
// with appendonly yes and appendfsync always for acknowledged events to
// survive a Redis crash. OpenRedis reports anything weaker in Warning.
type Redis struct {
	c      *redis.Client
	prefix string
	base   uint64
	seq    atomic.Uint64
	// Warning is non-empty when the server's persistence settings can lose
	// acknowledged events, or could not be checked.
	Warning string
}

// OpenRedis connects to a redis:// URL and checks that the server answers.
func OpenRedis(location string) (*Redis, error) {
	opt, err := redis.ParseURL(location)
	if err != nil {
		return nil, fmt.Errorf("open online store %s: %w (want redis://host:port/db)", location, err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	r := &Redis{c: redis.NewClient(opt), prefix: "tessera:"}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("open online store %s: %w", location, err)
	}
	r.base = binary.BigEndian.Uint64(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		r.c.Close()
		return nil, fmt.Errorf("open online store %s: %w; is redis-server running there?", location, err)
	}
	cfg, err := r.c.ConfigGet(ctx, "append*").Result()
	switch {
	case err != nil:
		r.Warning = fmt.Sprintf("cannot read the persistence settings of %s (%v): acknowledged events survive a Redis crash only with appendonly yes and appendfsync always", location, err)
	case cfg["appendonly"] != "yes" || cfg["appendfsync"] != "always":
		r.Warning = fmt.Sprintf("%s runs with appendonly %s, appendfsync %s: acknowledged events may be lost if Redis crashes; set appendonly yes and appendfsync always", location, cfg["appendonly"], cfg["appendfsync"])
	}
	return r, nil
}

// Close closes the connections.
func (r *Redis) Close() error {
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("close online store: %w", err)
	}
	return nil
}

func (r *Redis) eventsKey(tileSet, key string) string {
	return r.prefix + "ev:" + tileSet + ":" + key
}

func (r *Redis) keysKey(tileSet string) string { return r.prefix + "keys:" + tileSet }

// Append adds the events in one MULTI/EXEC transaction.
func (r *Redis) Append(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := checkEvents(events); err != nil {
		return fmt.Errorf("append %d events to the Redis online store: %w", len(events), err)
	}
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		r.queueAppend(ctx, p, events)
		return nil
	})
	if err != nil {
		return fmt.Errorf("append %d events to the Redis online store: %w", len(events), err)
	}
	return nil
}

func checkEvents(events []Event) error {
	for _, e := range events {
		if len(e.Key) > MaxKeyBytes {
			return fmt.Errorf("tile set %s: key of %d bytes is longer than %d", e.TileSet, len(e.Key), MaxKeyBytes)
		}
		if e.TS <= -1<<53 || e.TS >= 1<<53 {
			return fmt.Errorf("tile set %s key %q: event time %d is outside what a Redis score holds exactly", e.TileSet, e.Key, e.TS)
		}
	}
	return nil
}

// queueAppend queues the commands that add events.
func (r *Redis) queueAppend(ctx context.Context, p redis.Pipeliner, events []Event) {
	for _, e := range events {
		seq := r.base + r.seq.Add(1)
		m := binary.BigEndian.AppendUint64(make([]byte, 0, 25), uint64(e.TS)^(1<<63))
		m = binary.BigEndian.AppendUint64(m, seq)
		m = append(m, eventValue(e.Value, e.Valid)...)
		p.ZAdd(ctx, r.eventsKey(e.TileSet, e.Key), redis.Z{Score: float64(e.TS), Member: string(m)})
		p.SAdd(ctx, r.keysKey(e.TileSet), e.Key)
	}
}

// receiptKey names a receipt by a hash of its idempotency key, so that no
// client text becomes part of a Redis key name.
func (r *Redis) receiptKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return r.prefix + "receipt:" + hex.EncodeToString(h[:])
}

// AppendOnce watches the receipt's Redis key, reads it and, when it is
// absent, writes the receipt (expiring at r.Expires) and the events in one
// MULTI/EXEC; a concurrent write of the receipt aborts the transaction and
// the call reads again.
func (r *Redis) AppendOnce(ctx context.Context, events []Event, rc Receipt, now int64) (*Receipt, error) {
	if err := checkReceipt(rc); err != nil {
		return nil, fmt.Errorf("append %d events to the Redis online store: %w", len(events), err)
	}
	if err := checkEvents(events); err != nil {
		return nil, fmt.Errorf("append %d events to the Redis online store: %w", len(events), err)
	}
	ttl := time.Duration(rc.Expires-now) * time.Microsecond
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	rk := r.receiptKey(rc.Key)
	for range 10 {
		var prior *Receipt
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			v, err := tx.Get(ctx, rk).Bytes()
			switch {
			case err == nil:
				prior, err = decodeReceipt(rc.Key, v)
				return err
			case !errors.Is(err, redis.Nil):
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, rk, encodeReceipt(rc), ttl)
				r.queueAppend(ctx, p, events)
				return nil
			})
			return err
		}, rk)
		if errors.Is(err, redis.TxFailedErr) {
			continue // another request wrote the receipt: read it
		}
		if err != nil {
			return nil, fmt.Errorf("append %d events to the Redis online store under idempotency key %q: %w", len(events), rc.Key, err)
		}
		return prior, nil
	}
	return nil, fmt.Errorf("append %d events to the Redis online store under idempotency key %q: the receipt kept changing; retry", len(events), rc.Key)
}

// PruneReceipts does nothing: Redis expires receipts by itself.
func (r *Redis) PruneReceipts(context.Context, int64) (int, error) { return 0, nil }

// Read reads every span in one pipeline.
func (r *Redis) Read(ctx context.Context, spans []Span) ([][]Point, error) {
	out := make([][]Point, len(spans))
	cmds := make([]*redis.StringSliceCmd, len(spans))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sp := range spans {
			if sp.From >= sp.To {
				continue
			}
			start := "-inf"
			if sp.From > -1<<53 {
				start = strconv.FormatInt(sp.From, 10)
			}
			stop := "+inf"
			if sp.To < 1<<53 {
				stop = "(" + strconv.FormatInt(sp.To, 10)
			}
			cmds[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: r.eventsKey(sp.TileSet, sp.Key), Start: start, Stop: stop, ByScore: true})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the Redis online store: %w", err)
	}
	for i, c := range cmds {
		if c == nil {
			continue
		}
		for _, m := range c.Val() {
			if len(m) != 25 {
				return nil, fmt.Errorf("read the Redis online store: tile set %s key %q: damaged member of %d bytes", spans[i].TileSet, spans[i].Key, len(m))
			}
			b := []byte(m)
			out[i] = append(out[i], Point{
				TS:    decodeTS(b[:8]),
				Value: math.Float64frombits(binary.BigEndian.Uint64(b[16:24])),
				Valid: b[24] == 1,
			})
		}
	}
	return out, nil
}

// pruneScript removes the events before ARGV[1] (an exclusive score bound)
// from each sorted set in KEYS[2:], and drops from the tile set's key set
// KEYS[1] each key (ARGV[2:], in the same order as KEYS[2:]) whose sorted set is left empty (Redis then deletes
// it). It runs atomically, so a concurrent Append either lands before it
// (and its event is judged with the others) or after it (and adds the key
// back).
var pruneScript = redis.NewScript(`
local removed = 0
for i = 2, #KEYS do
  removed = removed + redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[i]) == 0 then
    redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return removed
`)

// Prune removes the events older than before from every key of the tile
// set, and forgets the keys left without events.
func (r *Redis) Prune(ctx context.Context, tileSet string, before int64) (int, error) {
	var cursor uint64
	total := 0
	setKey := r.keysKey(tileSet)
	for {
		keys, next, err := r.c.SScan(ctx, setKey, cursor, "", 1000).Result()
		if err != nil {
			return total, fmt.Errorf("prune tile set %s in the Redis online store: %w", tileSet, err)
		}
		if len(keys) > 0 {
			rkeys := make([]string, 1, len(keys)+1)
			rkeys[0] = setKey
			args := make([]any, 1, len(keys)+1)
			args[0] = "(" + strconv.FormatInt(before, 10)
			for _, k := range keys {
				rkeys = append(rkeys, r.eventsKey(tileSet, k))
				args = append(args, k)
			}
			n, err := pruneScript.Run(ctx, r.c, rkeys, args...).Int()
			if err != nil {
				return total, fmt.Errorf("prune tile set %s in the Redis online store: %w", tileSet, err)
			}
			total += n
		}
		if next == 0 {
			return total, nil
		}
		cursor = next
	}
}

// Keys returns how many keys of a tile set hold events, as the store
// tracks them for Prune.
func (r *Redis) Keys(ctx context.Context, tileSet string) (int64, error) {
	n, err := r.c.SCard(ctx, r.keysKey(tileSet)).Result()
	if err != nil {
		return 0, fmt.Errorf("count keys of tile set %s in the Redis online store: %w", tileSet, err)
	}
	return n, nil
}
