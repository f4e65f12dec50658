.PHONY: help test race bench lint fuzz demo

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

test: ## run the test suite
	go test ./...

race: ## run the test suite with the race detector
	go test -race ./...

bench: ## run the Go benchmarks (TESSERA_BENCH_SCALE=20M for the large scale)
	go test -run '^$$' -bench . -benchmem ./...

lint: ## vet and format check
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

fuzz: ## run each fuzz target for 20s
	go test ./feature -run '^$$' -fuzz FuzzParseDuration -fuzztime 20s
	go test ./feature -run '^$$' -fuzz FuzzParseRef -fuzztime 20s
	go test ./feature -run '^$$' -fuzz FuzzParse$$ -fuzztime 20s
	go test ./aggregate -run '^$$' -fuzz FuzzMerge -fuzztime 20s

demo: ## run the demo
	go run ./cmd/tessera demo

.PHONY: bench-peer
PEER_SCALE ?= 1M

bench-peer: ## tessera bench with the DuckDB peer in the table (PEER_SCALE=1M|20M; builds DuckDB with cgo, see bench/README.md)
	cd bench/duckdb && go build -o duckdb-peer .
	go run ./cmd/tessera bench --scale $(PEER_SCALE) --peer bench/duckdb/duckdb-peer
