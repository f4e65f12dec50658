package aggregate

// min and max of non-null values; null when N is 0.
func minValue(s *State) (float64, bool) { return s.Min, s.N > 0 }

func maxValue(s *State) (float64, bool) { return s.Max, s.N > 0 }
