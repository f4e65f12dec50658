package aggregate

import "math"

// var and std are the population variance and standard deviation (divide by
// N) of non-null values; null when N is 0.
func varValue(s *State) (float64, bool) {
	if s.N == 0 {
		return 0, false
	}
	v := s.M2 / float64(s.N)
	if v < 0 { // rounding of a difference of prefix sums can dip below zero
		v = 0
	}
	return v, true
}

func stdValue(s *State) (float64, bool) {
	v, ok := varValue(s)
	return math.Sqrt(v), ok
}
