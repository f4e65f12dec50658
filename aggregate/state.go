package aggregate

import "math"

// State is the partial aggregate state of a set of events. The zero value is
// the state of no events; Min and Max are meaningful only when N > 0.
//
// M2 is the sum of squared deviations from the state's own mean Sum/N. Merging
// uses Chan et al.'s pairwise update, which stays accurate for values with a
// large common offset (1e9 plus small noise), unlike a raw sum of squares.
type State struct {
	Count int64   // events, null values included
	N     int64   // events with a non-null value
	Sum   float64 // sum of non-null values
	M2    float64 // sum of squared deviations from Sum/N
	Min   float64
	Max   float64
}

// Add folds one event into s; valid is false for a null value.
func (s *State) Add(v float64, valid bool) {
	s.Count++
	if !valid {
		return
	}
	if s.N == 0 {
		s.N, s.Sum, s.M2, s.Min, s.Max = 1, v, 0, v, v
		return
	}
	oldMean := s.Sum / float64(s.N)
	s.N++
	s.Sum += v
	s.M2 += (v - oldMean) * (v - s.Sum/float64(s.N))
	s.Min = math.Min(s.Min, v)
	s.Max = math.Max(s.Max, v)
}

// Merge folds the events of o into s.
func (s *State) Merge(o State) {
	s.Count += o.Count
	if o.N == 0 {
		return
	}
	if s.N == 0 {
		s.N, s.Sum, s.M2, s.Min, s.Max = o.N, o.Sum, o.M2, o.Min, o.Max
		return
	}
	na, nb := float64(s.N), float64(o.N)
	delta := o.Sum/nb - s.Sum/na
	s.M2 += o.M2 + delta*delta*na*nb/(na+nb)
	s.N += o.N
	s.Sum += o.Sum
	s.Min = math.Min(s.Min, o.Min)
	s.Max = math.Max(s.Max, o.Max)
}

// Value returns the feature value of f over the events of s; ok is false
// where the value is null (empty windows for everything but count and sum).
func (s *State) Value(f Func) (v float64, ok bool) {
	switch f {
	case Count:
		return countValue(s)
	case Sum:
		return sumValue(s)
	case Mean:
		return meanValue(s)
	case Min:
		return minValue(s)
	case Max:
		return maxValue(s)
	case Var:
		return varValue(s)
	case Std:
		return stdValue(s)
	}
	return 0, false
}
