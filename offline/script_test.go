package offline

// This file runs the scripted point-in-time cases of testdata/*.test at the
// module root. The format is described in testdata/README.md; in short:
//
//	date 2026-01-01                  # short times below (02:00) are on this day, UTC
//	case sums over whole buckets
//	config
//	  user.amount: {source: ev, aggregation: sum, value: amount, windows: [1h, all], materialization: {bucket_duration: 1h}}
//	events
//	  user_id  ts     amount  status
//	  1        00:30  2       ok
//	tiles cover -inf 01:00           # optional; default: one backfill of everything
//	query exact materialized
//	  user_id  ts     user.amount[1h]  user.amount[all]
//	  1        01:00  2                2
//	fallback none                    # optional: the ranges the last query computed from raw events

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// scriptBoilerplate is appended to every case's config block: the test
// source and entity that memEvents serves.
const scriptBoilerplate = `
sources:
  ev: {path: events.csv, timestamp: ts}
entities:
  user: {key: user_id}
`

// scriptToken is one cell of a table line; quoted tells a "double-quoted"
// cell, which is always a string.
type scriptToken struct {
	text   string
	quoted bool
}

// scriptEvent is one row of an events block, kept as tokens until the case
// knows whether its keys are ints or strings.
type scriptEvent struct {
	key    scriptToken
	ts     int64
	value  float64
	valid  bool
	status string
}

// scriptCell is one expected value of a query row.
type scriptCell struct {
	null  bool
	value float64
}

// scriptRow is one spine row of a query block and its expected values.
type scriptRow struct {
	line int
	key  scriptToken
	time int64
	text string // key and time as written, for messages
	want []scriptCell
}

// scriptStep is a `tiles` line or a `query` block, run in file order.
type scriptStep struct {
	line int

	// tiles
	isTiles bool
	noTiles bool              // tiles none: no tile store at all
	cover   []tilestore.Range // tiles cover ...

	// query
	modes    []Options
	refs     []feature.Ref
	rows     []scriptRow
	fallback *[]tilestore.Range // nil: not checked
	fbLine   int
}

// scriptCase is one `case` of a script file.
type scriptCase struct {
	file       string
	name       string
	line       int
	config     []string // raw lines of the config block
	configLine int      // line of the first config line
	events     []scriptEvent
	steps      []*scriptStep
}

// reporter receives mismatches; *testing.T is one.
type reporter interface {
	Errorf(format string, args ...any)
}

