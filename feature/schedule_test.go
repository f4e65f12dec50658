package feature

import (
	"strings"
	"testing"
)

func TestCheckSchedule(t *testing.T) {
	for _, ok := range []string{"15m", "1h", "0 * * * *", "*/5 * * * *", "0 0 1 1 0", "0,30 8-18/2 * * 1-5", "59 23 31 12 7"} {
		if err := checkSchedule(ok); err != nil {
			t.Errorf("checkSchedule(%q): %v", ok, err)
		}
	}
	tests := []struct{ in, want string }{
		{"hourly", "neither an interval"},
		{"* * * *", "neither an interval"},
		{"* * * * * *", "neither an interval"},
		{"60 * * * *", `minute field "60": 60 is outside 0-59`},
		{"* 24 * * *", "hour field"},
		{"* * 0 * *", "day of month field"},
		{"* * * 13 *", "month field"},
		{"* * * * 8", "day of week field"},
		{"*/0 * * * *", `step "0" must be a positive number`},
		{"5-1 * * * *", "range 5-1 is backwards"},
		{"a * * * *", `"a" is not a number`},
		{"1,,2 * * * *", `"" is not a number`},
		{"* * * JAN *", `"JAN" is not a number`},
	}
	for _, tt := range tests {
		err := checkSchedule(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("checkSchedule(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
