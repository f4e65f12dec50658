package feature

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Column kinds reported by source readers.
const (
	KindInt64     = "int64"
	KindFloat64   = "float64"
	KindString    = "string"
	KindBool      = "bool"
	KindTimestamp = "timestamp"
)

// Column is one column of a source's schema.
type Column struct {
	Name string
	Kind string // one of KindInt64, KindFloat64, KindString, KindBool, KindTimestamp
}

// CheckSource checks the columns that the features over a source use against
// the source's schema: the timestamp column exists and is a timestamp, int64
// or string; each key exists and is int64 or string; each value exists and is
// numeric; each filter column exists and its equals value can be one of the
// column's values. The error joins every problem, each naming the
// configuration file, the source or feature, the column and the fix.
func (c *Config) CheckSource(source string, cols []Column) error {
	src, ok := c.Sources[source]
	if !ok {
		return fmt.Errorf("%s: source %q is not declared under sources (%s)", c.File, source, declared(c.Sources))
	}
	byName := make(map[string]Column, len(cols))
	for _, col := range cols {
		if _, dup := byName[col.Name]; !dup {
			byName[col.Name] = col
		}
	}
	var errs []error
	// missing reports a column that is not in the schema.
	missing := func(who, role, name, fix string) {
		hint := ""
		if s := suggestColumn(name, cols); s != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s column %q is not in source %s%s; columns: %s; %s",
			c.File, who, role, name, source, hint, listColumns(cols), fix))
	}
	check := func(who, role, name, fix string, kinds ...string) (Column, bool) {
		col, ok := byName[name]
		if !ok {
			missing(who, role, name, fix)
			return col, false
		}
		if len(kinds) > 0 && !slices.Contains(kinds, col.Kind) {
			errs = append(errs, fmt.Errorf("%s: %s: %s column %q of source %s is %s, want %s; %s",
				c.File, who, role, name, source, col.Kind, strings.Join(kinds, " or "), fix))
			return col, false
		}
		return col, true
	}

	check("source "+source, "timestamp", src.Timestamp,
		"set timestamp: of the source to its event time column",
		KindTimestamp, KindInt64, KindString)
	for _, name := range c.FeatureNames() {
		f := c.Features[name]
		if f.Source != source {
			continue
		}
		who := "feature " + name
		check(who, "key", f.Key,
			fmt.Sprintf("set key: on the feature or on entity %s to a column of the source", f.Entity),
			KindInt64, KindString)
		if f.Aggregation.NeedsValue() {
			check(who, "value", f.Value,
				fmt.Sprintf("set value: to a numeric column (int64 or float64); %s needs numbers", f.Aggregation),
				KindInt64, KindFloat64)
		}
		if f.Filter != nil {
			col, ok := check(who, "filter", f.Filter.Column, "set filter: {column: ...} to a column of the source")
			if ok {
				if err := filterValueFits(f.Filter.Equals, col.Kind); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: filter equals %q never matches column %q (%s): %w; fix equals: in the filter",
						c.File, who, f.Filter.Equals, col.Name, col.Kind, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// filterValueFits reports why a filter value can never equal a value of a
// column of the kind, or nil.
func filterValueFits(v, kind string) error {
	var err error
	switch kind {
	case KindInt64:
		_, err = strconv.ParseInt(v, 10, 64)
	case KindFloat64:
		_, err = strconv.ParseFloat(v, 64)
	case KindBool:
		_, err = strconv.ParseBool(v)
	case KindTimestamp:
		_, err = time.Parse(time.RFC3339Nano, v)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("it is not a valid %s", kind)
	}
	return nil
}

func suggestColumn(name string, cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return suggest(name, names)
}

func listColumns(cols []Column) string {
	if len(cols) == 0 {
		return "none"
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + " " + c.Kind
	}
	return strings.Join(parts, ", ")
}
