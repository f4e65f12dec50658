package tile

import "github.com/tessera-fe/tessera/aggregate"

// Keys is a column of grouping keys: int64 or string, never both.
type Keys struct {
	String bool // true: Str holds the keys; false: Int does
	Int    []int64
	Str    []string
}

// Len returns the number of keys.
func (k *Keys) Len() int {
	if k.String {
		return len(k.Str)
	}
	return len(k.Int)
}

// Set is a columnar batch of tiles, one row per (key, bucket start), sorted by
// (key, Start) unless a function says otherwise. The partial-state columns
// present are those of Needs: Count always; N with any value column; Sum with
// NeedSum or NeedM2; M2 with NeedM2; Min with NeedMin; Max with NeedMax. Absent
// columns are nil. Min and Max of a tile with N == 0 are meaningless.
type Set struct {
	Needs aggregate.Needs
	Keys  Keys
	Start []int64 // bucket start, microseconds since the epoch
	Count []int64 // events in the bucket, null values included
	N     []int64 // events with a non-null value
	Sum   []float64
	M2    []float64 // sum of squared deviations from the tile's mean Sum/N
	Min   []float64
	Max   []float64
}

// Len returns the number of tiles.
func (s *Set) Len() int { return len(s.Start) }

// State returns tile i's partial state.
func (s *Set) State(i int) aggregate.State {
	st := aggregate.State{Count: s.Count[i]}
	if s.N != nil {
		st.N = s.N[i]
	}
	if s.Sum != nil {
		st.Sum = s.Sum[i]
	}
	if s.M2 != nil {
		st.M2 = s.M2[i]
	}
	if s.Min != nil {
		st.Min = s.Min[i]
	}
	if s.Max != nil {
		st.Max = s.Max[i]
	}
	return st
}

// Append adds one tile at the end.
func (s *Set) Append(intKey int64, strKey string, start int64, st aggregate.State) {
	if s.Keys.String {
		s.Keys.Str = append(s.Keys.Str, strKey)
	} else {
		s.Keys.Int = append(s.Keys.Int, intKey)
	}
	s.Start = append(s.Start, start)
	s.Count = append(s.Count, st.Count)
	n := s.Needs
	if n.HasValues() {
		s.N = append(s.N, st.N)
	}
	if n&NeedSumOrM2 != 0 {
		s.Sum = append(s.Sum, st.Sum)
	}
	if n&aggregate.NeedM2 != 0 {
		s.M2 = append(s.M2, st.M2)
	}
	if n&aggregate.NeedMin != 0 {
		s.Min = append(s.Min, st.Min)
	}
	if n&aggregate.NeedMax != 0 {
		s.Max = append(s.Max, st.Max)
	}
}

// NeedSumOrM2 selects the needs that keep a Sum column.
const NeedSumOrM2 = aggregate.NeedSum | aggregate.NeedM2

// AppendAll adds every tile of o at the end; o must keep the same columns.
func (s *Set) AppendAll(o *Set) {
	s.Keys.Int = append(s.Keys.Int, o.Keys.Int...)
	s.Keys.Str = append(s.Keys.Str, o.Keys.Str...)
	s.Start = append(s.Start, o.Start...)
	s.Count = append(s.Count, o.Count...)
	s.N = append(s.N, o.N...)
	s.Sum = append(s.Sum, o.Sum...)
	s.M2 = append(s.M2, o.M2...)
	s.Min = append(s.Min, o.Min...)
	s.Max = append(s.Max, o.Max...)
}
