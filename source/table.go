package source

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Kind is the in-memory type of a column.
type Kind uint8

// The column kinds. Int64 and Timestamp share Column.Ints.
const (
	Int64     Kind = iota // signed 64-bit integer, in Column.Ints
	Float64               // 64-bit float, in Column.Floats
	String                // UTF-8 text, in Column.Strs
	Bool                  // boolean, in Column.Bools
	Timestamp             // microseconds since the Unix epoch, UTC, in Column.Ints
)

// String returns the kind's lower-case name, as used in messages and schemas.
func (k Kind) String() string {
	switch k {
	case Int64:
		return "int64"
	case Float64:
		return "float64"
	case String:
		return "string"
	case Bool:
		return "bool"
	case Timestamp:
		return "timestamp"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Column is one named, typed column of a Table. Only the slice matching Kind is
// set; its length is the table's row count.
type Column struct {
	Name   string
	Kind   Kind
	Ints   []int64 // Int64 and Timestamp
	Floats []float64
	Strs   []string
	Bools  []bool
	Valid  []bool // nil means every row is valid (non-null)
}

// Len returns the number of rows held by the column's data slice.
func (c *Column) Len() int {
	switch c.Kind {
	case Int64, Timestamp:
		return len(c.Ints)
	case Float64:
		return len(c.Floats)
	case String:
		return len(c.Strs)
	case Bool:
		return len(c.Bools)
	}
	return 0
}

// IsNull reports whether row i is null.
func (c *Column) IsNull(i int) bool { return c.Valid != nil && !c.Valid[i] }

// Text returns row i formatted as Read's Text role would give it, and false if
// the row is null.
func (c *Column) Text(i int) (string, bool) {
	if c.IsNull(i) {
		return "", false
	}
	switch c.Kind {
	case Int64:
		return strconv.FormatInt(c.Ints[i], 10), true
	case Float64:
		return string(appendFloat(nil, c.Floats[i])), true
	case String:
		return c.Strs[i], true
	case Bool:
		return strconv.FormatBool(c.Bools[i]), true
	case Timestamp:
		return string(appendTime(nil, c.Ints[i])), true
	}
	return "", false
}

// Table is a set of equally long columns.
type Table struct {
	Columns []*Column
	Rows    int

	pool *buffers // where Release returns the columns; nil when nowhere
}

// Release hands the memory of t's columns back to the Stream that decoded
// t, for its next files: the caller must hold on to nothing of t's columns
// afterwards (t is left without columns). It does nothing to a table that
// Read returned.
func (t *Table) Release() {
	if t.pool != nil {
		t.pool.put(t)
		t.pool = nil
	}
}

// Column returns the column called name, or nil if the table has none.
func (t *Table) Column(name string) *Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Role says how Read converts a requested column.
type Role uint8

// The roles a requested column can be read in.
const (
	// AsIs keeps the column's native kind. CSV columns are String (an empty
	// field is null).
	AsIs Role = iota
	// Key reads a grouping or entity key: Int64 if the file's column is
	// integral (CSV: if every value parses as an int64), else String. A null or
	// empty key is an error.
	Key
	// Time reads an event or input time as Timestamp. Parquet TIMESTAMP
	// (millis, micros, nanos; adjusted to UTC or not, read as UTC), DATE and
	// INT96 columns are accepted; a plain integer column is not. Text (CSV, or a
	// Parquet string column) must be RFC 3339 with or without fractional seconds
	// and offset (no offset means UTC), "2006-01-02 15:04:05[.ffffff]" or
	// "2006-01-02". A null, empty or unparsable time is an error.
	Time
	// Value reads a numeric value as Float64 (integers converted). Nulls are
	// allowed; NaN, Inf and non-numeric values are errors.
	Value
	// Text reads any column as String, formatted as Write's CSV output formats
	// it. Nulls stay null.
	Text
)

// String returns the role's name.
func (r Role) String() string {
	switch r {
	case AsIs:
		return "as-is"
	case Key:
		return "key"
	case Time:
		return "time"
	case Value:
		return "value"
	case Text:
		return "text"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Request names one column to read and the role to read it in.
type Request struct {
	Name string
	Role Role
}

// Stats counts what reads did. Every Read adds to it; it is safe for
// concurrent use.
type Stats struct {
	Files atomic.Int64 // files read
	Rows  atomic.Int64 // rows read
	Bytes atomic.Int64 // bytes of file data read: column chunks for Parquet, the whole file for CSV
}

// Options tunes Read.
type Options struct {
	Stats *Stats // may be nil
	// Time, when set, skips files that hold no row in its range (see
	// TimeRange); nil reads every file.
	Time *TimeRange
}

// ColumnInfo describes one column of a file, as Schema reports it.
type ColumnInfo struct {
	Name string
	Kind Kind
}

// timeLayout formats Timestamp values in CSV output and in the Text role:
// RFC 3339 with microseconds, always UTC.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

func appendTime(b []byte, micros int64) []byte {
	return time.UnixMicro(micros).UTC().AppendFormat(b, timeLayout)
}

// appendFloat appends the shortest representation of f that parses back to
// the same float: plain decimal notation for magnitudes in [1e-6, 1e21),
// exponent notation outside it.
func appendFloat(b []byte, f float64) []byte {
	a := f
	if a < 0 {
		a = -a
	}
	if a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'e', -1, 64)
}
