package source

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// rawColumn describes a column for writeRaw: a Parquet node and one value per
// row (nil for null).
type rawColumn struct {
	name   string
	node   parquet.Node
	values []any
}

// writeRaw writes a Parquet file with exactly the given physical and logical
// types, for testing how Read converts them.
func writeRaw(t *testing.T, path string, cols []rawColumn, opts ...parquet.WriterOption) {
	t.Helper()
	group := make(orderedGroup, len(cols))
	for j, c := range cols {
		group[j] = field{Node: c.node, name: c.name}
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, append([]parquet.WriterOption{parquet.NewSchema("test", group)}, opts...)...)
	n := 0
	if len(cols) > 0 {
		n = len(cols[0].values)
	}
	rows := make([]parquet.Row, n)
	for i := range rows {
		for j, c := range cols {
			v := c.values[i]
			def := 0
			if c.node.Optional() {
				def = 1
			}
			if v == nil {
				rows[i] = append(rows[i], parquet.Value{}.Level(0, 0, j))
			} else {
				rows[i] = append(rows[i], parquet.ValueOf(v).Level(0, def, j))
			}
		}
	}
	if _, err := w.WriteRows(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string, req []Request) *Table {
	t.Helper()
	tab, err := Read(path, req, Options{})
	if err != nil {
		t.Fatalf("Read(%s): %v", path, err)
	}
	return tab
}

// wantErr runs Read and checks that it fails with every substring in the
// message.
func wantErr(t *testing.T, path string, req []Request, subs ...string) {
	t.Helper()
	tab, err := Read(path, req, Options{})
	if err == nil {
		t.Fatalf("Read(%s) = %d rows, want an error containing %q", path, tab.Rows, subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Read(%s) error %q does not contain %q", path, err, s)
		}
	}
}

// sampleTable holds every kind, each both with and without nulls, over
// enough rows to span several pages and write chunks.
func sampleTable(n int) *Table {
	mk := func(name string, k Kind, nulls bool) *Column {
		c := &Column{Name: name, Kind: k}
		if nulls {
			c.Valid = make([]bool, n)
		}
		for i := 0; i < n; i++ {
			switch k {
			case Int64:
				c.Ints = append(c.Ints, int64(i*7919)-int64(n)*3000)
			case Timestamp:
				c.Ints = append(c.Ints, 1_700_000_000_000_000+int64(i)*1_234_567-int64(i%3)*1_000_000_000_000_000)
			case Float64:
				c.Floats = append(c.Floats, float64(i)/3-17.25+[]float64{0, 1e-9, 1e25, -2.5e-7}[i%4])
			case String:
				c.Strs = append(c.Strs, []string{"alpha", "beta, with comma", "quote \" inside", "ünïcode", "", "line\nbreak"}[i%6]+strings.Repeat("x", i%5))
			case Bool:
				c.Bools = append(c.Bools, i%3 == 1)
			}
			if nulls {
				c.Valid[i] = i%5 != 2
				if !c.Valid[i] {
					switch k {
					case Int64, Timestamp:
						c.Ints[i] = 0
					case Float64:
						c.Floats[i] = 0
					case String:
						c.Strs[i] = ""
					case Bool:
						c.Bools[i] = false
					}
				}
			}
		}
		return c
	}
	t := &Table{Rows: n}
	for _, k := range []Kind{Int64, Float64, String, Bool, Timestamp} {
		t.Columns = append(t.Columns, mk(k.String(), k, false), mk(k.String()+"_null", k, true))
	}
	return t
}

// sameColumn compares two columns, treating a nil Valid as all valid.
func sameColumn(t *testing.T, got, want *Column) {
	t.Helper()
	if got == nil {
		t.Fatalf("column %q missing", want.Name)
	}
	if got.Name != want.Name || got.Kind != want.Kind || got.Len() != want.Len() {
		t.Fatalf("column %q: got %s/%s/%d rows, want %s/%s/%d", want.Name, got.Name, got.Kind, got.Len(), want.Name, want.Kind, want.Len())
	}
	for i := 0; i < want.Len(); i++ {
		if got.IsNull(i) != want.IsNull(i) {
			t.Fatalf("column %q row %d: null %v, want %v", want.Name, i, got.IsNull(i), want.IsNull(i))
		}
		if want.IsNull(i) {
			continue
		}
		g, _ := got.Text(i)
		w, _ := want.Text(i)
		if g != w {
			t.Fatalf("column %q row %d: got %q, want %q", want.Name, i, g, w)
		}
		if want.Kind == Float64 && got.Floats[i] != want.Floats[i] {
			t.Fatalf("column %q row %d: got %v, want %v", want.Name, i, got.Floats[i], want.Floats[i])
		}
	}
}

func TestRoundTripParquet(t *testing.T) {
	dir := t.TempDir()
	want := sampleTable(40_000)
	path := filepath.Join(dir, "all.parquet")
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, path, nil)
	if got.Rows != want.Rows || len(got.Columns) != len(want.Columns) {
		t.Fatalf("got %d rows x %d columns, want %d x %d", got.Rows, len(got.Columns), want.Rows, len(want.Columns))
	}
	for j, w := range want.Columns {
		if got.Columns[j].Name != w.Name {
			t.Errorf("column %d is %q, want %q (order must be kept)", j, got.Columns[j].Name, w.Name)
		}
		sameColumn(t, got.Columns[j], w)
	}
	if got.Column("int64").Valid != nil {
		t.Error("a required column read back with a Valid slice")
	}
	// Text role on Parquet equals the CSV form of every kind.
	for _, w := range want.Columns {
		txt := mustRead(t, path, []Request{{w.Name, Text}}).Columns[0]
		if txt.Kind != String {
			t.Fatalf("Text of %s is %s", w.Name, txt.Kind)
		}
		for i := 0; i < want.Rows; i++ {
			ws, wok := w.Text(i)
			if txt.IsNull(i) == wok || (wok && txt.Strs[i] != ws) {
				t.Fatalf("Text %s row %d: got %q (null %v), want %q (null %v)", w.Name, i, txt.Strs[i], txt.IsNull(i), ws, !wok)
			}
		}
	}
	// A write over an existing file replaces it and leaves no temporary file.
	if err := Write(path, sampleTable(3)); err != nil {
		t.Fatal(err)
	}
	if n := mustRead(t, path, nil).Rows; n != 3 {
		t.Errorf("rewritten file has %d rows, want 3", n)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after writes, want 1", len(entries))
	}
}