// TestScript runs every case of ../testdata/*.test, one subtest per file and
// case.
func TestScript(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "*.test"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no script files found in ../testdata/*.test")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cases, err := parseScript(filepath.Base(path), string(data))
			if err != nil {
				t.Fatal(err)
			}
			if len(cases) == 0 {
				t.Fatalf("%s: no cases", path)
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					if err := runScriptCase(t, t, c); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// parseScript parses a script file into its cases. Errors name file:line.
func parseScript(file, text string) ([]*scriptCase, error) {
	var (
		cases []*scriptCase
		cur   *scriptCase
		date  string // YYYY-MM-DD for short times; "" when unset
		block string // "config", "events", "query" or ""
		step  *scriptStep
		// header of the open events block, column name -> index
		evCols map[string]int
		evHead bool
		evLine int // line of the open events directive
	)
	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	lines := strings.Split(text, "\n")
	for i, raw := range lines {
		ln := i + 1
		raw = strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			if block == "config" && cur != nil {
				cur.config = append(cur.config, "") // keep YAML line numbers
			}
			continue
		}
		if raw[0] == ' ' || raw[0] == '\t' {
			// A line of the open block.
			switch block {
			case "config":
				cur.config = append(cur.config, raw)
			case "events":
				toks, err := scriptTokens(trimmed)
				if err != nil {
					return nil, errf(ln, "%v", err)
				}
				if !evHead {
					evCols = map[string]int{}
					for k, tok := range toks {
						switch tok.text {
						case "user_id", "ts", "amount", "status":
						default:
							return nil, errf(ln, "events header: unknown column %q; the columns are user_id, ts, amount (optional) and status (optional)", tok.text)
						}
						if _, dup := evCols[tok.text]; dup {
							return nil, errf(ln, "events header: column %q twice", tok.text)
						}
						evCols[tok.text] = k
					}
					for _, need := range []string{"user_id", "ts"} {
						if _, ok := evCols[need]; !ok {
							return nil, errf(ln, "events header: missing column %s", need)
						}
					}
					evHead = true
					continue
				}
				if len(toks) != len(evCols) {
					return nil, errf(ln, "event row has %d cells, the header %d", len(toks), len(evCols))
				}
				ev := scriptEvent{key: toks[evCols["user_id"]]}
				ts, err := scriptTime(toks[evCols["ts"]].text, date)
				if err != nil {
					return nil, errf(ln, "column ts: %v", err)
				}
				ev.ts = ts
				if k, ok := evCols["amount"]; ok && toks[k].text != "null" {
					v, err := strconv.ParseFloat(toks[k].text, 64)
					if err != nil {
						return nil, errf(ln, "column amount: %q is not a number or null", toks[k].text)
					}
					ev.value, ev.valid = v, true
				}
				if k, ok := evCols["status"]; ok && !(toks[k].text == "null" && !toks[k].quoted) {
					ev.status = toks[k].text
				}
				cur.events = append(cur.events, ev)
			case "query":
				toks, err := scriptTokens(trimmed)
				if err != nil {
					return nil, errf(ln, "%v", err)
				}
				if step.refs == nil {
					if len(toks) < 3 {
						return nil, errf(ln, "query header: want <key column> <time column> and at least one feature reference, e.g. user_id ts user.amount[1h]")
					}
					for _, tok := range toks[2:] {
						r, err := feature.ParseRef(tok.text)
						if err != nil {
							return nil, errf(ln, "query header: %v", err)
						}
						step.refs = append(step.refs, r)
					}
					continue
				}
				if len(toks) != len(step.refs)+2 {
					return nil, errf(ln, "query row has %d cells, the header %d", len(toks), len(step.refs)+2)
				}
				tm, err := scriptTime(toks[1].text, date)
				if err != nil {
					return nil, errf(ln, "spine time: %v", err)
				}
				row := scriptRow{line: ln, key: toks[0], time: tm, text: "(" + tokString(toks[0]) + ", " + toks[1].text + ")"}
				for k, tok := range toks[2:] {
					c, err := scriptValue(tok.text)
					if err != nil {
						return nil, errf(ln, "column %s: %v", step.refs[k].Text, err)
					}
					row.want = append(row.want, c)
				}
				step.rows = append(step.rows, row)
			default:
				return nil, errf(ln, "indented line outside a config, events or query block")
			}
			continue
		}

		// A directive at column 0 closes the open block.
		if err := closeBlock(file, block, cur, step, evHead, evLine); err != nil {
			return nil, err
		}
		block, evHead = "", false
		fields := strings.Fields(trimmed)
		if k := slices.IndexFunc(fields, func(s string) bool { return strings.HasPrefix(s, "#") }); k >= 0 {
			fields = fields[:k]
		}
		word, args := fields[0], fields[1:]
		if word != "date" && word != "case" && cur == nil {
			return nil, errf(ln, "%s before the first case: start one with `case <name>`", word)
		}
		switch word {
		case "date":
			if len(args) != 1 {
				return nil, errf(ln, "want date YYYY-MM-DD")
			}
			if _, err := time.Parse("2006-01-02", args[0]); err != nil {
				return nil, errf(ln, "date %q: want YYYY-MM-DD", args[0])
			}
			date = args[0]
		case "case":
			if len(args) == 0 {
				return nil, errf(ln, "case needs a name, e.g. case events at a bucket edge")
			}
			if cur != nil {
				if err := checkCase(cur); err != nil {
					return nil, err
				}
			}
			cur = &scriptCase{file: file, name: strings.Join(args, " "), line: ln}
			cases = append(cases, cur)
		case "config":
			if cur.config != nil {
				return nil, errf(ln, "second config block in case %q", cur.name)
			}
			block, cur.configLine = "config", ln+1
			cur.config = []string{}
		case "events":
			if cur.events != nil {
				return nil, errf(ln, "second events block in case %q", cur.name)
			}
			block, evLine = "events", ln
			cur.events = []scriptEvent{}
		case "tiles":
			st := &scriptStep{line: ln, isTiles: true}
			switch {
			case len(args) == 1 && args[0] == "none":
				st.noTiles = true
			case len(args) >= 3 && args[0] == "cover":
				rs, err := scriptRanges(strings.Join(args[1:], " "), date)
				if err != nil {
					return nil, errf(ln, "tiles cover: %v", err)
				}
				st.cover = rs
			default:
				return nil, errf(ln, "want `tiles cover FROM TO[, FROM TO...]` (times, -inf or +inf) or `tiles none`")
			}
			cur.steps = append(cur.steps, st)
		case "query":
			if len(args) == 0 {
				return nil, errf(ln, "query needs a mode: exact, materialized, materialized+align or aligned")
			}
			step = &scriptStep{line: ln}
			for _, m := range args {
				opt, ok := scriptMode(m)
				if !ok {
					return nil, errf(ln, "unknown mode %q: use exact, materialized, materialized+align or aligned", m)
				}
				step.modes = append(step.modes, opt)
			}
			cur.steps = append(cur.steps, step)
			block = "query"
		case "fallback":
			if len(cur.steps) == 0 || cur.steps[len(cur.steps)-1].isTiles {
				return nil, errf(ln, "fallback must follow a query block")
			}
			q := cur.steps[len(cur.steps)-1]
			if q.fallback != nil {
				return nil, errf(ln, "second fallback line for the query at line %d", q.line)
			}
			if !slices.ContainsFunc(q.modes, func(o Options) bool { return o.Materialized }) {
				return nil, errf(ln, "fallback applies to materialized modes only, and the query at line %d runs none", q.line)
			}
			rs := []tilestore.Range{}
			if !(len(args) == 1 && args[0] == "none") {
				var err error
				if rs, err = scriptRanges(strings.Join(args, " "), date); err != nil {
					return nil, errf(ln, "fallback: %v", err)
				}
			}
			q.fallback, q.fbLine = &rs, ln
		default:
			return nil, errf(ln, "unknown directive %q: use date, case, config, events, tiles, query or fallback (block lines are indented)", word)
		}
	}
	if err := closeBlock(file, block, cur, step, evHead, evLine); err != nil {
		return nil, err
	}
	if cur != nil {
		if err := checkCase(cur); err != nil {
			return nil, err
		}
	}
	return cases, nil
}

// closeBlock checks that the block being closed is complete.
func closeBlock(file, block string, cur *scriptCase, step *scriptStep, evHead bool, evLine int) error {
	switch block {
	case "events":
		if !evHead {
			return fmt.Errorf("%s:%d: case %q: events block without a header line (user_id ts amount status)", file, evLine, cur.name)
		}
	case "query":
		if step.refs == nil {
			return fmt.Errorf("%s:%d: query block without a header line (user_id ts <feature references>)", file, step.line)
		}
		if len(step.rows) == 0 {
			return fmt.Errorf("%s:%d: query block without rows", file, step.line)
		}
	}
	return nil
}

// checkCase checks that a case has what it needs to run.
func checkCase(c *scriptCase) error {
	if c.config == nil {
		return fmt.Errorf("%s:%d: case %q has no config block", c.file, c.line, c.name)
	}
	if !slices.ContainsFunc(c.steps, func(s *scriptStep) bool { return !s.isTiles }) {
		return fmt.Errorf("%s:%d: case %q has no query block", c.file, c.line, c.name)
	}
	return nil
}

func tokString(t scriptToken) string {
	if t.quoted {
		return strconv.Quote(t.text)
	}
	return t.text
}

// scriptTokens splits a table line on blanks; "double quoted" cells may hold
// blanks, and an unquoted cell starting with # ends the line (a comment).
func scriptTokens(s string) ([]scriptToken, error) {
	var toks []scriptToken
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" || s[0] == '#' {
			return toks, nil
		}
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("unterminated or malformed quoted cell %s", s)
			}
			u, _ := strconv.Unquote(q)
			toks = append(toks, scriptToken{text: u, quoted: true})
			s = s[len(q):]
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		toks = append(toks, scriptToken{text: s[:end]})
		s = s[end:]
	}
}

// scriptTime parses an RFC 3339 time, or HH:MM[:SS[.ffffff]] on the day of
// the last date directive, to microseconds since the epoch.
func scriptTime(s, date string) (int64, error) {
	var tm time.Time
	var err error
	if strings.Contains(s, "T") {
		tm, err = time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, fmt.Errorf("time %q: want RFC 3339, e.g. 2026-01-01T02:00:00Z", s)
		}
	} else {
		if date == "" {
			return 0, fmt.Errorf("time %q: short times need a `date YYYY-MM-DD` line above; or write RFC 3339, e.g. 2026-01-01T02:00:00Z", s)
		}
		full := s
		if strings.Count(s, ":") == 1 {
			full += ":00"
		}
		tm, err = time.Parse(time.RFC3339Nano, date+"T"+full+"Z")
		if err != nil {
			return 0, fmt.Errorf("time %q: want HH:MM, HH:MM:SS or HH:MM:SS.ffffff (on %s), or RFC 3339", s, date)
		}
	}
	if tm.Nanosecond()%1000 != 0 {
		return 0, fmt.Errorf("time %q: finer than a microsecond", s)
	}
	return tm.UnixMicro(), nil
}

// scriptRanges parses "FROM TO[, FROM TO...]" with -inf and +inf for open
// ends, and checks that the ranges are sorted, disjoint and not empty.
func scriptRanges(s, date string) ([]tilestore.Range, error) {
	var rs []tilestore.Range
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return nil, fmt.Errorf("range %q: want FROM TO", strings.TrimSpace(part))
		}
		var ends [2]int64
		for k, x := range f {
			switch x {
			case "-inf":
				ends[k] = math.MinInt64
			case "+inf":
				ends[k] = math.MaxInt64
			default:
				t, err := scriptTime(x, date)
				if err != nil {
					return nil, err
				}
				ends[k] = t
			}
		}
		r := tilestore.Range{From: ends[0], To: ends[1]}
		if r.Empty() {
			return nil, fmt.Errorf("range %q is empty", strings.TrimSpace(part))
		}
		if len(rs) > 0 && rs[len(rs)-1].To >= r.From {
			return nil, fmt.Errorf("range %q: ranges must be sorted and not touch (merge touching ones)", strings.TrimSpace(part))
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// scriptValue parses an expected value: null or a number.
func scriptValue(s string) (scriptCell, error) {
	if s == "null" {
		return scriptCell{null: true}, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return scriptCell{}, fmt.Errorf("expected value %q: want a number or null", s)
	}
	return scriptCell{value: v}, nil
}

func scriptMode(s string) (Options, bool) {
	for _, o := range allModes {
		if o.Mode() == s {
			return o, true
		}
	}
	return Options{}, false
}

// runScriptCase runs one case, reporting each wrong cell to r. It returns an
// error when the case cannot run at all (a bad config, a failed query).
func runScriptCase(tb testing.TB, r reporter, c *scriptCase) error {
	at := func(line int) string { return fmt.Sprintf("%s:%d", c.file, line) }

	// Pad the config so that YAML line numbers are the script's.
	body := dedent(c.config)
	yamlText := strings.Repeat("\n", c.configLine-1) + strings.Join(body, "\n") + "\n" + scriptBoilerplate
	cfg, err := feature.Parse(c.file, []byte(yamlText))
	if err != nil {
		return fmt.Errorf("case %q: config: %w", c.name, err)
	}
	for _, name := range cfg.FeatureNames() {
		f := cfg.Features[name]
		if f.Key != "user_id" || (f.Value != "" && f.Value != "amount") || (f.Filter != nil && f.Filter.Column != "status") {
			return fmt.Errorf("%s: case %q: feature %s: scripts have one key column user_id, one value column amount and filter only on status",
				at(c.configLine), c.name, name)
		}
	}

	// Keys are strings when any is quoted or not an integer.
	str := false
	isStr := func(t scriptToken) bool {
		if t.quoted {
			return true
		}
		_, err := strconv.ParseInt(t.text, 10, 64)
		return err != nil
	}
	for _, e := range c.events {
		str = str || isStr(e.key)
	}
	for _, s := range c.steps {
		for _, row := range s.rows {
			str = str || isStr(row.key)
		}
	}
	intKey := func(t scriptToken) int64 { x, _ := strconv.ParseInt(t.text, 10, 64); return x }

	mem := &memEvents{str: str}
	for _, e := range c.events {
		ev := rawEvent{ts: e.ts, value: e.value, valid: e.valid, status: e.status}
		if str {
			ev.skey = e.key.text
		} else {
			ev.ikey = intKey(e.key)
		}
		mem.events = append(mem.events, ev)
	}

	setTiles := func(cover []tilestore.Range, line int) (*memTiles, error) {
		for _, ts := range cfg.TileSets() {
			for _, rg := range cover {
				for _, x := range []int64{rg.From, rg.To} {
					if x != math.MinInt64 && x != math.MaxInt64 && !ts.Grid.OnBoundary(x) {
						return nil, fmt.Errorf("%s: tiles cover: %s is not a bucket boundary of tile set %s; a backfill covers whole buckets",
							at(line), time.UnixMicro(x).UTC().Format(time.RFC3339Nano), ts.ID)
					}
				}
			}
		}
		return backfill(tb, cfg, mem, cover), nil
	}
	tiles, err := setTiles([]tilestore.Range{{From: math.MinInt64, To: math.MaxInt64}}, c.line)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, s := range c.steps {
		if s.isTiles {
			tiles = nil
			if !s.noTiles {
				if tiles, err = setTiles(s.cover, s.line); err != nil {
					return err
				}
			}
			continue
		}
		sp := &Spine{Keys: tile.Keys{String: str}}
		for _, row := range s.rows {
			if str {
				sp.Keys.Str = append(sp.Keys.Str, row.key.text)
			} else {
				sp.Keys.Int = append(sp.Keys.Int, intKey(row.key))
			}
			sp.Times = append(sp.Times, row.time)
		}
		eng := &Engine{Config: cfg, Events: mem}
		if tiles != nil {
			eng.Tiles = tiles
		}
		for _, opt := range s.modes {
			res, err := eng.Query(ctx, sp, s.refs, opt)
			if err != nil {
				return fmt.Errorf("%s: query %s: %w", at(s.line), opt.Mode(), err)
			}
			checkScriptResult(r, at, opt, s, res)
		}
	}
	return nil
}

// checkScriptResult compares every cell and the fallback ranges of one query.
func checkScriptResult(r reporter, at func(int) string, opt Options, s *scriptStep, res *Result) {
	for k, col := range res.Columns {
		for i, row := range s.rows {
			want := row.want[k]
			got, gotNull := col.Values[i], col.Valid != nil && !col.Valid[i]
			var ok bool
			switch {
			case want.null || gotNull:
				ok = want.null == gotNull
			case col.Integer: // counts are exact
				ok = got == want.value
			default:
				ok = math.Abs(got-want.value) <= 1e-9*math.Abs(want.value)+1e-12
			}
			if !ok {
				r.Errorf("%s: %s: row %s column %s: got %s, want %s",
					at(row.line), opt.Mode(), row.text, col.Name, fmtScriptValue(got, gotNull), fmtScriptValue(want.value, want.null))
			}
		}
	}
	if s.fallback == nil || !opt.Materialized {
		return // raw modes read no tiles
	}
	// The union over all tile sets: features of one case may read several.
	var all []tilestore.Range
	for _, fb := range res.Stats.Fallback {
		all = append(all, tilestore.Range{From: fb.From, To: fb.To})
	}
	slices.SortFunc(all, func(a, b tilestore.Range) int { return cmp.Compare(a.From, b.From) })
	var got []tilestore.Range
	for _, rg := range all {
		if n := len(got); n > 0 && rg.From <= got[n-1].To {
			got[n-1].To = max(got[n-1].To, rg.To)
			continue
		}
		got = append(got, rg)
	}
	if !slices.Equal(got, *s.fallback) {
		r.Errorf("%s: %s: fallback ranges: got %s, want %s", at(s.fbLine), opt.Mode(), fmtRanges(got), fmtRanges(*s.fallback))
	}
}

func fmtScriptValue(v float64, null bool) string {
	if null {
		return "null"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func fmtRanges(rs []tilestore.Range) string {
	if len(rs) == 0 {
		return "none"
	}
	end := func(x int64) string {
		switch x {
		case math.MinInt64:
			return "-inf"
		case math.MaxInt64:
			return "+inf"
		}
		return time.UnixMicro(x).UTC().Format(time.RFC3339Nano)
	}
	parts := make([]string, len(rs))
	for i, rg := range rs {
		parts[i] = end(rg.From) + " " + end(rg.To)
	}
	return strings.Join(parts, ", ")
}

// dedent removes the indentation common to the non-blank lines.
func dedent(lines []string) []string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			out[i] = l[indent:]
		} else {
			out[i] = strings.TrimLeft(l, " \t")
		}
	}
	return out
}

// recorder collects what a run reports, for the runner's own tests.
type recorder struct{ msgs []string }

func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// TestScriptRunnerReportsMismatches checks that the runner can fail: a wrong
// value, a wrong null and a wrong fallback are each reported at their line.
func TestScriptRunnerReportsMismatches(t *testing.T) {
	const script = `date 2026-01-01
case wrong on purpose
config
  features:
    user.amount: {source: ev, aggregation: sum, value: amount, windows: [1h], materialization: {bucket_duration: 1h}}
    user.top: {source: ev, aggregation: max, value: amount, windows: [1h], materialization: {bucket_duration: 1h}}
events
  user_id  ts     amount
  1        00:30  2.5
tiles cover -inf 00:00
query exact materialized
  user_id  ts     user.amount[1h]  user.top[1h]
  1        01:00  2.5              2.5
  1        01:00  3                2.5
  1        00:10  0                null
  2        01:00  0                0
fallback none
`
	cases, err := parseScript("wrong.test", script)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if err := runScriptCase(t, rec, cases[0]); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"wrong.test:14: exact: row (1, 01:00) column user.amount[1h]: got 2.5, want 3",
		"wrong.test:16: exact: row (2, 01:00) column user.top[1h]: got null, want 0",
		"wrong.test:14: materialized: row (1, 01:00) column user.amount[1h]: got 2.5, want 3",
		"wrong.test:15: materialized: row (1, 00:10) column user.amount[1h]: got 2.5, want 0",
		"wrong.test:15: materialized: row (1, 00:10) column user.top[1h]: got 2.5, want null",
		"wrong.test:16: materialized: row (2, 01:00) column user.top[1h]: got null, want 0",
		"wrong.test:17: materialized: fallback ranges: got 2026-01-01T00:00:00Z 2026-01-01T01:00:00Z, want none",
	}
	if !slices.Equal(rec.msgs, want) {
		t.Errorf("reported:\n%s\nwant:\n%s", strings.Join(rec.msgs, "\n"), strings.Join(want, "\n"))
	}
}

// TestScriptParseErrors checks that malformed scripts are refused with the
// file and line of the mistake.
func TestScriptParseErrors(t *testing.T) {
	const head = "date 2026-01-01\ncase c\nconfig\n  features:\n    user.n: {source: ev, aggregation: count, windows: [1h], materialization: {bucket_duration: 1h}}\n"
	for _, tc := range []struct{ script, want string }{
		{"config\n", "x.test:1: config before the first case"},
		{head + "events\n  user_id ts colour\n", "x.test:7: events header: unknown column \"colour\""},
		{head + "events\n  user_id amount\n", "x.test:7: events header: missing column ts"},
		{head + "events\n  user_id ts\n  1 00:00 5\n", "x.test:8: event row has 3 cells, the header 2"},
		{head + "events\n  user_id ts\n  1 25:00\n", "x.test:8: column ts: time \"25:00\""},
		{"case c\nconfig\n  features:\n    user.n: {}\nevents\n  user_id ts\n  1 00:00\n", "x.test:7: column ts: time \"00:00\": short times need a `date YYYY-MM-DD` line"},
		{head + "query sideways\n", "x.test:6: unknown mode \"sideways\""},
		{head + "query exact\n  user_id ts user.n\n", "x.test:7: query header: feature reference \"user.n\" has no window"},
		{head + "query exact\n  user_id ts user.n[1h]\n  1 01:00\n", "x.test:8: query row has 2 cells, the header 3"},
		{head + "query exact\n  user_id ts user.n[1h]\n  1 01:00 many\n", "x.test:8: column user.n[1h]: expected value \"many\""},
		{head + "query exact\n  user_id ts user.n[1h]\n", "x.test:6: query block without rows"},
		{head + "tiles cover 02:00 01:00\n", "x.test:6: tiles cover: range \"02:00 01:00\" is empty"},
		{head + "tiles cover -inf 02:00, 01:00 +inf\n", "x.test:6: tiles cover: range \"01:00 +inf\": ranges must be sorted"},
		{head + "query exact\n  user_id ts user.n[1h]\n  1 01:00 0\nfallback none\n", "x.test:9: fallback applies to materialized modes only"},
		{"case c\n  1 2\n", "x.test:2: indented line outside a config, events or query block"},
		{head, "x.test:2: case \"c\" has no query block"},
		{head + "events\nquery exact\n", "x.test:6: case \"c\": events block without a header line"},
		{head + "frobnicate\n", "x.test:6: unknown directive \"frobnicate\""},
	} {
		_, err := parseScript("x.test", tc.script)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("script %q: got error %v, want one containing %q", tc.script, err, tc.want)
		}
	}
}

// TestScriptRunErrors checks the errors found only when a case runs: a
// config the feature package refuses (named at the script's line), a column
// the test source lacks, a coverage bound off the bucket grid.
func TestScriptRunErrors(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"date 2026-01-01\ncase c\nconfig\n  features:\n    user.n: {source: ev, aggregation: count, windows: [1h]}\n    user.m: {source: nope, aggregation: count, windows: [1h]}\nquery exact\n  user_id ts user.n[1h]\n  1 01:00 0\n",
			"x.test:6:"},
		{"date 2026-01-01\ncase c\nconfig\n  features:\n    user.n: {source: ev, aggregation: sum, value: price, windows: [1h]}\nquery exact\n  user_id ts user.n[1h]\n  1 01:00 0\n",
			"one value column amount"},
		{"date 2026-01-01\ncase c\nconfig\n  features:\n    user.n: {source: ev, aggregation: count, windows: [1h], materialization: {bucket_duration: 1h}}\ntiles cover -inf 00:30\nquery exact\n  user_id ts user.n[1h]\n  1 01:00 0\n",
			"x.test:6: tiles cover: 2026-01-01T00:30:00Z is not a bucket boundary"},
	} {
		cases, err := parseScript("x.test", tc.script)
		if err != nil {
			t.Fatalf("script %q: %v", tc.script, err)
		}
		err = runScriptCase(t, &recorder{}, cases[0])
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("script %q: got error %v, want one containing %q", tc.script, err, tc.want)
		}
	}
}

// TestScriptReadmeExample runs the example of testdata/README.md, so that the
// format's documentation stays true.
func TestScriptReadmeExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```\n")
	example, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("README.md: no ``` example block")
	}
	cases, err := parseScript("README.md", example)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 1 {
		t.Fatalf("README.md example: %d cases, want 1", len(cases))
	}
	if err := runScriptCase(t, t, cases[0]); err != nil {
		t.Fatal(err)
	}
}
