package online

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tessera-fe/tessera/online/store"
)

// HTTPOptions bound what the HTTP API accepts.
type HTTPOptions struct {
	// AuthToken, when set, is the bearer token every /v1/ request must carry.
	AuthToken string
	// MaxBody bounds request bodies in bytes (default 8 MiB).
	MaxBody int64
	// Timeout bounds the work of one request (default 10s).
	Timeout time.Duration
}

// queryBody is the JSON of POST /v1/query.
type queryBody struct {
	Inputs  map[string][]any `json:"inputs"`
	Outputs []string         `json:"outputs"`
	Now     string           `json:"now,omitempty"`
}

// Handler returns the HTTP API: POST /v1/query, POST /v1/events/{source},
// GET /healthz, /readyz and /metrics.
func (s *Service) Handler(opt HTTPOptions) http.Handler {
	if opt.MaxBody <= 0 {
		opt.MaxBody = 8 << 20
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/query", s.instrument("query", opt, false, s.serveQuery))
	mux.Handle("POST /v1/events/{source}", s.instrument("events", opt, true, s.serveEvents))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.Ready() {
			http.Error(w, "tiles not loaded yet", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := s.store.Read(ctx, []store.Span{storeSpanProbe}); err != nil {
			http.Error(w, "online store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s; routes: POST /v1/query, POST /v1/events/{source}, GET /healthz, GET /readyz, GET /metrics", r.Method, r.URL.Path))
	})
	return mux
}

// instrument adds authentication, body and time bounds and the latency
// metric to an API handler. A detached handler keeps working when the
// client goes away (only the timeout stops it): an ingest whose body has
// arrived is stored or refused as a whole, whatever the connection does, so
// that a client retrying with its Idempotency-Key gets a definite answer.
func (s *Service) instrument(route string, opt HTTPOptions, detach bool, h func(ctx context.Context, w http.ResponseWriter, r *http.Request, opt *HTTPOptions) int) http.Handler {
	want := []byte("Bearer " + opt.AuthToken)
	ok := s.Metrics.Requests.WithLabelValues(route, "200")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var code int
		if opt.AuthToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tessera"`)
			code = writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <token>")
		} else {
			parent := r.Context()
			if detach {
				parent = context.WithoutCancel(parent)
			}
			ctx, cancel := context.WithTimeout(parent, opt.Timeout)
			code = h(ctx, w, r, &opt)
			cancel()
		}
		if code == http.StatusOK {
			ok.Observe(time.Since(start).Seconds())
			return
		}
		s.Metrics.Requests.WithLabelValues(route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	})
}

// queryState is the reusable memory of one query request.
type queryState struct {
	body  []byte
	scan  queryScan
	req   request
	reply []byte
}

var queryStates = sync.Pool{New: func() any { return new(queryState) }}

// maxPooled bounds the buffers kept for reuse.
const maxPooled = 1 << 20