func TestRoundTripCSV(t *testing.T) {
	dir := t.TempDir()
	want := sampleTable(3_000)
	path := filepath.Join(dir, "all.csv")
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, path, nil)
	if got.Rows != want.Rows {
		t.Fatalf("got %d rows, want %d", got.Rows, want.Rows)
	}
	for j, w := range want.Columns {
		g := got.Columns[j]
		if g.Name != w.Name || g.Kind != String {
			t.Fatalf("column %d: %q %s, want %q string", j, g.Name, g.Kind, w.Name)
		}
		for i := 0; i < want.Rows; i++ {
			ws, wok := w.Text(i)
			if wok && ws == "" {
				wok = false // an empty string reads back as null in CSV
			}
			if g.IsNull(i) == wok || (wok && g.Strs[i] != ws) {
				t.Fatalf("column %s row %d: got %q (null %v), want %q", w.Name, i, g.Strs[i], g.IsNull(i), ws)
			}
		}
	}
	typed := mustRead(t, path, []Request{
		{"int64", Key}, {"timestamp", Time}, {"float64", Value}, {"float64_null", Value}, {"int64_null", Value}, {"bool", Key},
	})
	sameColumn(t, typed.Columns[0], want.Column("int64"))
	sameColumn(t, typed.Columns[1], want.Column("timestamp"))
	sameColumn(t, typed.Columns[2], want.Column("float64"))
	sameColumn(t, typed.Columns[3], want.Column("float64_null"))
	in := want.Column("int64_null")
	for i, f := range typed.Columns[4].Floats {
		if typed.Columns[4].IsNull(i) != in.IsNull(i) || (!in.IsNull(i) && f != float64(in.Ints[i])) {
			t.Fatalf("int64_null as value row %d: %v", i, f)
		}
	}
	if typed.Columns[5].Kind != String {
		t.Errorf("non-integer CSV key read as %s, want string", typed.Columns[5].Kind)
	}

	// A single column of nulls keeps its rows.
	one := &Table{Rows: 3, Columns: []*Column{{Name: "x", Kind: Int64, Ints: []int64{1, 0, 3}, Valid: []bool{true, false, true}}}}
	p1 := filepath.Join(dir, "one.csv")
	if err := Write(p1, one); err != nil {
		t.Fatal(err)
	}
	r := mustRead(t, p1, []Request{{"x", Value}})
	if r.Rows != 3 || !r.Columns[0].IsNull(1) || r.Columns[0].Floats[2] != 3 {
		t.Errorf("single nullable column: %+v", r.Columns[0])
	}
}

