// Package source owns reading events and spines from Parquet and CSV files
// into in-memory columnar tables, and writing result tables back out.
//
// Read resolves a path (a file, a glob or a directory) to files, reads the
// requested columns of each in the role the caller needs them (grouping key,
// event time, numeric value, text for filters) and concatenates the files in
// name order, keeping rows in file order. Times become int64 microseconds
// since the Unix epoch, UTC. Write publishes a table atomically (temporary
// file, then rename) as Parquet or CSV, chosen by the file extension.
package source
