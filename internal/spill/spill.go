// Package spill writes events to local disk in key partitions and reads one
// partition back at a time: the larger-than-memory path of backfills and
// offline queries. A record is a key id (an index into a dictionary the
// caller keeps in memory), a time and, optionally, a value; a partition
// reads back in the order it was written.
package spill

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/tessera-fe/tessera/tile"
)

// Records is one partition read back, columnar.
type Records struct {
	IDs    []int32
	TS     []int64
	Values []float64 // nil when the partitions were created without values
}

// Len returns the number of records.
func (r *Records) Len() int { return len(r.TS) }

// Events turns the records back into events, with keys from dict (the
// dictionary whose ids were spilled) and NaN values as nulls.
func (r *Records) Events(dict *tile.Dict) *tile.Events {
	ev := &tile.Events{Keys: tile.Keys{String: dict.String}, TS: r.TS, Values: r.Values}
	if dict.String {
		ev.Keys.Str = make([]string, len(r.IDs))
		for i, id := range r.IDs {
			ev.Keys.Str[i] = dict.StrKey(id)
		}
	} else {
		ev.Keys.Int = make([]int64, len(r.IDs))
		for i, id := range r.IDs {
			ev.Keys.Int[i] = dict.IntKey(id)
		}
	}
	for i, v := range r.Values {
		if math.IsNaN(v) {
			if ev.Valid == nil {
				ev.Valid = make([]bool, len(r.Values))
				for j := range ev.Valid {
					ev.Valid[j] = true
				}
			}
			ev.Valid[i] = false
		}
	}
	return ev
}

// Partitions is a set of spill files in a private temporary directory. It
// is not safe for concurrent use.
type Partitions struct {
	dir    string
	files  []*os.File
	bufs   [][]byte // pending records per partition
	rows   []int64
	values bool
}

// bufSize is each partition's write buffer.
const bufSize = 128 << 10

// Create makes parts empty partitions in a new directory under dir (the
// system temporary directory when dir is ""). values says whether records
// carry a value.
func Create(dir string, parts int, values bool) (*Partitions, error) {
	if parts < 1 {
		return nil, fmt.Errorf("spill: %d partitions; want at least 1", parts)
	}
	d, err := os.MkdirTemp(dir, "tessera-spill-")
	if err != nil {
		return nil, fmt.Errorf("spill: make a directory for spilled events (set TMPDIR to a disk with room): %w", err)
	}
	p := &Partitions{dir: d, files: make([]*os.File, parts), bufs: make([][]byte, parts), rows: make([]int64, parts), values: values}
	for i := range parts {
		f, err := os.Create(fmt.Sprintf("%s/part-%05d", d, i))
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("spill: %w", err)
		}
		p.files[i] = f
	}
	return p, nil
}

// Dir returns the directory holding the partitions.
func (p *Partitions) Dir() string { return p.dir }

// Len returns the number of partitions.
func (p *Partitions) Len() int { return len(p.files) }

// Rows returns the number of records added to partition part.
func (p *Partitions) Rows(part int) int64 { return p.rows[part] }

// recordSize is the bytes of one record.
func (p *Partitions) recordSize() int {
	if p.values {
		return 20
	}
	return 12
}

// Add appends one record to partition part. v is ignored without values; a
// NaN value reads back as NaN.
func (p *Partitions) Add(part int, id int32, ts int64, v float64) error {
	b := p.bufs[part]
	if b == nil {
		b = make([]byte, 0, bufSize)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(id))
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	if p.values {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	p.bufs[part] = b
	p.rows[part]++
	if len(b) > bufSize-20 {
		return p.flush(part)
	}
	return nil
}

// flush writes partition part's pending records to its file.
func (p *Partitions) flush(part int) error {
	if len(p.bufs[part]) == 0 {
		return nil
	}
	if _, err := p.files[part].Write(p.bufs[part]); err != nil {
		return p.writeError(err)
	}
	p.bufs[part] = p.bufs[part][:0]
	return nil
}

// AddEvents adds each event i of ev whose id ids[i] is not negative and
// whose time is in [from, to) to partition part(ids[i]), null values as NaN.
func (p *Partitions) AddEvents(ev *tile.Events, ids []int32, part func(id int32) int, from, to int64) error {
	nan := math.NaN()
	for i, id := range ids {
		ts := ev.TS[i]
		if id < 0 || ts < from || ts >= to {
			continue
		}
		v := 0.0
		if ev.Values != nil {
			v = ev.Values[i]
			if ev.Valid != nil && !ev.Valid[i] {
				v = nan
			}
		}
		if err := p.Add(part(id), id, ts, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *Partitions) writeError(err error) error {
	return fmt.Errorf("spill events to %s (set TMPDIR to a disk with room): %w", p.dir, err)
}

// Read returns every record of partition part, in the order added. Adding
// to a partition after reading it is allowed.
func (p *Partitions) Read(part int) (Records, error) {
	if err := p.flush(part); err != nil {
		return Records{}, err
	}
	n := int(p.rows[part])
	r := Records{IDs: make([]int32, n), TS: make([]int64, n)}
	if p.values {
		r.Values = make([]float64, n)
	}
	size := p.recordSize()
	br := bufio.NewReaderSize(io.NewSectionReader(p.files[part], 0, int64(n*size)), bufSize)
	buf := make([]byte, (bufSize/size)*size)
	for i := 0; i < n; {
		m := min(n-i, len(buf)/size)
		chunk := buf[:m*size]
		if _, err := io.ReadFull(br, chunk); err != nil {
			return Records{}, fmt.Errorf("read spilled events %s: %w", p.files[part].Name(), err)
		}
		for j := range m {
			b := chunk[j*size:]
			r.IDs[i+j] = int32(binary.LittleEndian.Uint32(b))
			r.TS[i+j] = int64(binary.LittleEndian.Uint64(b[4:]))
			if p.values {
				r.Values[i+j] = math.Float64frombits(binary.LittleEndian.Uint64(b[12:]))
			}
		}
		i += m
	}
	return r, nil
}

// Close removes the partitions' files and directory.
func (p *Partitions) Close() error {
	var errs []error
	for _, f := range p.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	errs = append(errs, os.RemoveAll(p.dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove spilled events %s: %w", p.dir, err)
	}
	return nil
}
