package aggregate

// count counts events, null values included; an empty window counts 0.
func countValue(s *State) (float64, bool) { return float64(s.Count), true }
