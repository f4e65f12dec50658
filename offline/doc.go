// Package offline builds point-in-time training sets: for each spine row
// (key, input time) and each requested feature window it computes the
// feature's value from raw events (exact) or from tiles (materialized), as
// DESIGN.md defines each planner mode. It owns the planner (which data each
// output reads, where tiles are missing and must fall back to raw events) and
// the executors (per-key sweeps over sorted rows).
package offline
