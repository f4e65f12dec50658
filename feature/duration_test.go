package feature

import (
	"math"
	"strings"
	"testing"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"1us", 1},
		{"1µs", 1},
		{"250ms", 250 * Millisecond},
		{"45s", 45 * Second},
		{"30m", 30 * Minute},
		{"1h", Hour},
		{"1h30m", 90 * Minute},
		{"1d", 24 * Hour},
		{"7d", 7 * Day},
		{"2w", 14 * Day},
		{"1w2d3h4m5s6ms7us", Week + 2*Day + 3*Hour + 4*Minute + 5*Second + 6*Millisecond + 7},
		{"007m", 7 * Minute},
		{"90m", 90 * Minute},
		{"0h5m", 5 * Minute},
		{"9223372036854775807us", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseDuration(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct {
		in, want string // want: a substring of the error
	}{
		{"", "empty duration"},
		{"0s", "greater than zero"},
		{"0h0m", "greater than zero"},
		{"-5m", "greater than zero"},
		{"5", "no unit"},
		{"m", "invalid duration"},
		{"5x", `unknown unit "x"`},
		{"5 m", `unknown unit " m"`},
		{"5M", `unknown unit "M"`},
		{"1.5h", "whole number"},
		{"30m1h", "largest first"},
		{"1m1m", "largest first"},
		{"1us1µs", "largest first"},
		{"9223372036854775808us", "too large"},
		{"15250284452w", "too large"},
		{"15250284451w7d", "too large"},
		{"h1", "invalid duration"},
		{"+1h", "invalid duration"},
		{"all", "invalid duration"},
	}
	for _, tt := range tests {
		_, err := ParseDuration(tt.in)
		if err == nil {
			t.Errorf("ParseDuration(%q): no error, want one containing %q", tt.in, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDuration(%q) error %q does not contain %q", tt.in, err, tt.want)
		}
	}
	// Syntax errors tell the accepted forms.
	_, err := ParseDuration("7x")
	if !strings.Contains(err.Error(), "e.g. 30m, 1h, 7d") {
		t.Errorf("error %q does not show the accepted forms", err)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{7 * Day, "7d"},
		{Week, "7d"},
		{2 * Week, "14d"},
		{Day, "1d"},
		{25 * Hour, "25h"},
		{90 * Minute, "90m"},
		{Hour, "1h"},
		{61 * Second, "61s"},
		{1500 * Millisecond, "1500ms"},
		{1001, "1001us"},
		{1, "1us"},
		{0, "0s"},
		{-Hour, "-1h"},
		{math.MaxInt64, "9223372036854775807us"},
		{math.MinInt64, "-9223372036854775808us"},
	}
	for _, tt := range tests {
		if got := FormatDuration(tt.in); got != tt.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWindow(t *testing.T) {
	tests := []struct {
		in, canon string
		micros    int64
	}{
		{"all", "all", 0},
		{"7d", "7d", 7 * Day},
		{"1w", "7d", 7 * Day},
		{"24h", "1d", Day},
		{"1h30m", "90m", 90 * Minute},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.in)
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", tt.in, err)
			continue
		}
		if w.Micros != tt.micros || w.String() != tt.canon || w.All() != (tt.micros == 0) {
			t.Errorf("ParseWindow(%q) = %+v (%s, all=%v), want %d (%s)", tt.in, w, w, w.All(), tt.micros, tt.canon)
		}
	}
	for _, bad := range []string{"", "ALL", "0d", "forever", "-1d", "7"} {
		_, err := ParseWindow(bad)
		if err == nil {
			t.Errorf("ParseWindow(%q): no error", bad)
		} else if !strings.Contains(err.Error(), "or all") {
			t.Errorf("ParseWindow(%q) error %q does not mention all", bad, err)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1h30m", "7d", "2w", "1us", "9223372036854775807us", "0s", "-1m", "1.5h", "1m1m", "µs", "1µs", "5 m", "9223372036854775808us"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("ParseDuration(%q) = %d with error %v", s, d, err)
			}
			return
		}
		if d <= 0 {
			t.Fatalf("ParseDuration(%q) = %d, want > 0", s, d)
		}
		canon := FormatDuration(d)
		back, err := ParseDuration(canon)
		if err != nil || back != d {
			t.Fatalf("ParseDuration(FormatDuration(%d) = %q) = %d, %v", d, canon, back, err)
		}
		if FormatDuration(back) != canon {
			t.Fatalf("FormatDuration is not stable for %q", canon)
		}
		w, err := ParseWindow(s)
		if err != nil || w.Micros != d || w.String() != canon {
			t.Fatalf("ParseWindow(%q) = %+v, %v; want %d", s, w, err, d)
		}
	})
}
