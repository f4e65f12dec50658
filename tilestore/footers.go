package tilestore

import (
	"io"
	"sync"

	"github.com/parquet-go/parquet-go"
)

// footers keeps the parsed footers of the tile objects a store loaded last,
// for the next load of the same objects: parsing one (parquet-go decodes
// the metadata of every column chunk by reflection) took a twentieth of
// the CPU of a materialized query of the 1M sample, and its many small
// allocations made the collector run more often. Objects never change
// once written, and an entry is used only for an object of the same name
// and checksum in the same tile set, after its bytes were checked: a
// footer parsed from bytes of that checksum.
type footers struct {
	mu    sync.Mutex
	files map[string]*footer // by tile set and object name
	bytes int64              // footer bytes of the entries, for the bound
}

// maxFooterBytes bounds the footer bytes of the entries of footers (the
// parsed metadata takes a few times as much); an object whose footer
// would exceed it is parsed for its load alone. A variable for tests.
var maxFooterBytes int64 = 16 << 20

// footer is a parsed footer. Its file reads through r, which a load points
// at its copy of the object's bytes for as long as it decodes them: one
// load at a time (busy); another load of the object meanwhile parses the
// footer again.
type footer struct {
	sum   string // the object's checksum, which its bytes had
	f     *parquet.File
	r     *swapReader
	bytes int64
	busy  bool
}

// swapReader reads through whatever reader the load of the moment set.
type swapReader struct{ ra io.ReaderAt }

func (r *swapReader) ReadAt(p []byte, off int64) (int, error) { return r.ra.ReadAt(p, off) }

// openTileObject is openTileObject through the store's parsed footers; the
// object's free, which the caller calls once it has decoded it, gives the
// footer back.
func (s *Store) openTileObject(m *Manifest, o Object, ra io.ReaderAt, groups []bool) (*openObject, error) {
	key := m.TileSet + "/" + o.Name
	sum := o.sum().crc + o.sum().sha
	c := &s.footers
	c.mu.Lock()
	e := c.files[key]
	switch {
	case e != nil && e.sum == sum && !e.busy:
		e.busy = true
	case e == nil && o.Bytes-o.Footer > 0 && c.bytes+o.Bytes-o.Footer <= maxFooterBytes:
		// Parsed below; claimed meanwhile.
		e = &footer{sum: sum, r: &swapReader{}, bytes: o.Bytes - o.Footer, busy: true}
		if c.files == nil {
			c.files = map[string]*footer{}
		}
		c.files[key] = e
		c.bytes += e.bytes
	default:
		e = nil // in use, or no room: parse for this load alone
	}
	c.mu.Unlock()
	if e == nil {
		s.footersParsed.Add(1)
		return openTileObject(m, o, ra, groups)
	}
	e.r.ra = ra
	ob, err := s.claimed(m, o, e, ra, groups)
	if err != nil {
		e.r.ra = nil
		c.mu.Lock()
		if e.f == nil { // not parsed: forget it
			delete(c.files, key)
			c.bytes -= e.bytes
		}
		e.busy = false
		c.mu.Unlock()
		return nil, err
	}
	ob.free = func() {
		e.r.ra = nil
		c.mu.Lock()
		e.busy = false
		c.mu.Unlock()
	}
	return ob, nil
}

// claimed opens object o through footer e, which the caller holds,
// parsing it first if it is new.
func (s *Store) claimed(m *Manifest, o Object, e *footer, ra io.ReaderAt, groups []bool) (*openObject, error) {
	if e.f == nil {
		f, err := openParquet(e.r, o.Bytes)
		if err != nil {
			return nil, corrupt(m, o, "%v", err)
		}
		e.f = f
		s.footersParsed.Add(1)
	}
	return checkTileObject(m, o, e.f, ra, groups)
}
