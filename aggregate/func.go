package aggregate

import (
	"fmt"
	"strings"
)

// Func names an aggregation function.
type Func uint8

// The aggregation functions a feature may use.
const (
	Count Func = iota + 1
	Sum
	Mean
	Min
	Max
	Var
	Std
)

var funcNames = [...]string{Count: "count", Sum: "sum", Mean: "mean", Min: "min", Max: "max", Var: "var", Std: "std"}

// Funcs lists every aggregation function, in declaration order.
var Funcs = []Func{Count, Sum, Mean, Min, Max, Var, Std}

// String returns the name used in configuration files.
func (f Func) String() string {
	if int(f) < len(funcNames) && funcNames[f] != "" {
		return funcNames[f]
	}
	return fmt.Sprintf("Func(%d)", uint8(f))
}

// ParseFunc parses an aggregation name as written in configuration files.
func ParseFunc(s string) (Func, error) {
	for _, f := range Funcs {
		if strings.EqualFold(s, funcNames[f]) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown aggregation %q (want one of count, sum, mean, min, max, var, std)", s)
}

// NeedsValue reports whether the function reads a value column.
func (f Func) NeedsValue() bool { return f != Count }

// Needs is a set of partial-state columns.
type Needs uint8

// Partial-state columns. Count is always kept: it is the number of events,
// nulls included, and tells an empty tile from a missing one.
const (
	NeedCount Needs = 1 << iota
	NeedSum         // N and Sum
	NeedM2          // N, Sum and M2 (sum of squared deviations from the tile mean)
	NeedMin         // N and Min
	NeedMax         // N and Max
)

// Needs returns the partial-state columns the function reads.
func (f Func) Needs() Needs {
	switch f {
	case Count:
		return NeedCount
	case Sum, Mean:
		return NeedCount | NeedSum
	case Var, Std:
		return NeedCount | NeedSum | NeedM2
	case Min:
		return NeedCount | NeedMin
	case Max:
		return NeedCount | NeedMax
	}
	return NeedCount
}

// Has reports whether every column of o is in n.
func (n Needs) Has(o Needs) bool { return n&o == o }

// HasValues reports whether the set keeps any value column (and so N).
func (n Needs) HasValues() bool { return n&(NeedSum|NeedM2|NeedMin|NeedMax) != 0 }

// String lists the columns, for manifests and messages.
func (n Needs) String() string {
	var parts []string
	for _, c := range []struct {
		n    Needs
		name string
	}{{NeedCount, "count"}, {NeedSum, "sum"}, {NeedM2, "m2"}, {NeedMin, "min"}, {NeedMax, "max"}} {
		if n&c.n != 0 {
			parts = append(parts, c.name)
		}
	}
	return strings.Join(parts, ",")
}