func TestCSVFormats(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.csv")
	writeFile(t, path, "\ufeffk,ts,v\n"+
		"7,2024-03-01T10:00:00Z,1\n"+
		"8,2024-03-01T10:00:00.123456Z,2.5\n"+
		"9,2024-03-01T12:00:00+02:00,\n"+
		"10,2024-03-01T10:00:00,-3e2\n"+
		"11,2024-03-01 10:00:00.5,4\n"+
		"12,2024-03-01,5\n")
	tab := mustRead(t, path, []Request{{"k", Key}, {"ts", Time}, {"v", Value}})
	base := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).UnixMicro()
	wantTS := []int64{base, base + 123456, base, base, base + 500000, base - 10*3600*1_000_000}
	if !reflect.DeepEqual(tab.Columns[1].Ints, wantTS) {
		t.Errorf("times = %v, want %v", tab.Columns[1].Ints, wantTS)
	}
	if tab.Columns[0].Kind != Int64 || !reflect.DeepEqual(tab.Columns[0].Ints, []int64{7, 8, 9, 10, 11, 12}) {
		t.Errorf("keys = %s %v", tab.Columns[0].Kind, tab.Columns[0].Ints)
	}
	v := tab.Columns[2]
	if !v.IsNull(2) || v.IsNull(0) || v.Floats[3] != -300 || v.Floats[1] != 2.5 {
		t.Errorf("values = %v valid %v", v.Floats, v.Valid)
	}
	// Header only: zero rows, not an error.
	hp := filepath.Join(dir, "header.csv")
	writeFile(t, hp, "k,ts\n")
	if h := mustRead(t, hp, []Request{{"k", Key}, {"ts", Time}}); h.Rows != 0 {
		t.Errorf("header-only CSV has %d rows", h.Rows)
	}
}

func TestParquetTypes(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	micros := base.UnixMicro()
	path := filepath.Join(dir, "types.parquet")
	writeRaw(t, path, []rawColumn{
		{"ms", parquet.Timestamp(parquet.Millisecond), []any{base.UnixMilli(), base.UnixMilli() + 1}},
		{"ns", parquet.Timestamp(parquet.Nanosecond), []any{base.UnixNano() + 999, int64(-1)}},
		{"local", parquet.Optional(parquet.TimestampAdjusted(parquet.Microsecond, false)), []any{micros, nil}},
		{"day", parquet.Date(), []any{int32(19783), int32(-1)}},
		{"i32", parquet.Int(32), []any{int32(-5), int32(1 << 30)}},
		{"u32", parquet.Uint(32), []any{int32(-1), int32(3)}},
		{"f32", parquet.Leaf(parquet.FloatType), []any{float32(1.5), float32(-2)}},
		{"plain", parquet.Leaf(parquet.Int64Type), []any{int64(1), int64(2)}},
		{"s", parquet.Optional(parquet.String()), []any{nil, "b"}},
	}, parquet.Compression(&parquet.Zstd))

	tab := mustRead(t, path, nil)
	check := func(name string, kind Kind, want []int64) {
		t.Helper()
		c := tab.Column(name)
		if c.Kind != kind || !reflect.DeepEqual(c.Ints, want) {
			t.Errorf("%s: %s %v, want %s %v", name, c.Kind, c.Ints, kind, want)
		}
	}
	check("ms", Timestamp, []int64{micros, micros + 1000})
	check("ns", Timestamp, []int64{micros, -1})
	check("local", Timestamp, []int64{micros, 0})
	check("day", Timestamp, []int64{time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), -86_400_000_000})
	check("i32", Int64, []int64{-5, 1 << 30})
	check("u32", Int64, []int64{math.MaxUint32, 3})
	check("plain", Int64, []int64{1, 2})
	if c := tab.Column("local"); !c.IsNull(1) || c.IsNull(0) {
		t.Errorf("local nulls: %v", c.Valid)
	}
	if c := tab.Column("f32"); c.Kind != Float64 || !reflect.DeepEqual(c.Floats, []float64{1.5, -2}) {
		t.Errorf("f32: %s %v", c.Kind, c.Floats)
	}
	if c := tab.Column("s"); !c.IsNull(0) || c.Strs[1] != "b" {
		t.Errorf("s: %v %v", c.Strs, c.Valid)
	}
	roles := mustRead(t, path, []Request{{"i32", Key}, {"ms", Time}, {"day", Time}, {"i32", Value}, {"ms", Text}})
	if roles.Columns[0].Kind != Int64 || roles.Columns[1].Kind != Timestamp || roles.Columns[3].Floats[1] != 1<<30 {
		t.Errorf("roles: %+v", roles.Columns)
	}
	if s := roles.Columns[4].Strs[0]; s != "2024-03-01T10:00:00.000000Z" {
		t.Errorf("timestamp text = %q", s)
	}
	wantErr(t, path, []Request{{"plain", Time}}, path, `"plain"`, "not a timestamp")
	wantErr(t, path, []Request{{"local", Time}}, path, "row 2", `"local"`, "null")
	wantErr(t, path, []Request{{"s", Value}}, path, `"s"`, "string", "numeric")
	wantErr(t, path, []Request{{"s", Key}}, path, "row 1", `"s"`, "key")
	wantErr(t, path, []Request{{"f32", Key}}, path, `"f32"`, "integers or strings")
}

