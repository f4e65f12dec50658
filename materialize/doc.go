// Package materialize builds tiles from raw events and publishes them to the
// tile store: backfills over a time range, in one pass over each source.
package materialize
