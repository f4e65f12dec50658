// Package tilestore owns tiles at rest: Parquet tile objects and a versioned
// manifest per tile set on object storage (a local directory, file:// or
// s3:// through gocloud.dev/blob), with the coverage that backfills proved.
//
// # Layout
//
// Under the store's root, each tile set ID has
//
//	tilesets/<id>/data/<unique-name>.parquet        immutable tile objects
//	tilesets/<id>/manifests/<version %020d>.json     manifest versions
//
// The newest manifest version is the state of the tile set. Data objects are
// never modified; a manifest lists the objects that make up the tile set, the
// size and SHA-256 of each, and the coverage (bucket ranges proven complete).
//
// # Commit protocol
//
// A commit writes its data objects first, then creates manifest version v+1
// only if no object of that name exists (an atomic hard link on local disks, a
// conditional PUT with If-None-Match on S3). A writer that loses the race reads
// the newer manifest, re-applies its change on top and tries again. Readers
// list the manifest versions and read the highest: one consistent snapshot.
// Data objects that no manifest references (a commit that failed, or tiles
// replaced by later commits) are removed by GC once they are old enough.
//
// # Tile objects
//
// Objects are Parquet files sorted by (key, bucket_start) with the columns key
// (INT64 or STRING), bucket_start (TIMESTAMP(MICROS, UTC)), count (INT64) and,
// following the tile set's Needs, n (INT64), sum, m2, min and max (DOUBLE), in
// row groups of RowGroupRows rows (larger ones in very large objects).
//
// # Reading part of an object
//
// The manifest records, for each object, the SHA-256 of the whole object and,
// for each row group, its byte range, key range, bucket range and SHA-256,
// plus the footer's offset and SHA-256. Load prunes row groups on those
// statistics and fetches only the footer and the row groups it needs with
// ranged reads, verifying each against its checksum before decoding; Verify
// reads objects whole. docs/tile-format.md specifies the format for other
// readers.
package tilestore
