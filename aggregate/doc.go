// Package aggregate owns the aggregation kernels: the partial state kept per
// (key, bucket), how partial states merge, and how a merged state becomes a
// feature value. It knows nothing of files, buckets or keys.
//
// Every function reads a subset of one State. count reads Count; sum reads
// N and Sum; mean reads N and Sum; min and max read N and Min/Max; var and
// std read N, Sum and M2. Keeping one struct with all fields lets features
// over the same column share a tile set whose columns are the union of what
// they need (see Needs).
package aggregate
