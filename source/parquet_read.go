package source

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tessera-fe/tessera/internal/hugepage"
)

// errCorrupt marks structural problems found while decoding a Parquet file.
var errCorrupt = errors.New("corrupt Parquet data")

// conversion turns a column's stored integers into the kind Read gives it.
type conversion uint8

const (
	convNone    conversion = iota
	convMillis             // TIMESTAMP(MILLIS) to micros
	convNanos              // TIMESTAMP(NANOS) to micros
	convDate               // DATE (days) to micros
	convUint32             // INT32 holding an unsigned value
	convDecimal            // DECIMAL in INT32/INT64: scaled integer to float
	convInt96              // legacy INT96 timestamps
)

// parquetType says how a Parquet leaf column is read natively.
type parquetType struct {
	kind  Kind
	conv  conversion
	scale int32 // decimal scale, for convDecimal
}

// typeOf maps a Parquet leaf column's physical and logical type to a Kind.
func typeOf(col *parquet.Column) (parquetType, error) {
	typ := col.Type()
	var lv format.LogicalTypeValue
	if lt := typ.LogicalType(); lt != nil {
		lv = lt.Value
	}
	var ct deprecated.ConvertedType = -1
	if c := typ.ConvertedType(); c != nil {
		ct = *c
	}
	if v, ok := lv.(*format.IntType); ok {
		w := v.BitWidth
		if (w != 8 && w != 16 && w != 32 && w != 64) || (w == 64) != (typ.Kind() == parquet.Int64) {
			return parquetType{}, fmt.Errorf("%w: column %q has integer type %s", errCorrupt, col.Name(), typ)
		}
	}
	unsupported := fmt.Errorf("column %q has Parquet type %s, which cannot be read; convert it to an integer, floating point, string, boolean or timestamp column", col.Name(), typ)
	switch typ.Kind() {
	case parquet.Boolean:
		return parquetType{kind: Bool}, nil
	case parquet.Int32:
		switch v := lv.(type) {
		case *format.DateType:
			return parquetType{kind: Timestamp, conv: convDate}, nil
		case *format.IntType:
			if !v.IsSigned {
				return parquetType{kind: Int64, conv: convUint32}, nil
			}
		case *format.DecimalType:
			return parquetType{kind: Float64, conv: convDecimal, scale: v.Scale}, nil
		}
		switch ct {
		case deprecated.Date:
			return parquetType{kind: Timestamp, conv: convDate}, nil
		case deprecated.Uint32:
			return parquetType{kind: Int64, conv: convUint32}, nil
		}
		return parquetType{kind: Int64}, nil
	case parquet.Int64:
		switch v := lv.(type) {
		case *format.TimestampType:
			switch v.Unit.Value.(type) {
			case *format.MilliSeconds:
				return parquetType{kind: Timestamp, conv: convMillis}, nil
			case *format.NanoSeconds:
				return parquetType{kind: Timestamp, conv: convNanos}, nil
			}
			return parquetType{kind: Timestamp}, nil
		case *format.DecimalType:
			return parquetType{kind: Float64, conv: convDecimal, scale: v.Scale}, nil
		}
		switch ct {
		case deprecated.TimestampMillis:
			return parquetType{kind: Timestamp, conv: convMillis}, nil
		case deprecated.TimestampMicros:
			return parquetType{kind: Timestamp}, nil
		}
		return parquetType{kind: Int64}, nil
	case parquet.Int96:
		return parquetType{kind: Timestamp, conv: convInt96}, nil
	case parquet.Float, parquet.Double:
		return parquetType{kind: Float64}, nil
	case parquet.ByteArray:
		if _, ok := lv.(*format.DecimalType); ok || ct == deprecated.Decimal {
			return parquetType{}, unsupported
		}
		return parquetType{kind: String}, nil
	}
	return parquetType{}, unsupported
}

// topColumns lists the top-level column names of a Parquet file.
func topColumns(pf *parquet.File) []string {
	var names []string
	for _, c := range pf.Root().Columns() {
		names = append(names, c.Name())
	}
	return names
}

// groups is a run [lo, hi) of a Parquet file's row groups, whose first row
// is the file's row row0 (0-based); the zero value is every row group.
type groups struct {
	lo, hi int
	row0   int64
}

// all reports whether g is the whole file.
func (g groups) all() bool { return g.hi == 0 }

