package materialize

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-fe/tessera/feature"
)

// Schedule says when a scheduled backfill runs: a fixed interval or a
// 5-field cron expression (minute hour day-of-month month day-of-week, UTC).
type Schedule struct {
	Text     string
	interval time.Duration // > 0 for an interval
	fields   [5]uint64     // cron: allowed values per field, as bit sets
	domStar  bool
	dowStar  bool
}

var cronRanges = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}

// ParseSchedule parses a backfill_schedule: an interval such as 15m or 1h,
// or a cron expression such as "0 * * * *".
func ParseSchedule(s string) (*Schedule, error) {
	if d, err := feature.ParseDuration(s); err == nil {
		if d <= 0 {
			return nil, fmt.Errorf("backfill_schedule %q: the interval must be positive", s)
		}
		return &Schedule{Text: s, interval: time.Duration(d) * time.Microsecond}, nil
	}
	f := strings.Fields(s)
	if len(f) != 5 {
		return nil, fmt.Errorf("backfill_schedule %q is neither an interval (15m) nor a 5-field cron expression (\"0 * * * *\")", s)
	}
	sc := &Schedule{Text: s, domStar: f[2] == "*", dowStar: f[4] == "*"}
	for i, field := range f {
		bits, err := cronField(field, cronRanges[i][0], cronRanges[i][1])
		if err != nil {
			return nil, fmt.Errorf("backfill_schedule %q: field %d %q: %w", s, i+1, field, err)
		}
		sc.fields[i] = bits
	}
	if sc.fields[4]&(1<<7) != 0 { // 7 is Sunday too
		sc.fields[4] |= 1
	}
	return sc, nil
}

func cronField(f string, lo, hi int) (uint64, error) {
	var bits uint64
	for part := range strings.SplitSeq(f, ",") {
		rng, stepText, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("step %q must be a positive number", stepText)
			}
			step = n
		}
		a, b := lo, hi
		if rng != "*" {
			x, y, isRange := strings.Cut(rng, "-")
			var err error
			if a, err = strconv.Atoi(x); err != nil || a < lo || a > hi {
				return 0, fmt.Errorf("%q is not a number in %d-%d", x, lo, hi)
			}
			b = a
			if isRange {
				if b, err = strconv.Atoi(y); err != nil || b < a || b > hi {
					return 0, fmt.Errorf("range %q is not within %d-%d", rng, lo, hi)
				}
			} else if hasStep {
				b = hi
			}
		}
		for v := a; v <= b; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

// Next returns the first run time strictly after t.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.interval > 0 {
		return t.Add(s.interval).Truncate(time.Microsecond)
	}
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		switch {
		case s.fields[3]&(1<<int(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case s.fields[1]&(1<<t.Hour()) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case s.fields[0]&(1<<t.Minute()) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return limit // an expression that never fires, such as 0 0 31 2 *
}

// dayMatches applies cron's rule: when both day fields are restricted, a
// day matching either runs.
func (s *Schedule) dayMatches(t time.Time) bool {
	dom := s.fields[2]&(1<<t.Day()) != 0
	dow := s.fields[4]&(1<<int(t.Weekday())) != 0
	switch {
	case s.domStar && s.dowStar:
		return true
	case s.domStar:
		return dow
	case s.dowStar:
		return dom
	}
	return dom || dow
}

// Run reports one scheduled backfill run.
type Run struct {
	Start    time.Time
	Duration time.Duration
	TileSets []string
	Summary  *Summary // nil when Err is set
	Err      error
}

// Scheduler runs incremental backfills of the tile sets whose features set
// backfill_schedule, each on its own schedule. Its state is the tile store's
// watermarks: a restarted scheduler resumes where the last commit ended.
type Scheduler struct {
	Config *feature.Config
	Store  Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits for d or until ctx ends; nil means a timer. Tests with a
	// fake clock advance it here.
	Sleep func(ctx context.Context, d time.Duration) error
	// After runs after each backfill run, with its outcome; may be nil.
	After func(Run)
	// Options are passed to each incremental backfill (Features, From, To
	// and Now are set by the scheduler).
	Options Options
}

// Scheduled returns the tile sets that have a backfill_schedule, with the
// parsed schedule of each.
func Scheduled(cfg *feature.Config) (map[string]*Schedule, error) {
	out := map[string]*Schedule{}
	for _, ts := range cfg.TileSets() {
		for _, name := range ts.Features {
			m := cfg.Features[name].Materialization
			if m == nil || m.Schedule == "" {
				continue
			}
			s, err := ParseSchedule(m.Schedule)
			if err != nil {
				return nil, fmt.Errorf("feature %s in %s: %w", name, cfg.File, err)
			}
			out[ts.ID] = s
			break
		}
	}
	return out, nil
}

// Loop runs a catch-up backfill of every scheduled tile set at once, then
// each on its schedule, until ctx ends. It returns ctx's error, or an error
// when no feature sets backfill_schedule. A failed run is reported to After
// and retried at the next scheduled time.
func (s *Scheduler) Loop(ctx context.Context) error {
	sched, err := Scheduled(s.Config)
	if err != nil {
		return err
	}
	if len(sched) == 0 {
		return fmt.Errorf("no feature in %s sets materialization.backfill_schedule (an interval such as 15m, or cron such as \"0 * * * *\")", s.Config.File)
	}
	now := s.now()
	next := map[string]time.Time{}
	for id := range sched {
		next[id] = now // catch up at once
	}
	for {
		due := time.Time{}
		for _, t := range next {
			if due.IsZero() || t.Before(due) {
				due = t
			}
		}
		if wait := due.Sub(s.now()); wait > 0 {
			if err := s.sleep(ctx, wait); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		now := s.now()
		var ids []string
		for id, t := range next {
			if !t.After(now) {
				ids = append(ids, id)
				next[id] = sched[id].Next(now)
			}
		}
		slices.Sort(ids)
		s.RunOnce(ctx, ids)
	}
}

// RunOnce runs one incremental backfill of the given tile sets and reports
// it to After.
func (s *Scheduler) RunOnce(ctx context.Context, tileSets []string) Run {
	start := s.now()
	opt := s.Options
	opt.Now = start
	opt.From, opt.To = nil, nil
	opt.Features = nil
	for _, ts := range s.Config.TileSets() {
		if slices.Contains(tileSets, ts.ID) {
			opt.Features = append(opt.Features, ts.Features[0])
		}
	}
	sum, err := Incremental(ctx, s.Config, s.Store, opt)
	r := Run{Start: start, Duration: s.now().Sub(start), TileSets: tileSets, Summary: sum, Err: err}
	if s.After != nil {
		s.After(r)
	}
	return r
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Scheduler) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
