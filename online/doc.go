// Package online serves feature values as of now from the same tiles that
// build training sets, plus the events ingested since the tile store last
// covered them.
//
// # The rule that prevents double counting
//
// A tile set's committed tiles cover the bucket ranges of its manifest's
// coverage; the end of the last range is the watermark. For a key, an input
// time t and a window W, the value merges
//
//   - the committed tiles of every covered bucket in [floor(t-W), floor(t)),
//   - the ingested events of every bucket in [floor(t-W), floor(t)) that the
//     coverage lacks, and
//   - the ingested events of the head bucket with floor(t) <= ts < t, whether
//     or not it is covered (a tile holds the whole bucket; the head is cut at t).
//
// Each bucket is read from exactly one place, so an event that is both tiled
// and ingested counts once; the value equals the offline query with
// use_materialized_offline_query and align_offline_window_with_materialization
// for a spine row at t over the same events. An event ingested into a bucket
// the store already covers is served only through the head bucket; the
// covered bucket changes when a backfill (its lookback) re-tiles it from the
// source files.
//
// An ingest request may carry an idempotency key (IngestOnce): its events
// and a receipt of its result are stored in one atomic write, and a retry
// with the same key and body is answered from the receipt.
//
// Ingested events older than the watermark minus the retention are pruned
// after each backfill; queries whose head bucket lies before that horizon are
// refused, since its events are gone (use the offline query for the past).
package online
