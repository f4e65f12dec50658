package online

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/offline"
)

// scanned turns a scanned body into a request, as serveQuery does.
func scanned(q *queryScan) (request, error) {
	var r request
	for _, in := range q.inputs {
		x := input{name: string(in.name)}
		for _, k := range in.keys {
			x.keys = append(x.keys, keyIn{text: string(k.text), num: k.num})
		}
		r.inputs = append(r.inputs, x)
	}
	slices.SortFunc(r.inputs, func(a, b input) int { return strings.Compare(a.name, b.name) })
	for _, o := range q.outputs {
		r.outputs = append(r.outputs, string(o))
	}
	if q.hasNow {
		us, err := parseTime(string(q.now))
		if err != nil {
			return r, err
		}
		r.now = time.UnixMicro(us).UTC()
	}
	return r, nil
}

// sameAsDecoder checks that a body parseQuery accepts reads the same with
// encoding/json.
func sameAsDecoder(t *testing.T, body string) bool {
	t.Helper()
	var q queryScan
	if !parseQuery([]byte(body), &q) {
		return false
	}
	fast, err := scanned(&q)
	var s Service
	var slow request
	_, derr := s.decodeQuery([]byte(body), &slow)
	if derr != nil && (err == nil || !strings.HasPrefix(derr.Error(), "now: ")) {
		t.Fatalf("%s: parseQuery accepted a body encoding/json refuses: %v", body, derr)
	}
	if (err == nil) != (derr == nil) {
		t.Fatalf("%s: now: fast %v, encoding/json %v", body, err, derr)
	}
	if err != nil {
		return true // both refuse the time
	}
	for _, r := range []*request{&fast, &slow} {
		for i := range r.inputs {
			if len(r.inputs[i].keys) == 0 {
				r.inputs[i].keys = nil
			}
		}
		if len(r.inputs) == 0 {
			r.inputs = nil
		}
		if len(r.outputs) == 0 {
			r.outputs = nil
		}
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%s:\nfast  %+v\njson  %+v", body, fast, slow)
	}
	return true
}

func TestParseQuery(t *testing.T) {
	accepted := []string{
		`{"inputs": {"user.id": [1, 2]}, "outputs": ["user.total[7d]"]}`,
		` { "outputs" : [ "a[1d]" , "b[all]" ] , "inputs" : { "user.id" : [ -12 , "u1", 0 ] , "merchant" : [ ] } , "now" : "2026-03-01T10:20:00Z" } `,
		`{"inputs": {}, "outputs": []}`,
		`{"inputs": {"user.id": ["é"]}, "outputs": ["x"], "now": "2026-03-01T10:20:00.123456Z"}`,
		`{"inputs": {"user.id": [123456789012345678]}, "outputs": ["x"]}`,
	}
	for _, b := range accepted {
		if !sameAsDecoder(t, b) {
			t.Errorf("parseQuery refused %s", b)
		}
	}
	// Left to encoding/json: its errors name the field.
	refused := []string{
		``, `null`, `[]`, `{}`,
		`{"inputs": {"user.id": [1]}}`,
		`{"inputs": {"user.id": [1.5]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [1e3]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [01]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [-0]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [1234567890123456789]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [null]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [true]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [1]}, "outputs": ["x\"y"]}`,
		`{"inputs": {"user.id": [1]}, "outputs": "x"}`,
		`{"inputs": {"user.id": [1]}, "outputs": ["x"], "now": null}`,
		`{"inputs": {"user.id": [1]}, "outputs": ["x"], "extra": 1}`,
		`{"inputs": {"user.id": [1]}, "outputs": ["x"], "outputs": ["y"]}`,
		`{"inputs": {"a": [1], "a": [2]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [1]}, "outputs": ["x"]} {}`,
		`{"inputs": {"user.id": [1,]}, "outputs": ["x"]}`,
		`{"inputs": {"user.id": [1]}, "outputs": ["x",]}`,
		"{\"inputs\": {\"user.id\": [\"\xff\"]}, \"outputs\": [\"x\"]}",
		`{"Inputs": {"user.id": [1]}, "outputs": ["x"]}`,
	}
	for _, b := range refused {
		var q queryScan
		if parseQuery([]byte(b), &q) {
			t.Errorf("parseQuery accepted %s", b)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add(`{"inputs": {"user.id": [1, 2]}, "outputs": ["user.total[7d]"]}`)
	f.Add(`{"inputs": {"user.id": ["a", -3], "m": []}, "outputs": ["a", "b"], "now": "2026-01-01T00:00:00Z"}`)
	f.Fuzz(func(t *testing.T, body string) {
		sameAsDecoder(t, body)
	})
}

// TestAppendReply checks the reply writer against encoding/json.
func TestAppendReply(t *testing.T) {
	res := &Result{Now: time.Date(2026, 3, 1, 10, 20, 0, 123000, time.UTC), Columns: []*offline.Column{
		{Name: "z.sum[7d]", Values: []float64{0.1, 1e-7, 1e21, -2.5, 123456789, math.Copysign(0, -1), 3e-320}},
		{Name: "a.count[1d]", Integer: true, Values: []float64{3, 0, 1 << 40, 7, 8, 9, 10}},
		{Name: `b.mean<"x">[all]`, Values: []float64{1, 2, math.NaN(), 4, math.Inf(1), 6, 7}, Valid: []bool{true, false, true, true, true, true, true}},
		{Name: "a.count[1d]", Integer: true, Values: []float64{3, 0, 1 << 40, 7, 8, 9, 10}},
	}}
	outputs := []string{"z.sum[7d]", " a.count[1d]", `b.mean<"x">[all]`, "a.count[1d]"}
	got := appendReply(nil, res.Now, outputs, res)
	values := map[string][]any{}
	for _, c := range res.Columns {
		vals := make([]any, len(c.Values))
		for i, v := range c.Values {
			switch {
			case c.Valid != nil && !c.Valid[i], math.IsNaN(v), math.IsInf(v, 0):
			case c.Integer:
				vals[i] = int64(v)
			default:
				vals[i] = v
			}
		}
		values[c.Name] = vals
	}
	want, err := json.Marshal(struct {
		Now     string           `json:"now"`
		Outputs []string         `json:"outputs"`
		Values  map[string][]any `json:"values"`
	}{res.Now.Format(time.RFC3339Nano), outputs, values})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want)+"\n" {
		t.Fatalf("appendReply:\n%s\nencoding/json:\n%s", got, want)
	}
}