// readParquet reads the requested columns of the row groups g of one
// Parquet file. It returns the table and the compressed bytes of the
// column chunks read.
func readParquet(name string, req []Request, bufs *buffers, g groups) (t *Table, nbytes int64, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", name, err)
	}
	defer func() {
		// The decoder trusts offsets and sizes from the file; a corrupt file
		// must become an error, not a crash.
		if r := recover(); r != nil {
			t, nbytes, err = nil, 0, fmt.Errorf("read %s: corrupt Parquet file: %v", name, r)
		}
	}()
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	rows := pf.NumRows()
	var groupRows int64
	for _, rg := range pf.RowGroups() {
		groupRows += rg.NumRows()
	}
	if rows != groupRows || rows < 0 || rows > math.MaxInt32*4 {
		return nil, 0, fmt.Errorf("read %s: corrupt Parquet file: footer says %d rows but its row groups hold %d", name, rows, groupRows)
	}
	if rows == 0 {
		return nil, 0, fmt.Errorf("read %s: the file has no rows; remove it or give a file with events", name)
	}
	rgs := pf.RowGroups()
	if !g.all() {
		if g.lo < 0 || g.hi > len(rgs) || g.lo >= g.hi {
			return nil, 0, fmt.Errorf("read %s: row groups %d to %d of %d: the file changed while it was read", name, g.lo, g.hi, len(rgs))
		}
		rgs = rgs[g.lo:g.hi]
		rows = 0
		for _, rg := range rgs {
			rows += rg.NumRows()
		}
	}
	mds := pf.Metadata().RowGroups
	if len(mds) != len(pf.RowGroups()) {
		return nil, 0, fmt.Errorf("read %s: corrupt Parquet file: the footer lists %d row groups but holds %d", name, len(pf.RowGroups()), len(mds))
	}
	mds = mds[g.lo : g.lo+len(rgs)]
	if req == nil {
		for _, n := range topColumns(pf) {
			req = append(req, Request{Name: n, Role: AsIs})
		}
	}
	cols := make([]*parquet.Column, len(req))
	for i, r := range req {
		c := pf.Root().Column(r.Name)
		if c == nil {
			return nil, 0, fmt.Errorf("read %s: no column %q; the columns present are: %s", name, r.Name, strings.Join(topColumns(pf), ", "))
		}
		if !c.Leaf() || c.Repeated() || c.MaxDefinitionLevel() > 1 {
			return nil, 0, fmt.Errorf("read %s: column %q is nested or repeated (%s); only flat columns can be read", name, r.Name, c.Type())
		}
		cols[i] = c
		// The footer has no checksum: check that the schema and the column
		// chunks agree, so that a damaged footer is not decoded as other data.
		idx := c.Index()
		for _, rg := range mds {
			if idx < 0 || idx >= len(rg.Columns) {
				return nil, 0, fmt.Errorf("read %s: corrupt Parquet file: row group lacks column %q", name, r.Name)
			}
			md := &rg.Columns[idx].MetaData
			if md.Type != format.Type(c.Type().Kind()) {
				return nil, 0, fmt.Errorf("read %s: corrupt Parquet file: column %q is %s in the schema but %s in its column chunk", name, r.Name, c.Type(), md.Type)
			}
			nbytes += md.TotalCompressedSize
		}
	}

	t = &Table{Rows: int(rows), Columns: make([]*Column, len(req))}
	errs := make([]error, len(req))
	var wg sync.WaitGroup
	for i := range req {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("read %s: column %q: corrupt Parquet file: %v", name, req[i].Name, r)
				}
			}()
			chunks := make([]parquet.ColumnChunk, len(rgs))
			for j, rg := range rgs {
				chunks[j] = rg.ColumnChunks()[cols[i].Index()]
			}
			c, err := readParquetColumn(cols[i], chunks, int(rows), bufs)
			if err != nil {
				errs[i] = fmt.Errorf("read %s: column %q: %w", name, req[i].Name, err)
				return
			}
			t.Columns[i], errs[i] = applyRole(name, c, req[i].Role, func(r int) string { return parquetRow(int(g.row0) + r) })
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, 0, err
		}
	}
	return t, nbytes, nil
}

// columnReader decodes the pages of one column chunk sequence into a Column.
type columnReader struct {
	pt     parquetType
	phys   parquet.Kind
	maxDef byte
	rows   int
	pos    int
	col    *Column

	lastDict parquet.Dictionary // dictionary whose strings are in dictStrs
	dictStrs []string
	bufs     *buffers          // memory to decode into; nil: fresh
	written  hugepage.Requests // withdrawn once the column is decoded (see fresh)
}

