package source

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// acceptedTimes lists the time formats text columns may use, for messages.
const acceptedTimes = `RFC 3339 ("2006-01-02T15:04:05Z", fractional seconds and offset optional; no offset means UTC), "2006-01-02 15:04:05[.ffffff]" or "2006-01-02"`

// where locates a row in a file for messages: "row N" for Parquet, "line N"
// for CSV.
type where func(i int) string

func parquetRow(i int) string { return "row " + strconv.Itoa(i+1) }

// applyRole converts a column read in its native kind to what role asks for.
// file and at name the place of a bad row in errors.
func applyRole(file string, c *Column, role Role, at where) (*Column, error) {
	switch role {
	case AsIs:
		return c, nil
	case Key:
		if c.Kind != Int64 && c.Kind != String {
			return nil, fmt.Errorf("read %s: column %q is %s; a key column must hold integers or strings", file, c.Name, c.Kind)
		}
		for i := 0; i < c.Len() && (c.Valid != nil || c.Kind == String); i++ {
			if c.IsNull(i) || (c.Kind == String && c.Strs[i] == "") {
				return nil, fmt.Errorf("read %s: %s, column %q: the key is null or empty; every row needs a key", file, at(i), c.Name)
			}
		}
		c.Valid = nil
		return c, nil
	case Time:
		switch c.Kind {
		case Timestamp:
			for i := 0; i < len(c.Ints) && c.Valid != nil; i++ {
				if !c.Valid[i] {
					return nil, fmt.Errorf("read %s: %s, column %q: the time is null; every row needs a time", file, at(i), c.Name)
				}
			}
			c.Valid = nil
			return c, nil
		case String:
			out := &Column{Name: c.Name, Kind: Timestamp, Ints: make([]int64, len(c.Strs))}
			for i, s := range c.Strs {
				if c.IsNull(i) {
					return nil, fmt.Errorf("read %s: %s, column %q: the time is null; every row needs a time", file, at(i), c.Name)
				}
				t, ok := parseTime(s)
				if !ok {
					return nil, fmt.Errorf("read %s: %s, column %q: cannot read %q as a time; accepted formats: %s", file, at(i), c.Name, s, acceptedTimes)
				}
				out.Ints[i] = t
			}
			return out, nil
		}
		return nil, fmt.Errorf("read %s: column %q is %s, not a timestamp; store it as a Parquet TIMESTAMP or DATE column, or as RFC 3339 text", file, c.Name, c.Kind)
	case Value:
		switch c.Kind {
		case Float64:
			for i, f := range c.Floats {
				if math.IsNaN(f-f) && !c.IsNull(i) { // f-f is NaN exactly when f is NaN or ±Inf
					return nil, fmt.Errorf("read %s: %s, column %q: value is %v; values must be finite numbers (use null for a missing value)", file, at(i), c.Name, f)
				}
			}
			return c, nil
		case Int64:
			out := &Column{Name: c.Name, Kind: Float64, Floats: make([]float64, len(c.Ints)), Valid: c.Valid}
			for i, v := range c.Ints {
				out.Floats[i] = float64(v)
			}
			return out, nil
		}
		return nil, fmt.Errorf("read %s: column %q is %s; a value column must be numeric (integer or floating point)", file, c.Name, c.Kind)
	case Text:
		if c.Kind == String {
			return c, nil
		}
		out := &Column{Name: c.Name, Kind: String, Strs: make([]string, c.Len()), Valid: c.Valid}
		var buf []byte
		for i := range out.Strs {
			if c.IsNull(i) {
				continue
			}
			buf = appendText(buf[:0], c, i)
			out.Strs[i] = string(buf)
		}
		return out, nil
	}
	return nil, fmt.Errorf("read %s: column %q: unknown role %d", file, c.Name, role)
}

// appendText appends the text form of non-null row i of c.
func appendText(b []byte, c *Column, i int) []byte {
	switch c.Kind {
	case Int64:
		return strconv.AppendInt(b, c.Ints[i], 10)
	case Float64:
		return appendFloat(b, c.Floats[i])
	case String:
		return append(b, c.Strs[i]...)
	case Bool:
		return strconv.AppendBool(b, c.Bools[i])
	case Timestamp:
		return appendTime(b, c.Ints[i])
	}
	return b
}

// parseTime parses the accepted text time formats into microseconds since the
// epoch. A time without an offset is UTC.
func parseTime(s string) (int64, bool) {
	if len(s) == 10 {
		t, err := time.Parse(time.DateOnly, s)
		return t.UnixMicro(), err == nil
	}
	if len(s) < 19 || (s[10] != 'T' && s[10] != ' ' && s[10] != 't') {
		return 0, false
	}
	// Skip the fractional seconds to see whether an offset follows.
	j := 19
	if j < len(s) && s[j] == '.' {
		j++
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
	}
	var layout string
	switch {
	case s[10] == ' ' && j == len(s):
		layout = time.DateTime
	case s[10] == ' ':
		layout = "2006-01-02 15:04:05Z07:00"
	case j == len(s):
		layout = "2006-01-02T15:04:05"
	default:
		layout = time.RFC3339
	}
	if s[10] == 't' {
		s = s[:10] + "T" + s[11:]
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}