// TestDictionaryAndPages reads dictionary-encoded, multi-page, multi-row-group
// columns with nulls scattered across page boundaries.
func TestDictionaryAndPages(t *testing.T) {
	const n = 50_000
	keys := make([]any, n)
	vals := make([]any, n)
	ints := make([]any, n)
	for i := range keys {
		keys[i] = []string{"u1", "u2", "u3"}[i%3]
		if i%7 != 3 {
			vals[i] = float64(i)
		}
		ints[i] = int64(i % 11)
	}
	path := filepath.Join(t.TempDir(), "dict.parquet")
	writeRaw(t, path, []rawColumn{
		{"k", parquet.Encoded(parquet.String(), &parquet.RLEDictionary), keys},
		{"v", parquet.Optional(parquet.Encoded(parquet.Leaf(parquet.DoubleType), &parquet.RLEDictionary)), vals},
		{"i", parquet.Encoded(parquet.Int(64), &parquet.RLEDictionary), ints},
	}, parquet.PageBufferSize(4096), parquet.MaxRowsPerRowGroup(12_345))
	tab := mustRead(t, path, []Request{{"k", Key}, {"v", Value}, {"i", Key}})
	if tab.Rows != n {
		t.Fatalf("rows = %d", tab.Rows)
	}
	for i := 0; i < n; i++ {
		if tab.Columns[0].Strs[i] != keys[i] {
			t.Fatalf("k row %d = %q", i, tab.Columns[0].Strs[i])
		}
		v := tab.Columns[1]
		if (vals[i] == nil) != v.IsNull(i) || (vals[i] != nil && v.Floats[i] != vals[i]) {
			t.Fatalf("v row %d = %v null %v, want %v", i, v.Floats[i], v.IsNull(i), vals[i])
		}
		if tab.Columns[2].Ints[i] != ints[i] {
			t.Fatalf("i row %d = %d", i, tab.Columns[2].Ints[i])
		}
	}
}

