package online

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The query path reads and writes its JSON without reflection: a request
// body of the usual shape is scanned in place (parseQuery), anything else
// (escapes, floats, nulls, unknown or repeated fields, bad JSON) falls back
// to encoding/json, whose errors name the field at fault. Replies are
// appended to a reused buffer (appendReply).

// queryScan holds a scanned body; its slices point into the body and are
// reused from request to request.
type queryScan struct {
	inputs  []scanInput
	outputs [][]byte
	now     []byte
	hasNow  bool // now is given and not empty
}

type scanInput struct {
	name []byte
	keys []scanKey
}

type scanKey struct {
	text []byte
	num  bool
}

// parseQuery scans b, a JSON object with fields inputs (an object of arrays
// of integers or strings), outputs (an array of strings) and optionally now
// (a string). It reports false for anything else, leaving the verdict to
// encoding/json.
func parseQuery(b []byte, q *queryScan) bool {
	q.inputs, q.outputs, q.now, q.hasNow = q.inputs[:0], q.outputs[:0], nil, false
	p := scan{b: b}
	var seenIn, seenOut, seenNow bool
	if !p.byte('{') {
		return false
	}
	for {
		name, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		switch string(name) {
		case "inputs":
			if seenIn || !p.inputs(q) {
				return false
			}
			seenIn = true
		case "outputs":
			if seenOut || !p.byte('[') {
				return false
			}
			seenOut = true
			if !p.peek(']') {
				for {
					s, ok := p.str()
					if !ok {
						return false
					}
					q.outputs = append(q.outputs, s)
					if !p.byte(',') {
						break
					}
				}
			}
			if !p.byte(']') {
				return false
			}
		case "now":
			if seenNow {
				return false
			}
			seenNow = true
			if q.now, ok = p.str(); !ok {
				return false
			}
			q.hasNow = len(q.now) > 0 // "" means the clock's now, as for encoding/json
		default:
			return false
		}
		if p.byte('}') {
			break
		}
		if !p.byte(',') {
			return false
		}
	}
	p.ws()
	return p.i == len(p.b) && seenIn && seenOut
}

// inputs scans {"name": [keys], ...}.
func (p *scan) inputs(q *queryScan) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	for {
		name, ok := p.str()
		if !ok || !p.byte(':') || !p.byte('[') {
			return false
		}
		for _, in := range q.inputs {
			if string(in.name) == string(name) {
				return false
			}
		}
		var in *scanInput
		if n := len(q.inputs); n < cap(q.inputs) {
			q.inputs = q.inputs[:n+1]
			in = &q.inputs[n]
			in.name, in.keys = name, in.keys[:0]
		} else {
			q.inputs = append(q.inputs, scanInput{name: name})
			in = &q.inputs[n]
		}
		if !p.peek(']') {
			for {
				p.ws()
				var k scanKey
				if p.i < len(p.b) && p.b[p.i] == '"' {
					if k.text, ok = p.str(); !ok {
						return false
					}
				} else if k.text, ok = p.int(); ok {
					k.num = true
				} else {
					return false
				}
				in.keys = append(in.keys, k)
				if !p.byte(',') {
					break
				}
			}
		}
		if !p.byte(']') {
			return false
		}
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

type scan struct {
	b []byte
	i int
}

func (p *scan) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte skips white space and consumes c if it comes next.
func (p *scan) byte(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// peek skips white space and reports whether c comes next.
func (p *scan) peek(c byte) bool {
	p.ws()
	return p.i < len(p.b) && p.b[p.i] == c
}

// str scans a string without escapes or control characters, in valid
// UTF-8, and returns its contents.
func (p *scan) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

// int scans an integer in canonical form (no leading zeros, no "-0") of at
// most 18 digits, so that it fits an int64 and is its own decimal text.
func (p *scan) int() ([]byte, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || n > 18 || (p.b[digits] == '0' && (n > 1 || digits > start)) {
		return nil, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return nil, false
		}
	}
	return p.b[start:p.i], true
}

// appendReply appends the reply to a query: now, the outputs as sent, and
// the values by output name in sorted order (one entry per name).
func appendReply(b []byte, now time.Time, outputs []string, res *Result) []byte {
	b = append(b, `{"now":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","outputs":[`...)
	for i, o := range outputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, o)
	}
	b = append(b, `],"values":{`...)
	var order [8]int
	idx := order[:0]
	for i := range res.Columns {
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(x, y int) int {
		a, c := res.Columns[x].Name, res.Columns[y].Name
		switch {
		case a < c:
			return -1
		case a > c:
			return 1
		}
		return 0
	})
	for n, i := range idx {
		c := res.Columns[i]
		if n > 0 && res.Columns[idx[n-1]].Name == c.Name {
			continue // a repeated output: one entry
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.Name)
		b = append(b, ":["...)
		for r, v := range c.Values {
			if r > 0 {
				b = append(b, ',')
			}
			switch {
			case c.Valid != nil && !c.Valid[r], math.IsNaN(v), math.IsInf(v, 0):
				b = append(b, "null"...)
			case c.Integer:
				b = strconv.AppendInt(b, int64(v), 10)
			default:
				b = appendFloat(b, v)
			}
		}
		b = append(b, ']')
	}
	return append(b, "}}\n"...)
}

// appendFloat writes a float as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, and <, >, & as encoding/json escapes them.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
