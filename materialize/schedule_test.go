package materialize

import (
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct{ expr, after, want string }{
		{"15m", "2026-03-01T10:07:00Z", "2026-03-01T10:22:00Z"},
		{"0 * * * *", "2026-03-01T10:07:00Z", "2026-03-01T11:00:00Z"},
		{"0 * * * *", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"}, // strictly after
		{"*/15 * * * *", "2026-03-01T10:07:30Z", "2026-03-01T10:15:00Z"},
		{"30 2 * * *", "2026-03-01T10:07:00Z", "2026-03-02T02:30:00Z"},
		{"0 0 1 * *", "2026-12-15T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"0 9 * * 1-5", "2026-03-06T10:00:00Z", "2026-03-09T09:00:00Z"}, // Friday -> Monday
		{"0 0 * * 7", "2026-03-02T00:00:00Z", "2026-03-08T00:00:00Z"},   // 7 is Sunday
		{"0 0 13 * 5", "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"},  // day 13 or a Friday
		{"5,35 1-2 * * *", "2026-03-01T01:40:00Z", "2026-03-01T02:05:00Z"},
	}
	for _, c := range cases {
		s, err := ParseSchedule(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := s.Next(at(c.after)); !got.Equal(at(c.want)) {
			t.Errorf("%q after %s: %s, want %s", c.expr, c.after, got.Format(time.RFC3339), c.want)
		}
	}
	for _, bad := range []string{"", "* * *", "60 * * * *", "*/0 * * * *", "5-1 * * * *", "x * * * *"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
