package online

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-fe/tessera/online/store"
)

// Ingest reads events of a declared source, as a JSON array of objects or as
// JSON lines, and stores them for every tile set of that source. Each object
// holds the source's columns: the timestamp (RFC 3339, a zone-less time read
// as UTC, or integer microseconds since the epoch), the grouping keys, the
// values (null or absent for a null value) and the filter columns. Either all
// events are stored, durably, or none; it returns how many were read.
func (s *Service) Ingest(ctx context.Context, sourceName string, body io.Reader) (int, error) {
	evs, n, err := s.events(sourceName, body)
	if err != nil {
		return 0, err
	}
	if err := s.store.Append(ctx, evs); err != nil {
		return 0, fmt.Errorf("ingest %d events of source %s: %w", n, sourceName, err)
	}
	s.Metrics.Ingested.WithLabelValues(sourceName).Add(float64(n))
	return n, nil
}

// IngestOnce is Ingest guarded by an idempotency key: the first request
// with a key stores its events and a receipt of its result in one atomic
// write; a later request with the same key and the same source and body,
// while the receipt lasts (Options.IdempotencyWindow), stores nothing and
// returns the first result with replayed set. The same key with another
// source or body is a request error (HTTP 422). Requests that fail leave no
// receipt.
func (s *Service) IngestOnce(ctx context.Context, sourceName, key string, body io.Reader) (n int, replayed bool, err error) {
	if err := CheckIdempotencyKey(key); err != nil {
		return 0, false, err
	}
	h := sha256.New()
	io.WriteString(h, sourceName)
	h.Write([]byte{0})
	evs, n, err := s.events(sourceName, io.TeeReader(body, h))
	if err != nil {
		return 0, false, err
	}
	// The decoder stops at the end of the JSON; the digest covers the rest.
	if _, err := io.Copy(h, body); err != nil {
		return 0, false, readErr(err)
	}
	now := s.opt.Now().UnixMicro()
	rc := store.Receipt{Key: key, Reply: strconv.AppendInt(nil, int64(n), 10), Expires: now + s.opt.IdempotencyWindow.Microseconds()}
	h.Sum(rc.Digest[:0])
	prior, err := s.store.AppendOnce(ctx, evs, rc, now)
	if err != nil {
		return 0, false, fmt.Errorf("ingest %d events of source %s: %w", n, sourceName, err)
	}
	if prior == nil {
		s.Metrics.Ingested.WithLabelValues(sourceName).Add(float64(n))
		return n, false, nil
	}
	if prior.Digest != rc.Digest {
		return 0, false, &RequestError{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf(
			"header Idempotency-Key %q was first used, less than %s ago, with another request (a different source or body); send a new key with a new request, and the same body when retrying", key, s.opt.IdempotencyWindow)}
	}
	first, err := strconv.Atoi(string(prior.Reply))
	if err != nil {
		return 0, false, fmt.Errorf("ingest under idempotency key %q: damaged receipt %q", key, prior.Reply)
	}
	s.Metrics.Replayed.Inc()
	return first, true, nil
}

// CheckIdempotencyKey checks an Idempotency-Key header: 1 to 255 printable
// ASCII characters.
func CheckIdempotencyKey(key string) error {
	if key == "" || len(key) > store.MaxIdempotencyKeyBytes {
		return badRequest("header Idempotency-Key has %d bytes: send 1 to %d printable ASCII characters, e.g. a UUID", len(key), store.MaxIdempotencyKeyBytes)
	}
	for i := range len(key) {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return badRequest("header Idempotency-Key: byte %d (0x%02x) is not printable ASCII; send 1 to %d printable ASCII characters, e.g. a UUID", i+1, c, store.MaxIdempotencyKeyBytes)
		}
	}
	return nil
}

// events decodes and checks an ingest body and returns its events for every
// tile set of the source, in store order, and how many rows it held.
func (s *Service) events(sourceName string, body io.Reader) ([]store.Event, int, error) {
	src := s.cfg.Sources[sourceName]
	if src == nil {
		return nil, 0, badRequest("unknown source %q; declared sources: %s", sourceName, strings.Join(s.sourceNames(), ", "))
	}
	sets := s.bySource[sourceName]
	rows, err := decodeRows(body, s.opt.MaxEvents)
	if err != nil {
		return nil, 0, err
	}
	s.mu.RLock()
	kinds := map[string]bool{}
	known := map[string]bool{}
	for _, ts := range sets {
		kinds[ts.ID], known[ts.ID] = s.keyKind[ts.ID]
	}
	s.mu.RUnlock()
	evs := make([]store.Event, 0, len(rows)*len(sets))
	for i, row := range rows {
		t, err := eventTime(row, src.Timestamp)
		if err != nil {
			return nil, 0, badRequest("event %d: %v", i+1, err)
		}
		for _, ts := range sets {
			raw, ok := row[ts.Key]
			if !ok || raw == nil {
				return nil, 0, badRequest("event %d: key field %q is missing or null", i+1, ts.Key)
			}
			key, ok, err := normKey(raw, kinds[ts.ID], known[ts.ID])
			if err == nil && !ok {
				err = fmt.Errorf("%v is not an integer, and column %s of source %s holds integers", raw, ts.Key, sourceName)
			}
			if err != nil {
				return nil, 0, badRequest("event %d: field %q: %v", i+1, ts.Key, err)
			}
			if len(key) > store.MaxKeyBytes {
				return nil, 0, badRequest("event %d: field %q: key of %d bytes is longer than %d", i+1, ts.Key, len(key), store.MaxKeyBytes)
			}
			if ts.Filter != nil {
				if !filterPasses(row[ts.Filter.Column], ts.Filter.Equals) {
					continue
				}
			}
			ev := store.Event{TileSet: ts.ID, Key: key, TS: t}
			if ts.Value != "" {
				v, valid, err := eventValue(row[ts.Value])
				if err != nil {
					return nil, 0, badRequest("event %d: field %q: %v", i+1, ts.Value, err)
				}
				ev.Value, ev.Valid = v, valid
			}
			evs = append(evs, ev)
		}
	}
	// In store order: one bucket lookup per tile set and sequential inserts
	// in the embedded store's B+tree.
	slices.SortStableFunc(evs, func(a, b store.Event) int {
		if c := strings.Compare(a.TileSet, b.TileSet); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.Key), len(b.Key)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return cmp.Compare(a.TS, b.TS)
	})
	return evs, len(rows), nil
}

