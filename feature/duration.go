package feature

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Microseconds per duration unit.
const (
	Microsecond int64 = 1
	Millisecond       = 1000 * Microsecond
	Second            = 1000 * Millisecond
	Minute            = 60 * Second
	Hour              = 60 * Minute
	Day               = 24 * Hour
	Week              = 7 * Day
)

// durationForms tells users what a duration looks like.
const durationForms = "want a positive whole number with a unit (us, ms, s, m, h, d, w), e.g. 30m, 1h, 7d, 2w or 1h30m"

type unit struct {
	name   string
	micros int64
}

// units is ordered from the largest to the smallest; a combination such as
// 1h30m must list its units in this order.
var units = []unit{
	{"w", Week}, {"d", Day}, {"h", Hour}, {"m", Minute}, {"s", Second},
	{"ms", Millisecond}, {"us", Microsecond}, {"µs", Microsecond},
}

// errDuration is wrapped by every duration syntax error.
var errDuration = errors.New(durationForms)

// ParseDuration parses a duration such as 30m, 7d or 1h30m into microseconds.
// Units are us, ms, s, m, h, d (24h) and w (7d); a combination lists each unit
// at most once, largest first. The result is always > 0.
func ParseDuration(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration: %w", errDuration)
	}
	var total int64
	last := -1 // index in units of the previous unit
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, durationErr(s, rest)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		name := rest[:j]
		rest = rest[j:]
		k := unitIndex(name)
		if k < 0 {
			if name == "" {
				return 0, fmt.Errorf("duration %q has no unit: %w", s, errDuration)
			}
			if name[0] == '.' || name[0] == ',' {
				return 0, fmt.Errorf("duration %q is not a whole number; write a combination such as 1h30m or a smaller unit such as 90m", s)
			}
			return 0, fmt.Errorf("duration %q: unknown unit %q: %w", s, name, errDuration)
		}
		if units[k].micros == Microsecond && k > 6 {
			k = 6 // µs and us are the same unit
		}
		if k <= last {
			return 0, fmt.Errorf("duration %q: list each unit once, largest first (e.g. 1h30m): %w", s, errDuration)
		}
		last = k
		u := units[k].micros
		if n > math.MaxInt64/u || total > math.MaxInt64-n*u {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		total += n * u
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q must be greater than zero: %w", s, errDuration)
	}
	return total, nil
}

func durationErr(s, rest string) error {
	if rest[0] == '-' {
		return fmt.Errorf("duration %q must be greater than zero: %w", s, errDuration)
	}
	return fmt.Errorf("invalid duration %q: %w", s, errDuration)
}

func unitIndex(name string) int {
	for k, u := range units {
		if u.name == name {
			return k
		}
	}
	return -1
}

// FormatDuration formats microseconds in canonical form: a whole number of
// the largest unit among d, h, m, s, ms and us that divides the duration, so
// 1h30m formats as 90m and 2w as 14d. ParseDuration(FormatDuration(d)) == d
// for every d > 0. Zero formats as 0s and negative durations with a minus
// sign; neither parses back.
func FormatDuration(us int64) string {
	if us == 0 {
		return "0s"
	}
	sign := ""
	mag := uint64(us)
	if us < 0 {
		sign = "-"
		mag = uint64(-(us + 1)) + 1 // safe for math.MinInt64
	}
	for _, u := range units[1:7] { // d down to us; weeks are written in days
		if mag%uint64(u.micros) == 0 {
			return sign + strconv.FormatUint(mag/uint64(u.micros), 10) + u.name
		}
	}
	return sign + strconv.FormatUint(mag, 10) + "us" // unreachable: us divides everything
}

// Window is a feature window. Micros == 0 means the unbounded window "all".
type Window struct {
	Micros int64
}

// WindowAll is the unbounded window: every event before the input time.
var WindowAll = Window{}

// ParseWindow parses "all" or a duration.
func ParseWindow(s string) (Window, error) {
	if s == "all" {
		return WindowAll, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w (or all for every event before the input time)", s, err)
	}
	return Window{Micros: d}, nil
}

// All reports whether w is the unbounded window.
func (w Window) All() bool { return w.Micros == 0 }

// String returns the canonical form: "all" or FormatDuration of the width.
func (w Window) String() string {
	if w.All() {
		return "all"
	}
	return FormatDuration(w.Micros)
}
