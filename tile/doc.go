// Package tile owns the bucket grid and tiles: columnar batches of partial
// aggregate state, one row per (grouping key, bucket start), and building them
// from events.
package tile
