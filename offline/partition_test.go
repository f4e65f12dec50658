package offline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// TestSplitKeys: key partitions are contiguous ranges of keys in key order
// of about equal weight, spine rows and, for a materialized query, the
// tiles of the row groups that overlap the query's range, spread over the
// spine's keys within each group's key range. Ten heavy keys hold most of
// the spine rows and few tiles, the other keys most of the tiles: split by
// rows alone, one partition would hold nearly all of the tiles.
func TestSplitKeys(t *testing.T) {
	const keys, heavy, parts = 1000, 10, 4
	for _, str := range []bool{false, true} {
		name := func(k int) string { return fmt.Sprintf("k%04d", k) }
		text := func(k int) string {
			if str {
				return name(k)
			}
			return strconv.Itoa(k * 3)
		}
		d := tile.NewDict(str)
		var ids []int32
		// Keys arrive out of order: ids are not ranks.
		for i := range keys {
			k := (i * 7) % keys
			var id []int32
			if str {
				id = d.AddAll(&tile.Keys{String: true, Str: []string{name(k)}}, nil)
			} else {
				id = d.AddAll(&tile.Keys{Int: []int64{int64(k * 3)}}, nil)
			}
			rows := 1
			if k < heavy {
				rows = 1000
			}
			for range rows {
				ids = append(ids, id[0])
			}
		}
		ids = append(ids, -1, -1) // rows of unknown keys weigh nothing
		// Row groups of 10 keys each with 1000 tiles, but the heavy keys'
		// (10 tiles); and a row group outside the query's range, which
		// would put all the weight on key 0.
		m := &tilestore.Manifest{}
		var groups []tilestore.RowGroup
		for k := 0; k < keys; k += 10 {
			rows := int64(1000)
			if k < heavy {
				rows = 10
			}
			groups = append(groups, tilestore.RowGroup{MinKey: text(k), MaxKey: text(k + 9), Rows: rows, From: 0, To: 100})
		}
		m.Objects = []tilestore.Object{
			{Rows: 99010, From: 0, To: 100, MinKey: text(0), MaxKey: text(keys - 1), RowGroups: groups},
			{Rows: 1e9, From: 200, To: 300, MinKey: text(0), MaxKey: text(0)},
		}
		keyOf := func(id int32) string {
			if str {
				return d.StrKey(id)
			}
			return strconv.FormatInt(d.IntKey(id), 10)
		}
		index := func(id int32) int { // the key's place in key order
			if str {
				n, _ := strconv.Atoi(d.StrKey(id)[1:])
				return n
			}
			return int(d.IntKey(id) / 3)
		}
		for _, withTiles := range []bool{false, true} {
			var mm *tilestore.Manifest
			if withTiles {
				mm = m
			}
			partOf := splitKeys(d, ids, parts, mm, 0, 100)
			// Contiguous, in key order.
			byKey := make([]int32, keys)
			for id := range keys {
				byKey[index(int32(id))] = int32(id)
			}
			for i := 1; i < keys; i++ {
				if partOf[byKey[i]] < partOf[byKey[i-1]] {
					t.Fatalf("string keys %v, tiles %v: key %s in partition %d after key %s in %d", str, withTiles,
						keyOf(byKey[i]), partOf[byKey[i]], keyOf(byKey[i-1]), partOf[byKey[i-1]])
				}
			}
			// Weights of each partition: rows, and tiles spread evenly.
			weight := make([]float64, parts)
			var total float64
			for _, id := range ids {
				if id >= 0 {
					weight[partOf[id]] += bytesPerSpineRow
					total += bytesPerSpineRow
				}
			}
			tiles := make([]float64, parts)
			for id := range keys {
				k := index(int32(id))
				per := 100.0
				if k < heavy {
					per = 1
				}
				if withTiles {
					weight[partOf[id]] += per * bytesPerTile
					total += per * bytesPerTile
				}
				tiles[partOf[id]] += per
			}
			// The heaviest key weighs 1000 rows: a partition may overshoot
			// its share by as much.
			most := float64(1000*bytesPerSpineRow + bytesPerTile)
			for p, w := range weight {
				if math.Abs(w-total/parts) > most {
					t.Fatalf("string keys %v, tiles %v: partition %d weighs %.0f, want %.0f ± %.0f (weights %v)", str, withTiles, p, w, total/parts, most, weight)
				}
			}
			if withTiles && slices.Max(tiles) > 0.4*99010 {
				t.Fatalf("string keys %v: a partition holds %.0f of 99010 tiles: %v", str, slices.Max(tiles), tiles)
			}
			if !withTiles && slices.Max(tiles) < 0.6*99010 {
				t.Fatalf("string keys %v: split by rows, the heaviest partition holds %.0f tiles; the test needs the skew", str, slices.Max(tiles))
			}
		}
	}
}

