package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
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
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range events {
			if len(e.Key) > MaxKeyBytes {
				return fmt.Errorf("tile set %s: key of %d bytes is longer than %d", e.TileSet, len(e.Key), MaxKeyBytes)
			}
			if e.TS <= -1<<53 || e.TS >= 1<<53 {
				return fmt.Errorf("tile set %s key %q: event time %d is outside what a Redis score holds exactly", e.TileSet, e.Key, e.TS)
			}
			seq := r.base + r.seq.Add(1)
			m := binary.BigEndian.AppendUint64(make([]byte, 0, 25), uint64(e.TS)^(1<<63))
			m = binary.BigEndian.AppendUint64(m, seq)
			m = append(m, eventValue(e.Value, e.Valid)...)
			p.ZAdd(ctx, r.eventsKey(e.TileSet, e.Key), redis.Z{Score: float64(e.TS), Member: string(m)})
			p.SAdd(ctx, r.keysKey(e.TileSet), e.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append %d events to the Redis online store: %w", len(events), err)
	}
	return nil
}

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

// Prune removes the events older than before from every key of the tile set.
func (r *Redis) Prune(ctx context.Context, tileSet string, before int64) (int, error) {
	var cursor uint64
	total := 0
	for {
		keys, next, err := r.c.SScan(ctx, r.keysKey(tileSet), cursor, "", 1000).Result()
		if err != nil {
			return total, fmt.Errorf("prune tile set %s in the Redis online store: %w", tileSet, err)
		}
		cmds := make([]*redis.IntCmd, len(keys))
		_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.ZRemRangeByScore(ctx, r.eventsKey(tileSet, k), "-inf", "("+strconv.FormatInt(before, 10))
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune tile set %s in the Redis online store: %w", tileSet, err)
		}
		for _, c := range cmds {
			total += int(c.Val())
		}
		if next == 0 {
			return total, nil
		}
		cursor = next
	}
}
