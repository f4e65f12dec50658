// Package feature owns feature definitions: the YAML configuration (sources,
// entities, features and their materialization), durations and windows,
// feature references such as user.total_transaction_amount[7d], and the
// grouping of materialized features into tile sets. It does no file I/O: the
// caller reads the configuration and passes its bytes and file name, and
// checks columns with CheckSource once it has read a source's schema.
//
// Windows are end-exclusive: a window W at input time t covers events with
// t-W <= ts < t, so the event that defines a spine row never leaks into its
// own features. The window "all" covers every event before t.
package feature
