package aggregate

// sum adds non-null values; an empty window sums to 0.
func sumValue(s *State) (float64, bool) { return s.Sum, true }