func (s *Service) sourceNames() []string {
	names := make([]string, 0, len(s.cfg.Sources))
	for n := range s.cfg.Sources {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// decodeRows reads a JSON array of objects or a sequence of objects (JSON
// lines), at most max of them.
func decodeRows(body io.Reader, max int) ([]map[string]any, error) {
	br := bufio.NewReader(body)
	first, err := firstByte(br)
	if err == io.EOF {
		return nil, badRequest("the body holds no event: send a JSON array of objects or one JSON object per line")
	}
	if err != nil {
		return nil, readErr(err)
	}
	dec := json.NewDecoder(br)
	dec.UseNumber()
	var rows []map[string]any
	next := func() error {
		if len(rows) >= max {
			return badRequest("more than %d events in one request; split the batch", max)
		}
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return decodeErr(len(rows)+1, err)
		}
		if row == nil {
			return badRequest("event %d: want a JSON object, not null", len(rows)+1)
		}
		rows = append(rows, row)
		return nil
	}
	if first == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, decodeErr(1, err)
		}
		for dec.More() {
			if err := next(); err == io.EOF {
				return nil, badRequest("the JSON array is not closed")
			} else if err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, decodeErr(len(rows)+1, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, badRequest("unexpected data after the JSON array")
		}
		return rows, nil
	}
	for {
		if err := next(); err == io.EOF {
			return rows, nil
		} else if err != nil {
			return nil, err
		}
	}
}

func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\n' && b != '\r' && b != '\t' {
			return b, br.UnreadByte()
		}
	}
}

func decodeErr(n int, err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return readErr(err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return badRequest("event %d: want a JSON object, not %s", n, typ.Value)
	}
	return badRequest("event %d: invalid JSON: %v", n, err)
}

// readErr turns a failed body read into a request error.
func readErr(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &RequestError{Msg: fmt.Sprintf("request body is larger than %d bytes; split the batch", tooBig.Limit), Status: http.StatusRequestEntityTooLarge}
	}
	return badRequest("read the request body: %v", err)
}

// eventTime reads the timestamp field of an event.
func eventTime(row map[string]any, field string) (int64, error) {
	raw, ok := row[field]
	if !ok || raw == nil {
		return 0, fmt.Errorf("timestamp field %q is missing or null", field)
	}
	switch x := raw.(type) {
	case json.Number:
		us, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %q: %s is not integer microseconds since the epoch (or send an RFC 3339 string)", field, x)
		}
		return us, nil
	case string:
		t, err := parseTime(x)
		if err != nil {
			return 0, fmt.Errorf("field %q: %v", field, err)
		}
		return t, nil
	}
	return 0, fmt.Errorf("field %q: want an RFC 3339 string or integer microseconds, not %T", field, raw)
}

// parseTime parses RFC 3339, or a time without a zone read as UTC.
func parseTime(s string) (int64, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMicro(), nil
		}
	}
	return 0, fmt.Errorf("%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
}

// eventValue reads a value field: a number, or null/absent for null.
func eventValue(raw any) (float64, bool, error) {
	switch x := raw.(type) {
	case nil:
		return 0, false, nil
	case json.Number:
		v, err := strconv.ParseFloat(x.String(), 64)
		if err != nil || math.IsInf(v, 0) {
			return 0, false, fmt.Errorf("%s is not a finite number", x)
		}
		return v, true, nil
	case bool:
		if x {
			return 1, true, nil
		}
		return 0, true, nil
	}
	return 0, false, fmt.Errorf("want a number or null, not %T", raw)
}

// filterPasses compares a field's text with a filter's value as the source
// readers do: the field's string form equals the YAML scalar.
func filterPasses(raw any, equals string) bool {
	switch x := raw.(type) {
	case nil:
		return false
	case string:
		return x == equals
	case json.Number:
		if x.String() == equals {
			return true
		}
		a, err1 := strconv.ParseFloat(x.String(), 64)
		b, err2 := strconv.ParseFloat(equals, 64)
		return err1 == nil && err2 == nil && a == b
	case bool:
		return strconv.FormatBool(x) == equals
	}
	return false
}

// normKey turns a JSON key into the text the stores use: int keys in
// decimal. ok is false for a key that int data cannot hold (a non-numeric
// string): it matches nothing.
func normKey(raw any, str, known bool) (key string, ok bool, err error) {
	switch x := raw.(type) {
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return "", false, fmt.Errorf("%s is not an integer key", x)
		}
		return strconv.FormatInt(n, 10), true, nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return "", false, fmt.Errorf("%v is not an integer key", x)
		}
		return strconv.FormatInt(int64(x), 10), true, nil
	case int64:
		return strconv.FormatInt(x, 10), true, nil
	case int:
		return strconv.Itoa(x), true, nil
	case string:
		if known && !str {
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil {
				return "", false, nil
			}
			return strconv.FormatInt(n, 10), true, nil
		}
		return x, true, nil
	case nil:
		return "", false, fmt.Errorf("null key: %w", errNotKey)
	}
	return "", false, fmt.Errorf("%w, not %T", errNotKey, raw)
}