// readParquetColumn reads every page of col's chunks, rows in all, into a
// column of its native kind, in memory from bufs where it has some.
func readParquetColumn(col *parquet.Column, chunks []parquet.ColumnChunk, rows int, bufs *buffers) (*Column, error) {
	pt, err := typeOf(col)
	if err != nil {
		return nil, err
	}
	r := &columnReader{
		pt:     pt,
		phys:   col.Type().Kind(),
		maxDef: byte(col.MaxDefinitionLevel()),
		rows:   rows,
		col:    &Column{Name: col.Name(), Kind: pt.kind},
		bufs:   bufs,
	}
	switch {
	case r.phys == parquet.Float || r.phys == parquet.Double:
		r.col.Floats = bufs.float64s(rows, &r.written)
	case r.phys == parquet.ByteArray:
		r.col.Strs = make([]string, rows)
	case r.phys == parquet.Boolean:
		r.col.Bools = bufs.bools(rows, &r.written)
	default:
		r.col.Ints = bufs.int64s(rows, &r.written)
	}
	defer r.written.Written()
	for _, cc := range chunks {
		if err := r.chunk(cc); err != nil {
			return nil, err
		}
	}
	if r.pos != rows {
		return nil, fmt.Errorf("%w: the column has %d values but the file says %d rows", errCorrupt, r.pos, rows)
	}
	r.finish()
	return r.col, nil
}

// chunk decodes the pages of one column chunk at r.pos.
func (r *columnReader) chunk(cc parquet.ColumnChunk) error {
	pages := cc.Pages()
	defer pages.Close()
	for {
		page, err := pages.ReadPage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read page: %w", err)
		}
		err = r.page(page)
		parquet.Release(page)
		if err != nil {
			return err
		}
	}
}

// page decodes one data page at r.pos.
func (r *columnReader) page(p parquet.Page) error {
	n := int(p.NumRows())
	defs := p.DefinitionLevels()
	if r.maxDef > 0 && len(defs) != n {
		return fmt.Errorf("%w: page has %d definition levels for %d rows", errCorrupt, len(defs), n)
	}
	if n < 0 || r.pos+n > r.rows {
		return fmt.Errorf("%w: pages hold more values than the file's %d rows", errCorrupt, r.rows)
	}
	nonNull := n
	if r.maxDef > 0 {
		nonNull = 0
		for _, d := range defs {
			if d == r.maxDef {
				nonNull++
			}
		}
	}
	lo, hi := r.pos, r.pos+nonNull
	if err := r.decode(p, lo, hi); err != nil {
		return err
	}
	if nonNull < n {
		r.expandNulls(defs, lo, n, nonNull)
	} else if r.col.Valid != nil {
		fillTrue(r.col.Valid[lo : lo+n])
	}
	r.pos += n
	return nil
}

// decode writes the page's non-null values to rows [lo, hi).
func (r *columnReader) decode(p parquet.Page, lo, hi int) error {
	data := p.Data()
	dict := p.Dictionary()
	var idx []int32
	if dict != nil {
		idx = data.Int32()
		if len(idx) < hi-lo {
			return fmt.Errorf("%w: page has %d dictionary indexes for %d values", errCorrupt, len(idx), hi-lo)
		}
		idx = idx[:hi-lo]
		data = dict.Page().Data()
	}
	c := r.col
	switch r.phys {
	case parquet.Int64:
		if idx == nil {
			return copyAll(c.Ints[lo:hi], data.Int64())
		}
		return fill(c.Ints[lo:hi], data.Int64(), idx, func(v int64) int64 { return v })
	case parquet.Int32:
		if r.pt.conv == convUint32 {
			return fill(c.Ints[lo:hi], data.Int32(), idx, func(v int32) int64 { return int64(uint32(v)) })
		}
		return fill(c.Ints[lo:hi], data.Int32(), idx, func(v int32) int64 { return int64(v) })
	case parquet.Double:
		if idx == nil {
			return copyAll(c.Floats[lo:hi], data.Double())
		}
		return fill(c.Floats[lo:hi], data.Double(), idx, func(v float64) float64 { return v })
	case parquet.Float:
		return fill(c.Floats[lo:hi], data.Float(), idx, func(v float32) float64 { return float64(v) })
	case parquet.Int96:
		return fill(c.Ints[lo:hi], data.Int96(), idx, int96Micros)
	case parquet.Boolean:
		if dict != nil {
			return fmt.Errorf("%w: dictionary-encoded booleans", errCorrupt)
		}
		bits := data.Boolean()
		if len(bits)*8 < hi-lo {
			return fmt.Errorf("%w: page has %d boolean bits for %d values", errCorrupt, len(bits)*8, hi-lo)
		}
		out := c.Bools[lo:hi]
		for i := range out {
			out[i] = bits[i>>3]>>(i&7)&1 != 0
		}
		return nil
	case parquet.ByteArray:
		if dict != nil {
			if dict != r.lastDict {
				strs, err := byteArrayStrings(&data)
				if err != nil {
					return err
				}
				r.lastDict, r.dictStrs = dict, strs
			}
			return fill(c.Strs[lo:hi], r.dictStrs, idx, func(s string) string { return s })
		}
		strs, err := byteArrayStrings(&data)
		if err != nil {
			return err
		}
		if len(strs) < hi-lo {
			return fmt.Errorf("%w: page has %d strings for %d values", errCorrupt, len(strs), hi-lo)
		}
		copy(c.Strs[lo:hi], strs)
		return nil
	}
	return fmt.Errorf("unsupported Parquet type %s", r.phys)
}