// TestAddTileWeights: each row group overlapping the range spreads its
// tiles over the spine's keys in its key range, inclusive of its last,
// however many other keys it holds (a partition decodes it whole); an
// object without row groups counts as one; groups and objects outside the
// range, and int key ranges that are not integers, count for nothing.
func TestAddTileWeights(t *testing.T) {
	for _, str := range []bool{false, true} {
		text := func(k int) string {
			if str {
				return fmt.Sprintf("k%03d", k+100) // ordered as the ints
			}
			return strconv.Itoa(k)
		}
		d := tile.NewDict(str)
		spine := []int{30, 10, 40, 20} // ids 0..3
		for _, k := range spine {
			if str {
				d.AddAll(&tile.Keys{String: true, Str: []string{text(k)}}, nil)
			} else {
				d.AddAll(&tile.Keys{Int: []int64{int64(k)}}, nil)
			}
		}
		in, out := tilestore.Range{From: 0, To: 100}, tilestore.Range{From: 500, To: 600}
		group := func(lo, hi int, rows int64, r tilestore.Range) tilestore.RowGroup {
			return tilestore.RowGroup{MinKey: text(lo), MaxKey: text(hi), Rows: rows, From: r.From, To: r.To}
		}
		m := &tilestore.Manifest{Objects: []tilestore.Object{
			{Rows: 2100, From: 0, To: 600, MinKey: text(5), MaxKey: text(40), RowGroups: []tilestore.RowGroup{
				group(5, 20, 100, in),                                 // keys 10 and 20: 50 each
				group(21, 29, 1000, in),                               // no spine key
				group(30, 40, 1000, out),                              // outside the range
				{MinKey: "x", MaxKey: "y", Rows: 5, From: 0, To: 100}, // not keys
			}},
			{Rows: 100, Keys: 3, From: 0, To: 100, MinKey: text(35), MaxKey: text(45)}, // key 40: 100
			{Rows: 2000, Keys: 2000, From: 0, To: 100, MinKey: text(-5), MaxKey: text(10), RowGroups: []tilestore.RowGroup{
				group(-5, 10, 1000, in), // a key per tile, key 10 alone in the spine: it gets all
			}},
			{Rows: 7000, From: 200, To: 300, MinKey: text(0), MaxKey: text(50)}, // outside the range
		}}
		if str {
			m.Objects[0].RowGroups[3].MinKey, m.Objects[0].RowGroups[3].MaxKey = "zz", "zz" // past every key
		}
		rank := d.Ranks()
		byRank := make([]int32, len(rank))
		for id, r := range rank {
			byRank[r] = int32(id)
		}
		weight := make([]float64, d.Len())
		addTileWeights(weight, byRank, d, m, tilestore.Range{From: 0, To: 100})
		want := map[int]float64{10: 1050, 20: 50, 30: 0, 40: 100}
		for id, k := range spine {
			if got := weight[id] / bytesPerTile; math.Abs(got-want[k]) > 1e-9 {
				t.Fatalf("string keys %v: key %d weighs %v tiles, want %v (weights %v)", str, k, got, want[k], weight)
			}
		}
	}
}
