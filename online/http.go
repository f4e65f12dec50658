package online

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
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

// queryReply is the answer of POST /v1/query: per output, one value per
// input row (null where the value is null).
type queryReply struct {
	Now     string           `json:"now"`
	Outputs []string         `json:"outputs"`
	Values  map[string][]any `json:"values"`
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
	mux.Handle("POST /v1/query", s.instrument("query", opt, s.serveQuery))
	mux.Handle("POST /v1/events/{source}", s.instrument("events", opt, s.serveEvents))
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
		if _, err := s.events.Read(ctx, []store.Span{storeSpanProbe}); err != nil {
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
// metric to an API handler.
func (s *Service) instrument(route string, opt HTTPOptions, h func(w http.ResponseWriter, r *http.Request) int) http.Handler {
	want := []byte("Bearer " + opt.AuthToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var code int
		if opt.AuthToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tessera"`)
			code = writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <token>")
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), opt.Timeout)
			r = r.WithContext(ctx)
			r.Body = http.MaxBytesReader(w, r.Body, opt.MaxBody)
			code = h(w, r)
			cancel()
		}
		s.Metrics.Requests.WithLabelValues(route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	})
}

func (s *Service) serveQuery(w http.ResponseWriter, r *http.Request) int {
	var body queryBody
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return writeErr(w, queryDecodeErr(err))
	}
	if dec.More() {
		return writeError(w, http.StatusBadRequest, "unexpected data after the JSON object")
	}
	q := Query{Inputs: body.Inputs, Outputs: body.Outputs}
	if body.Now != "" {
		us, err := parseTime(body.Now)
		if err != nil {
			return writeError(w, http.StatusBadRequest, "now: "+err.Error())
		}
		q.Now = time.UnixMicro(us).UTC()
	}
	res, err := s.Query(r.Context(), q)
	if err != nil {
		return writeErr(w, err)
	}
	reply := queryReply{Now: res.Now.UTC().Format(time.RFC3339Nano), Outputs: body.Outputs, Values: make(map[string][]any, len(res.Columns))}
	for _, c := range res.Columns {
		vals := make([]any, len(c.Values))
		for i, v := range c.Values {
			switch {
			case c.Valid != nil && !c.Valid[i], math.IsNaN(v), math.IsInf(v, 0):
				vals[i] = nil
			case c.Integer:
				vals[i] = int64(v)
			default:
				vals[i] = v
			}
		}
		reply.Values[c.Name] = vals
	}
	return writeJSON(w, http.StatusOK, reply)
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

func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request) int {
	n, err := s.Ingest(r.Context(), r.PathValue("source"), r.Body)
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
