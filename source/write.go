package source

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/tessera-fe/tessera/internal/snappy"
)

// rowGroupRows is how many rows Write puts in one Parquet row group (a
// variable for tests).
var rowGroupRows = 1 << 20

// writeChunk is how many values Write hands the Parquet column writer at once.
const writeChunk = 1 << 14

// Write writes t to path, choosing the format by extension: .parquet
// (snappy-compressed; Timestamp as TIMESTAMP(MICROS, UTC); columns with a
// Valid slice are optional, the others required) or .csv (a header row;
// Timestamp as RFC 3339 with microseconds in UTC; null as an empty field;
// floats in shortest round-trip form). Column order is kept. The table goes
// to a temporary file in the same directory that is renamed over path, so a
// failed write leaves no partial file.
func Write(path string, t *Table) (err error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".parquet" && ext != ".csv" {
		return fmt.Errorf("write %s: unsupported file type %q; use a .parquet or .csv file name", path, filepath.Ext(path))
	}
	if err := check(t); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if ext == ".parquet" {
		err = writeParquet(tmp, t)
	} else {
		err = writeCSV(tmp, t)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: publish: %w", path, err)
	}
	return nil
}

// check verifies that every column holds t.Rows values of its kind.
func check(t *Table) error {
	if t == nil {
		return errors.New("nil table")
	}
	seen := make(map[string]bool, len(t.Columns))
	for _, c := range t.Columns {
		if c == nil {
			return errors.New("nil column")
		}
		if seen[c.Name] {
			return fmt.Errorf("column %q appears twice; column names must be unique", c.Name)
		}
		seen[c.Name] = true
		if c.Kind > Timestamp {
			return fmt.Errorf("column %q has unknown kind %d", c.Name, c.Kind)
		}
		if c.Len() != t.Rows {
			return fmt.Errorf("column %q holds %d %s values but the table has %d rows", c.Name, c.Len(), c.Kind, t.Rows)
		}
		if c.Valid != nil && len(c.Valid) != t.Rows {
			return fmt.Errorf("column %q has %d validity flags but the table has %d rows", c.Name, len(c.Valid), t.Rows)
		}
	}
	return nil
}

func writeCSV(f *os.File, t *Table) error {
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	rec := make([]string, len(t.Columns))
	for j, c := range t.Columns {
		rec[j] = c.Name
	}
	if err := w.Write(rec); err != nil {
		return err
	}
	// One buffer per row holds every formatted field; rec points into it.
	var buf []byte
	ends := make([]int, len(t.Columns))
	for i := 0; i < t.Rows; i++ {
		buf = buf[:0]
		for j, c := range t.Columns {
			if !c.IsNull(i) {
				buf = appendText(buf, c, i)
			}
			ends[j] = len(buf)
		}
		start := 0
		for j, c := range t.Columns {
			if c.Kind == String {
				rec[j] = c.Strs[i]
				if c.IsNull(i) {
					rec[j] = ""
				}
			} else {
				rec[j] = unsafe.String(unsafe.SliceData(buf[start:]), ends[j]-start)
			}
			start = ends[j]
		}
		if len(rec) == 1 && rec[0] == "" {
			// A lone empty field would make an empty line, which readers
			// skip; quote it so the row survives.
			w.Flush()
			if _, err := bw.WriteString("\"\"\n"); err != nil {
				return err
			}
			continue
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// field is a named schema node.
type field struct {
	parquet.Node
	name string
}

func (f field) Name() string                           { return f.name }
func (f field) Value(base reflect.Value) reflect.Value { return reflect.Value{} }

// orderedGroup is a Parquet group node that keeps its fields in the order
// given (parquet.Group sorts them by name).
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return "message" }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return reflect.TypeOf(struct{}{}) }

func nodeOf(c *Column) parquet.Node {
	var n parquet.Node
	switch c.Kind {
	case Int64:
		n = parquet.Int(64)
	case Float64:
		n = parquet.Leaf(parquet.DoubleType)
	case String:
		n = parquet.Encoded(parquet.String(), &parquet.RLEDictionary)
	case Bool:
		n = parquet.Leaf(parquet.BooleanType)
	case Timestamp:
		n = parquet.TimestampAdjusted(parquet.Microsecond, true)
	}
	if c.Valid != nil {
		n = parquet.Optional(n)
	}
	return n
}

func writeParquet(f *os.File, t *Table) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("encode Parquet: %v", r)
		}
	}()
	group := make(orderedGroup, len(t.Columns))
	for j, c := range t.Columns {
		group[j] = field{Node: nodeOf(c), name: c.Name}
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := parquet.NewWriter(bw,
		parquet.NewSchema("table", group),
		parquet.Compression(snappy.Codec{}),
	)
	// Columns encode and compress independently: one goroutine per column,
	// at most one per core, each with its own value buffer.
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for lo := 0; lo < t.Rows; lo += rowGroupRows {
		hi := min(lo+rowGroupRows, t.Rows)
		writers := w.ColumnWriters()
		errs := make([]error, len(t.Columns))
		var wg sync.WaitGroup
		for j, c := range t.Columns {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				defer func() {
					if r := recover(); r != nil {
						errs[j] = fmt.Errorf("encode column %q: %v", c.Name, r)
					}
				}()
				vals := make([]parquet.Value, writeChunk)
				for clo := lo; clo < hi; clo += writeChunk {
					chi := min(clo+writeChunk, hi)
					v := vals[:chi-clo]
					fillValues(v, c, clo, j)
					if _, err := writers[j].WriteRowValues(v); err != nil {
						errs[j] = fmt.Errorf("encode column %q: %w", c.Name, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("flush row group: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("close Parquet writer: %w", err)
	}
	return bw.Flush()
}

// fillValues sets v to the Parquet values of rows [lo, lo+len(v)) of c, the
// table's column j.
func fillValues(v []parquet.Value, c *Column, lo, j int) {
	n := len(v)
	var valid []bool
	if c.Valid != nil {
		valid = c.Valid[lo : lo+n]
	}
	// A loop per kind: a switch per value was most of this function's
	// time, which was a third of a write's (BenchmarkWriteParquet).
	for k := range v {
		if valid != nil && !valid[k] {
			v[k] = parquet.Value{}
			v[k].SetColumnIndex(j)
		}
	}
	switch c.Kind {
	case Int64, Timestamp:
		for k, x := range c.Ints[lo : lo+n] {
			if valid == nil || valid[k] {
				v[k] = parquet.Int64Value(x)
			}
		}
	case Float64:
		for k, x := range c.Floats[lo : lo+n] {
			if valid == nil || valid[k] {
				v[k] = parquet.DoubleValue(x)
			}
		}
	case String:
		for k, x := range c.Strs[lo : lo+n] {
			if valid == nil || valid[k] {
				v[k] = parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(x), len(x)))
			}
		}
	case Bool:
		for k, x := range c.Bools[lo : lo+n] {
			if valid == nil || valid[k] {
				v[k] = parquet.BooleanValue(x)
			}
		}
	}
	def := 0
	if valid != nil {
		def = 1
	}
	for k := range v {
		if valid == nil || valid[k] {
			v[k].SetDefinitionLevel(def)
			v[k].SetColumnIndex(j)
		}
	}
}