// copyAll stores src into dst as they are: what fill does without a
// dictionary or a conversion, at the speed of a memory copy (fill calls its
// conversion for each value).
func copyAll[T any](dst, src []T) error {
	if len(src) < len(dst) {
		return fmt.Errorf("%w: page has %d values, expected %d", errCorrupt, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}

// fill stores src (or src looked up through the dictionary indexes idx) into
// dst, converting each value with conv.
func fill[S, D any](dst []D, src []S, idx []int32, conv func(S) D) error {
	if idx != nil {
		for i, k := range idx {
			if uint(k) >= uint(len(src)) {
				return fmt.Errorf("%w: dictionary index %d out of range [0, %d)", errCorrupt, k, len(src))
			}
			dst[i] = conv(src[k])
		}
		return nil
	}
	if len(src) < len(dst) {
		return fmt.Errorf("%w: page has %d values, expected %d", errCorrupt, len(src), len(dst))
	}
	for i := range dst {
		dst[i] = conv(src[i])
	}
	return nil
}

// byteArrayStrings turns a page of byte arrays into strings sharing one
// allocation.
func byteArrayStrings(data *encoding.Values) ([]string, error) {
	b, offsets := data.ByteArray()
	if len(offsets) == 0 {
		return nil, nil
	}
	all := string(b)
	strs := make([]string, len(offsets)-1)
	for i := range strs {
		j, k := offsets[i], offsets[i+1]
		if j > k || int(k) > len(all) {
			return nil, fmt.Errorf("%w: byte array offsets out of range", errCorrupt)
		}
		strs[i] = all[j:k]
	}
	return strs, nil
}

// int96Micros converts a legacy INT96 timestamp (nanoseconds of the day, then
// the Julian day) to microseconds since the epoch.
func int96Micros(v deprecated.Int96) int64 {
	const julianEpoch = 2440588
	nanos := int64(uint64(v[1])<<32 | uint64(v[0]))
	return (int64(v[2])-julianEpoch)*86_400_000_000 + nanos/1000
}

// expandNulls spreads the nonNull values packed at rows [lo, lo+nonNull) over
// the page's n rows, following the definition levels, and marks nulls.
func (r *columnReader) expandNulls(defs []byte, lo, n, nonNull int) {
	c := r.col
	if c.Valid == nil {
		c.Valid = r.bufs.bools(r.rows, &r.written)
		fillTrue(c.Valid[:lo])
	}
	valid := c.Valid[lo : lo+n]
	for i, d := range defs {
		valid[i] = d == r.maxDef
	}
	switch {
	case c.Ints != nil:
		spread(c.Ints[lo:lo+n], valid, nonNull)
	case c.Floats != nil:
		spread(c.Floats[lo:lo+n], valid, nonNull)
	case c.Strs != nil:
		spread(c.Strs[lo:lo+n], valid, nonNull)
	case c.Bools != nil:
		spread(c.Bools[lo:lo+n], valid, nonNull)
	}
}

// spread moves the first k values of s to the positions where valid is true,
// working backwards so that nothing is overwritten before it moves, and zeroes
// the null positions.
func spread[T any](s []T, valid []bool, k int) {
	var zero T
	j := k - 1
	for i := len(s) - 1; i >= 0; i-- {
		if valid[i] {
			s[i] = s[j]
			j--
		} else {
			s[i] = zero
		}
	}
}

// finish applies the unit conversions that follow decoding.
func (r *columnReader) finish() {
	c := r.col
	switch r.pt.conv {
	case convMillis:
		for i := range c.Ints {
			c.Ints[i] *= 1000
		}
	case convNanos:
		for i, v := range c.Ints {
			q := v / 1000
			if v%1000 < 0 {
				q--
			}
			c.Ints[i] = q
		}
	case convDate:
		for i := range c.Ints {
			c.Ints[i] *= 86_400_000_000
		}
	case convDecimal:
		scale := math.Pow10(int(r.pt.scale))
		c.Floats = make([]float64, len(c.Ints))
		for i, v := range c.Ints {
			c.Floats[i] = float64(v) / scale
		}
		c.Ints = nil
	}
}