// readBody reads all of r into buf, failing past limit bytes.
func readBody(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, &http.MaxBytesError{Limit: limit}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

var jsonContentType = []string{"application/json"}

func (s *Service) serveQuery(ctx context.Context, w http.ResponseWriter, r *http.Request, opt *HTTPOptions) int {
	st := queryStates.Get().(*queryState)
	defer func() {
		if cap(st.body) <= maxPooled && cap(st.reply) <= maxPooled {
			queryStates.Put(st)
		}
	}()
	var err error
	st.body, err = readBody(r.Body, st.body[:0], opt.MaxBody)
	if err != nil {
		return writeErr(w, readErr(err))
	}
	q := &st.req
	if parseQuery(st.body, &st.scan) {
		q.inputs, q.outputs, q.now = q.inputs[:0], q.outputs[:0], time.Time{}
		for _, in := range st.scan.inputs {
			var keys []keyIn
			if n := len(q.inputs); n < cap(q.inputs) {
				keys = q.inputs[:n+1][n].keys[:0]
			}
			for _, k := range in.keys {
				keys = append(keys, keyIn{text: string(k.text), num: k.num})
			}
			q.inputs = append(q.inputs, input{name: string(in.name), keys: keys})
		}
		// In name order, as decodeQuery gives them.
		slices.SortFunc(q.inputs, func(a, b input) int { return strings.Compare(a.name, b.name) })
		for _, o := range st.scan.outputs {
			text, ok := s.cachedOutput(o)
			if !ok {
				text = string(o)
			}
			q.outputs = append(q.outputs, text)
		}
		if st.scan.hasNow {
			us, err := parseTime(string(st.scan.now))
			if err != nil {
				return writeError(w, http.StatusBadRequest, "now: "+err.Error())
			}
			q.now = time.UnixMicro(us).UTC()
		}
	} else if code, err := s.decodeQuery(st.body, q); err != nil {
		return writeError(w, code, err.Error())
	}
	res, err := s.query(ctx, q)
	if err != nil {
		return writeErr(w, err)
	}
	st.reply = appendReply(st.reply[:0], res.Now, q.outputs, res)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(len(st.reply)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(st.reply)
	return http.StatusOK
}

// decodeQuery reads a query body with encoding/json, for the bodies
// parseQuery leaves to it; its errors name the field at fault.
func (s *Service) decodeQuery(b []byte, q *request) (int, error) {
	var body queryBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return http.StatusBadRequest, queryDecodeErr(err)
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("unexpected data after the JSON object")
	}
	*q = request{outputs: body.Outputs}
	var err error
	if q.inputs, err = inputsOf(body.Inputs); err != nil {
		return http.StatusBadRequest, err
	}
	if body.Now != "" {
		us, err := parseTime(body.Now)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("now: %w", err)
		}
		q.now = time.UnixMicro(us).UTC()
	}
	return 0, nil
}

func queryDecodeErr(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return readErr(err)
	}
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		return badRequest("field %q: want %s, not JSON %s (body: {\"inputs\": {\"user.id\": [1, 2]}, \"outputs\": [\"user.total[7d]\"], \"now\": optional RFC 3339})", typ.Field, goTypeName(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return badRequest("%s; valid fields: inputs, outputs, now", strings.TrimPrefix(err.Error(), "json: "))
	case errors.Is(err, io.EOF):
		return badRequest("empty body: send {\"inputs\": {...}, \"outputs\": [...]}")
	}
	return badRequest("invalid JSON: %v", err)
}

func goTypeName(t string) string {
	switch t {
	case "map[string][]interface {}":
		return "an object of key arrays"
	case "[]string":
		return "an array of feature references"
	case "[]interface {}":
		return "an array of keys"
	case "string":
		return "a string"
	}
	return t
}

// IdempotencyHeader is the request header that makes an ingest safe to
// retry, and ReplayedHeader the reply header that marks an answer given from
// the first request's receipt.
const (
	IdempotencyHeader = "Idempotency-Key"
	ReplayedHeader    = "Idempotent-Replayed"
)

func (s *Service) serveEvents(ctx context.Context, w http.ResponseWriter, r *http.Request, opt *HTTPOptions) int {
	r.Body = http.MaxBytesReader(w, r.Body, opt.MaxBody)
	keys := r.Header.Values(IdempotencyHeader)
	if len(keys) > 1 {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("header %s appears %d times: send it once", IdempotencyHeader, len(keys)))
	}
	var n int
	var err error
	if len(keys) == 1 {
		var replayed bool
		n, replayed, err = s.IngestOnce(ctx, r.PathValue("source"), keys[0], r.Body)
		if replayed {
			w.Header().Set(ReplayedHeader, "true")
		}
	} else {
		n, err = s.Ingest(ctx, r.PathValue("source"), r.Body)
	}
	if err != nil {
		return writeErr(w, err)
	}
	return writeJSON(w, http.StatusOK, map[string]int{"ingested": n})
}

func writeErr(w http.ResponseWriter, err error) int {
	var re *RequestError
	if errors.As(err, &re) {
		code := re.Status
		if code == 0 {
			code = http.StatusBadRequest
		}
		return writeError(w, code, re.Msg)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return writeError(w, http.StatusServiceUnavailable, "request timed out: "+err.Error())
	}
	return writeError(w, http.StatusInternalServerError, err.Error())
}

func writeError(w http.ResponseWriter, code int, msg string) int {
	return writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"encode the reply"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
	return code
}
