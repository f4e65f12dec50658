package aggregate

// mean is Sum/N, planned from the same partial state as sum; null when N is 0.
func meanValue(s *State) (float64, bool) {
	if s.N == 0 {
		return 0, false
	}
	return s.Sum / float64(s.N), true
}