func TestGlobDirectoryStats(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, start, n int) {
		tab := &Table{Rows: n, Columns: []*Column{{Name: "k", Kind: Int64}, {Name: "v", Kind: Float64}}}
		for i := 0; i < n; i++ {
			tab.Columns[0].Ints = append(tab.Columns[0].Ints, int64(start+i))
			tab.Columns[1].Floats = append(tab.Columns[1].Floats, float64(start+i)/2)
		}
		if err := Write(filepath.Join(dir, name), tab); err != nil {
			t.Fatal(err)
		}
	}
	mk("b.parquet", 100, 5)
	mk("a.parquet", 0, 3)
	mk("c.csv", 200, 4)
	writeFile(t, filepath.Join(dir, "notes.txt"), "ignored")
	req := []Request{{"k", Key}, {"v", Value}}

	var st Stats
	all, err := Read(dir, req, Options{Stats: &st})
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []int64{0, 1, 2, 100, 101, 102, 103, 104, 200, 201, 202, 203}
	if !reflect.DeepEqual(all.Columns[0].Ints, wantKeys) || all.Rows != 12 {
		t.Errorf("directory keys = %v", all.Columns[0].Ints)
	}
	if all.Columns[1].Floats[11] != 101.5 {
		t.Errorf("directory values = %v", all.Columns[1].Floats)
	}
	if st.Files.Load() != 3 || st.Rows.Load() != 12 || st.Bytes.Load() <= 0 {
		t.Errorf("stats = %d files, %d rows, %d bytes", st.Files.Load(), st.Rows.Load(), st.Bytes.Load())
	}
	glob, err := Read(filepath.Join(dir, "*.parquet"), req, Options{Stats: &st})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(glob.Columns[0].Ints, wantKeys[:8]) {
		t.Errorf("glob keys = %v", glob.Columns[0].Ints)
	}
	if st.Rows.Load() != 20 || st.Files.Load() != 5 {
		t.Errorf("stats after two reads = %d rows, %d files", st.Rows.Load(), st.Files.Load())
	}
	// nil request: every column of the first file.
	if nilReq := mustRead(t, filepath.Join(dir, "*.parquet"), nil); len(nilReq.Columns) != 2 || nilReq.Rows != 8 {
		t.Errorf("nil request: %d columns, %d rows", len(nilReq.Columns), nilReq.Rows)
	}

	// A header-only CSV adds no rows and takes the other files' key kind.
	writeFile(t, filepath.Join(dir, "a0.csv"), "k,v\n")
	withEmpty := mustRead(t, dir, req)
	if withEmpty.Rows != 12 || withEmpty.Columns[0].Kind != Int64 {
		t.Errorf("with a header-only CSV: %d rows, key %s", withEmpty.Rows, withEmpty.Columns[0].Kind)
	}

	// Mixed key kinds across files.
	writeFile(t, filepath.Join(dir, "d.csv"), "k,v\nuser9,1\n")
	wantErr(t, dir, req, `"k"`, "int64", "string", "a.parquet", "d.csv")
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	events := p("events.parquet")
	if err := Write(events, &Table{Rows: 3, Columns: []*Column{
		{Name: "user_id", Kind: Int64, Ints: []int64{1, 2, 0}, Valid: []bool{true, true, false}},
		{Name: "amount", Kind: Float64, Floats: []float64{1, math.NaN(), 2}},
		{Name: "status", Kind: String, Strs: []string{"ok", "declined", "ok"}},
	}}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, p("nothing.parquet"), nil, "nothing.parquet", "matches no file")
	wantErr(t, p("*.nothing"), nil, "matches no file")
	wantErr(t, events, []Request{{"ts", Time}}, events, `"ts"`, "user_id, amount, status")
	wantErr(t, events, []Request{{"user_id", Key}}, events, "row 3", `"user_id"`)
	wantErr(t, events, []Request{{"amount", Value}}, events, "row 2", `"amount"`, "NaN")
	wantErr(t, events, []Request{{"status", Value}}, events, `"status"`, "string")

	csvPath := p("events.csv")
	writeFile(t, csvPath, "user_id,ts,amount\n1,2024-01-01T00:00:00Z,1\n,2024-01-01T00:00:00Z,2\n")
	wantErr(t, csvPath, []Request{{"user_id", Key}}, csvPath, "line 3", `"user_id"`, "empty")
	wantErr(t, csvPath, []Request{{"nope", Key}}, csvPath, `"nope"`, "user_id, ts, amount")
	bad := p("bad.csv")
	writeFile(t, bad, "ts,amount\n2024-01-01T00:00:00Z,1\nyesterday,abc\n")
	wantErr(t, bad, []Request{{"ts", Time}}, bad, "line 3", `"ts"`, `"yesterday"`, "RFC 3339", "2006-01-02")
	wantErr(t, bad, []Request{{"amount", Value}}, bad, "line 3", `"amount"`, `"abc"`)
	nan := p("nan.csv")
	writeFile(t, nan, "amount\n1\nNaN\n")
	wantErr(t, nan, []Request{{"amount", Value}}, nan, "line 3", "finite")
	ragged := p("ragged.csv")
	writeFile(t, ragged, "a,b\n1,2\n3\n")
	wantErr(t, ragged, []Request{{"a", Key}}, ragged, "line 3")

	empty := p("empty.csv")
	writeFile(t, empty, "")
	wantErr(t, empty, nil, empty, "has no rows")
	emptyPq := p("empty.parquet")
	writeRaw(t, emptyPq, []rawColumn{{"k", parquet.Int(64), nil}})
	wantErr(t, emptyPq, nil, emptyPq, "has no rows")
	txt := p("data.txt")
	writeFile(t, txt, "x")
	wantErr(t, txt, nil, txt, "unsupported", ".parquet or .csv")
	notPq := p("fake.parquet")
	writeFile(t, notPq, "user_id\n1\n")
	wantErr(t, notPq, nil, notPq)
}

