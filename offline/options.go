package offline

// Options are the planner options of an offline query.
type Options struct {
	// Materialized is use_materialized_offline_query: read tiles, merging
	// every whole bucket that intersects [t-W, t).
	Materialized bool
	// Align is align_offline_window_with_materialization: round the window's
	// tail down to a bucket boundary and cut its head at t, as online serving
	// does. With Materialized, the head bucket's raw events are read.
	Align bool
}

// Mode names the planner mode, as printed in summaries.
func (o Options) Mode() string {
	switch {
	case o.Materialized && o.Align:
		return "materialized+align"
	case o.Materialized:
		return "materialized"
	case o.Align:
		return "aligned"
	}
	return "exact"
}
