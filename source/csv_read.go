package source

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// maxInterned bounds the distinct strings a CSV column shares; past it, each
// new value gets its own copy.
const maxInterned = 1 << 20

// csvColumn accumulates one requested CSV column.
type csvColumn struct {
	req   Request
	field int // index in the record
	col   *Column

	// Key columns: raw values until the end decides between Int64 and String.
	raw    []string
	allInt bool

	intern map[string]string
}

// add stores the field of data row i; pos locates it for messages.
func (c *csvColumn) add(s string, i int, pos func() string, file string) error {
	col := c.col
	switch c.req.Role {
	case AsIs, Text:
		if s == "" {
			if col.Valid == nil {
				col.Valid = make([]bool, i, max(i+1, cap(col.Strs)))
				fillTrue(col.Valid)
			}
			col.Strs = append(col.Strs, "")
			col.Valid = append(col.Valid, false)
			return nil
		}
		col.Strs = append(col.Strs, c.share(s))
	case Key:
		if s == "" {
			return fmt.Errorf("read %s: %s, column %q: the key is empty; every row needs a key", file, pos(), c.req.Name)
		}
		c.raw = append(c.raw, s)
		if c.allInt {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				c.allInt = false
				col.Ints = nil
			} else {
				col.Ints = append(col.Ints, v)
			}
		}
	case Time:
		if s == "" {
			return fmt.Errorf("read %s: %s, column %q: the time is empty; every row needs a time", file, pos(), c.req.Name)
		}
		t, ok := parseTime(s)
		if !ok {
			return fmt.Errorf("read %s: %s, column %q: cannot read %q as a time; accepted formats: %s", file, pos(), c.req.Name, s, acceptedTimes)
		}
		col.Ints = append(col.Ints, t)
	case Value:
		if s == "" {
			if col.Valid == nil {
				col.Valid = make([]bool, i, max(i+1, cap(col.Floats)))
				fillTrue(col.Valid)
			}
			col.Floats = append(col.Floats, 0)
			col.Valid = append(col.Valid, false)
			return nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("read %s: %s, column %q: %q is not a number; a value column must be numeric", file, pos(), c.req.Name, s)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("read %s: %s, column %q: value %q is not finite; values must be finite numbers (leave the field empty for a missing value)", file, pos(), c.req.Name, s)
		}
		col.Floats = append(col.Floats, f)
	default:
		return fmt.Errorf("read %s: column %q: unknown role %d", file, c.req.Name, c.req.Role)
	}
	if col.Valid != nil {
		col.Valid = append(col.Valid, true)
	}
	return nil
}

// share returns s or an equal string already kept, so that repeated values
// (keys, categories) are stored once and do not pin the CSV line they came
// from.
func (c *csvColumn) share(s string) string {
	if v, ok := c.intern[s]; ok {
		return v
	}
	v := strings.Clone(s)
	if len(c.intern) < maxInterned {
		c.intern[v] = v
	}
	return v
}

// finish settles the column's kind once every row is in.
func (c *csvColumn) finish() {
	if c.req.Role != Key {
		return
	}
	if c.allInt {
		c.col.Kind = Int64
	} else {
		c.col.Kind = String
		c.col.Ints = nil
		c.col.Strs = make([]string, len(c.raw))
		for i, s := range c.raw {
			c.col.Strs[i] = c.share(s)
		}
	}
	c.raw = nil
	c.intern = nil
}

// openCSV opens a CSV file and reads its header. A UTF-8 byte order mark is
// dropped.
func openCSV(name string) (*os.File, *csv.Reader, []string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		f.Close()
		return nil, nil, nil, fmt.Errorf("read %s: the file has no rows, not even a header line naming the columns", name)
	}
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	return f, r, header, nil
}

// readCSV reads the requested columns of one CSV file. It returns the table
// and the file's size.
func readCSV(name string, req []Request) (*Table, int64, error) {
	f, r, header, err := openCSV(name)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	if req == nil {
		for _, h := range header {
			req = append(req, Request{Name: h, Role: AsIs})
		}
	}
	// Preallocate for about 16 bytes per field; appends grow past it.
	estimate := int(min(size/int64(16*max(1, len(header))), 1<<26))
	cols := make([]*csvColumn, len(req))
	for i, q := range req {
		field := -1
		for j, h := range header {
			if h == q.Name {
				field = j
				break
			}
		}
		if field < 0 {
			return nil, 0, fmt.Errorf("read %s: no column %q; the columns present are: %s", name, q.Name, strings.Join(header, ", "))
		}
		c := &csvColumn{req: q, field: field, col: &Column{Name: q.Name}}
		switch q.Role {
		case AsIs, Text:
			c.col.Kind = String
			c.col.Strs = make([]string, 0, estimate)
			c.intern = make(map[string]string)
		case Key:
			c.allInt = true
			c.raw = make([]string, 0, estimate)
			c.col.Ints = make([]int64, 0, estimate)
			c.intern = make(map[string]string)
		case Time:
			c.col.Kind = Timestamp
			c.col.Ints = make([]int64, 0, estimate)
		case Value:
			c.col.Kind = Float64
			c.col.Floats = make([]float64, 0, estimate)
		}
		cols[i] = c
	}
	rows := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w; every line needs %d fields like the header", name, err, len(header))
		}
		for _, c := range cols {
			pos := func() string {
				line, _ := r.FieldPos(c.field)
				return "line " + strconv.Itoa(line)
			}
			if err := c.add(rec[c.field], rows, pos, name); err != nil {
				return nil, 0, err
			}
		}
		rows++
	}
	t := &Table{Rows: rows, Columns: make([]*Column, len(cols))}
	for i, c := range cols {
		c.finish()
		t.Columns[i] = c.col
	}
	return t, size, nil
}