// TestCorruptParquet truncates the file and flips every byte of it in turn: each
// read of the named columns must fail or return exactly the original rows,
// never altered ones.
func TestCorruptParquet(t *testing.T) {
	dir := t.TempDir()
	src := sampleTable(100)
	good := filepath.Join(dir, "good.parquet")
	if err := Write(good, src); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var req []Request
	for _, c := range src.Columns {
		req = append(req, Request{Name: c.Name})
	}
	want := mustRead(t, good, req)
	path := filepath.Join(dir, "bad.parquet")
	for _, n := range []int{len(data) - 1, len(data) - 9, len(data) / 2, 4} {
		writeFile(t, path, string(data[:n]))
		wantErr(t, path, nil, path)
	}
	// Every byte of the footer (which has no checksum), every other byte of
	// the pages (which do).
	footer := len(data) - 8 - int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	writeFile(t, path, string(data))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	silent := 0
	for i := 0; i < len(data); i++ {
		if i < footer && i%2 != 0 {
			continue
		}
		if _, err := f.WriteAt([]byte{data[i] ^ 0x5a}, int64(i)); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path, req, Options{})
		if _, werr := f.WriteAt(data[i:i+1], int64(i)); werr != nil {
			t.Fatal(werr)
		}
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("flip at %d: error %q does not name the file", i, err)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			silent++
			t.Errorf("flip at byte %d of %d: read succeeded with different data", i, len(data))
		}
	}
	if silent > 0 {
		t.Errorf("%d flipped files read without error but with altered data", silent)
	}
}

func TestSchema(t *testing.T) {
	dir := t.TempDir()
	pq := filepath.Join(dir, "s.parquet")
	if err := Write(pq, sampleTable(4)); err != nil {
		t.Fatal(err)
	}
	info, err := Schema(pq)
	if err != nil {
		t.Fatal(err)
	}
	if len(info) != 10 || info[0] != (ColumnInfo{"int64", Int64}) || info[9] != (ColumnInfo{"timestamp_null", Timestamp}) || info[5] != (ColumnInfo{"string_null", String}) {
		t.Errorf("parquet schema = %v", info)
	}
	cp := filepath.Join(dir, "s.csv")
	writeFile(t, cp, "i,f,t,s,e\n1,1.5,2024-01-01,a,\n-2,3,2024-01-01T00:00:00Z,b,\n,,,,\n")
	info, err = Schema(cp)
	if err != nil {
		t.Fatal(err)
	}
	want := []ColumnInfo{{"i", Int64}, {"f", Float64}, {"t", Timestamp}, {"s", String}, {"e", String}}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("csv schema = %v, want %v", info, want)
	}
	if _, err := Schema(filepath.Join(dir, "none.csv")); err == nil {
		t.Error("Schema of a missing file succeeded")
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	ok := &Table{Rows: 1, Columns: []*Column{{Name: "a", Kind: Int64, Ints: []int64{1}}}}
	if err := Write(filepath.Join(dir, "out.json"), ok); err == nil || !strings.Contains(err.Error(), ".parquet or .csv") {
		t.Errorf("unsupported extension: %v", err)
	}
	short := &Table{Rows: 2, Columns: []*Column{{Name: "a", Kind: Int64, Ints: []int64{1}}}}
	for _, name := range []string{"short.parquet", "short.csv"} {
		err := Write(filepath.Join(dir, name), short)
		if err == nil || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("short column: %v", err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left %d files", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "x.csv"), ok); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
