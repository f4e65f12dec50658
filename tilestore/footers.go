package tilestore

import (
	"fmt"
	"io"
	"sync"

	"github.com/parquet-go/parquet-go"
)

// footers keeps the parsed footers of the tile objects a store loaded
// last, for the next load of the same objects: parsing one (parquet-go
// decodes the metadata of every column chunk by reflection) took a
// twentieth of the CPU of a materialized query of the 1M sample, and its
// many small allocations made the collector run more often. Objects never
// change once written, and an entry is used only for an object of the same
// name, size, checksums and footer offset in the same tile set, after its
// bytes were checked: a footer parsed from the same bytes. When a new
// footer would exceed the bound, the least recently used entries that no
// load holds make room.
type footers struct {
	mu    sync.Mutex
	files map[string]*footer // by tile set and object name
	bytes int64              // footer bytes of the entries, for the bound
	clock uint64             // counts uses, for the least recently used
}

// maxFooterBytes bounds the footer bytes of the entries of footers (the
// parsed metadata takes a few times as much); an object whose footer
// alone exceeds it is parsed for its load alone. A variable for tests.
var maxFooterBytes int64 = 16 << 20

// footer is a parsed footer. Its file reads through r, which a load points
// at its copy of the object's bytes for as long as it decodes them: one
// load at a time (busy); another load of the object meanwhile parses the
// footer again.
type footer struct {
	sum   string // what identifies the object's bytes
	f     *parquet.File
	r     *swapReader
	bytes int64
	busy  bool
	used  uint64 // the clock at its last use
}

// makeRoom drops the entry of key, if any (it holds another object's
// footer, and no load holds it), then the least recently used entries no
// load holds until a footer of size bytes fits; it reports false, dropping
// none but key's, when that cannot be done. The caller holds c.mu.
func (c *footers) makeRoom(key string, size int64) bool {
	if e := c.files[key]; e != nil {
		delete(c.files, key)
		c.bytes -= e.bytes
	}
	if size > maxFooterBytes {
		return false
	}
	idle := int64(0)
	for _, e := range c.files {
		if !e.busy {
			idle += e.bytes
		}
	}
	if c.bytes-idle+size > maxFooterBytes {
		return false
	}
	for c.bytes+size > maxFooterBytes {
		var oldest string
		for k, e := range c.files {
			if !e.busy && (oldest == "" || e.used < c.files[oldest].used) {
				oldest = k
			}
		}
		c.bytes -= c.files[oldest].bytes
		delete(c.files, oldest)
	}
	return true
}

// swapReader reads through whatever reader the load of the moment set.
type swapReader struct{ ra io.ReaderAt }

func (r *swapReader) ReadAt(p []byte, off int64) (int, error) { return r.ra.ReadAt(p, off) }

// openTileObject is openTileObject through the store's parsed footers; the
// object's free, which the caller calls once it has decoded it, gives the
// footer back.
func (s *Store) openTileObject(m *Manifest, o Object, ra io.ReaderAt, groups []bool) (*openObject, error) {
	key := m.TileSet + "/" + o.Name
	sum := fmt.Sprintf("%s %s %s %s %d %d", o.CRC32C, o.SHA256, o.FooterCRC32C, o.FooterSHA256, o.Footer, o.Bytes)
	size := o.Bytes - o.Footer
	c := &s.footers
	c.mu.Lock()
	c.clock++
	e := c.files[key]
	switch {
	case e != nil && e.sum == sum && !e.busy:
		e.busy, e.used = true, c.clock
	case (e == nil || !e.busy) && o.Footer > 0 && size > 0 && c.makeRoom(key, size):
		// Parsed below; claimed meanwhile.
		e = &footer{sum: sum, r: &swapReader{}, bytes: size, busy: true, used: c.clock}
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
