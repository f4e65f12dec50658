// Package crashtest holds the tile store's process-level tests: a backfill
// killed with SIGKILL at random points must leave a store that verifies clean
// and answers queries with either the old or the new tiles of each tile set,
// never a mix; and backfills and queries running at once on one store must
// see consistent snapshots and lose no published tile. It has no code of its
// own: everything is in its tests.
package crashtest
