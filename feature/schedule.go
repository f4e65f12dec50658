package feature

import (
	"fmt"
	"strconv"
	"strings"
)

// cronFields names the five cron fields and their ranges.
var cronFields = []struct {
	name   string
	lo, hi int
}{
	{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7},
}

// checkSchedule accepts an interval duration (15m) or a 5-field cron
// expression of numbers, *, ranges (a-b), lists (a,b) and steps (*/5). It
// checks syntax and ranges only; the scheduler interprets the expression.
func checkSchedule(s string) error {
	if _, err := ParseDuration(s); err == nil {
		return nil
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return fmt.Errorf("backfill_schedule %q is neither an interval (e.g. 15m, 1h) nor a 5-field cron expression (minute hour day-of-month month day-of-week, e.g. \"0 * * * *\")", s)
	}
	for i, f := range fields {
		if err := checkCronField(f, cronFields[i].lo, cronFields[i].hi); err != nil {
			return fmt.Errorf("backfill_schedule %q: %s field %q: %w (cron fields use numbers, *, a-b, a,b and */n)", s, cronFields[i].name, f, err)
		}
	}
	return nil
}

func checkCronField(f string, lo, hi int) error {
	for part := range strings.SplitSeq(f, ",") {
		rng, step, hasStep := strings.Cut(part, "/")
		if hasStep {
			n, err := strconv.Atoi(step)
			if err != nil || n <= 0 {
				return fmt.Errorf("step %q must be a positive number", step)
			}
		}
		if rng == "*" {
			continue
		}
		a, b, isRange := strings.Cut(rng, "-")
		x, err := cronNumber(a, lo, hi)
		if err != nil {
			return err
		}
		if isRange {
			y, err := cronNumber(b, lo, hi)
			if err != nil {
				return err
			}
			if y < x {
				return fmt.Errorf("range %s is backwards", rng)
			}
		}
	}
	return nil
}

func cronNumber(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside %d-%d", n, lo, hi)
	}
	return n, nil
}
