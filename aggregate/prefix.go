package aggregate

// Prefix answers range queries for count, sum, mean, var and std over a
// sequence of points (raw events or tiles) in O(1) after an O(n) build, using
// prefix sums: the state of points [i, j) is a difference of two prefixes.
//
// Each prefix is a compensated (double-double) sum, so that the difference
// of two large prefixes keeps the precision of the small window between them:
// sums of integers stay exact. The sums behind var and std are kept relative
// to a shift (the mean of all values in the sequence), so that values with a
// large common offset (1e9 plus small noise) keep their spread in the sum of
// squares.
//
// A Prefix is reused across sequences with Build*; its buffers grow to the
// largest sequence seen.
type Prefix struct {
	needs Needs
	count []int64 // count[i]: events in points [0, i); nil for events (count = index)
	n     []int64
	s1    []float64 // sum of v: high part
	s1lo  []float64 // its compensation (low part)
	d1    []float64 // sum of (v - shift), for var and std
	d1lo  []float64
	s2    []float64 // sum of (v - shift)^2
	s2lo  []float64
	shift float64
}

// BuildEvents prepares range queries over raw events with the given values;
// valid[i] is false for a null value (valid nil: all valid). values may be nil
// when needs asks for count only.
func (p *Prefix) BuildEvents(values []float64, valid []bool, needs Needs) {
	p.needs = needs
	p.count = p.count[:0]
	if !needs.HasValues() {
		return
	}
	m := len(values)
	p.shift = eventMean(values, valid)
	withSq := p.alloc(m, needs)
	var n int64
	var s1, d1, s2 ddSum
	for i, v := range values {
		if valid == nil || valid[i] {
			n++
			s1.add(v)
			if withSq {
				d := v - p.shift
				d1.add(d)
				s2.add(d * d)
			}
		}
		p.n[i+1] = n
		p.s1[i+1], p.s1lo[i+1] = s1.hi, s1.lo
		if withSq {
			p.d1[i+1], p.d1lo[i+1] = d1.hi, d1.lo
			p.s2[i+1], p.s2lo[i+1] = s2.hi, s2.lo
		}
	}
}

func (p *Prefix) alloc(m int, needs Needs) (withSq bool) {
	p.n = grow(p.n, m+1)
	p.s1 = growF(p.s1, m+1)
	p.s1lo = growF(p.s1lo, m+1)
	withSq = needs&NeedM2 != 0
	if withSq {
		p.d1 = growF(p.d1, m+1)
		p.d1lo = growF(p.d1lo, m+1)
		p.s2 = growF(p.s2, m+1)
		p.s2lo = growF(p.s2lo, m+1)
	}
	return withSq
}

// ddSum is a running compensated sum: hi + lo carries the exact sum of the
// terms to about twice float64 precision (Knuth's TwoSum).
type ddSum struct{ hi, lo float64 }

func (s *ddSum) add(x float64) {
	t := s.hi + x
	bp := t - s.hi
	s.lo += (s.hi - (t - bp)) + (x - bp)
	s.hi = t
}

// diff returns (hj+lj) - (hi+li) accurately.
func diff(hj, lj, hi, li float64) float64 { return (hj - hi) + (lj - li) }

// BuildTiles prepares range queries over tiles given as partial-state
// columns (see State); n, sum and m2 may be nil where needs does not use them.
func (p *Prefix) BuildTiles(count, n []int64, sum, m2 []float64, needs Needs) {
	p.needs = needs
	m := len(count)
	p.count = grow(p.count, m+1)
	if needs&NeedSum != 0 && needs&NeedM2 == 0 {
		p.sumTiles(count, n, sum)
		return
	}
	var c int64
	for i, x := range count {
		c += x
		p.count[i+1] = c
	}
	if !needs.HasValues() {
		return
	}
	if needs&(NeedSum|NeedM2) == 0 { // min or max only: N is all a range reads; sum may be nil
		p.n = grow(p.n, m+1)
		for i, x := range n {
			p.n[i+1] = p.n[i] + x
		}
		return
	}
	var tn int64
	var ts float64
	for i := range m {
		tn += n[i]
		ts += sum[i]
	}
	p.shift = 0
	if tn > 0 {
		p.shift = ts / float64(tn)
	}
	withSq := p.alloc(m, needs)
	var an int64
	var s1, d1, s2 ddSum
	for i := range m {
		ni := n[i]
		if ni > 0 {
			s1.add(sum[i])
			if withSq {
				d := sum[i] - float64(ni)*p.shift // sum of (v - shift) over the tile
				d1.add(d)
				// sum of (v-shift)^2 = M2 + n*(mean-shift)^2
				s2.add(m2[i])
				s2.add(d * d / float64(ni))
			}
		}
		an += ni
		p.n[i+1] = an
		p.s1[i+1], p.s1lo[i+1] = s1.hi, s1.lo
		if withSq {
			p.d1[i+1], p.d1lo[i+1] = d1.hi, d1.lo
			p.s2[i+1], p.s2lo[i+1] = s2.hi, s2.lo
		}
	}
}

// sumTiles builds the count, N and sum prefixes in one pass over the tiles,
// for needs with Sum and without M2 (count, sum and mean: the most common
// features), which need no shift. The adds are those of the general build,
// in the same order: the prefixes are identical.
func (p *Prefix) sumTiles(count, n []int64, sum []float64) {
	m := len(count)
	p.alloc(m, p.needs)
	pc, pn := p.count[1:m+1], p.n[1:m+1]
	ps, pl := p.s1[1:m+1], p.s1lo[1:m+1]
	n, sum = n[:m], sum[:m]
	var c, an int64
	var s1 ddSum
	for i, x := range count {
		c += x
		ni := n[i]
		if ni > 0 {
			s1.add(sum[i])
		}
		an += ni
		pc[i], pn[i], ps[i], pl[i] = c, an, s1.hi, s1.lo
	}
}

// Range returns the state of points [i, j): Count, and N, Sum and M2 where
// the build's needs asked for them. Min and Max are left zero (see Extreme).
func (p *Prefix) Range(i, j int) State {
	var st State
	if p.count == nil || len(p.count) == 0 {
		st.Count = int64(j - i)
	} else {
		st.Count = p.count[j] - p.count[i]
	}
	if !p.needs.HasValues() {
		return st
	}
	st.N = p.n[j] - p.n[i]
	if st.N == 0 || p.needs&(NeedSum|NeedM2) == 0 {
		return st
	}
	st.Sum = diff(p.s1[j], p.s1lo[j], p.s1[i], p.s1lo[i])
	if p.needs&NeedM2 != 0 {
		d1 := diff(p.d1[j], p.d1lo[j], p.d1[i], p.d1lo[i])
		st.M2 = diff(p.s2[j], p.s2lo[j], p.s2[i], p.s2lo[i]) - d1*d1/float64(st.N)
		if st.M2 < 0 {
			st.M2 = 0
		}
	}
	return st
}

// Sums returns the Count, N and Sum of points [i, j), the same as Range's,
// without the rest of a State.
func (p *Prefix) Sums(i, j int) (count, n int64, sum float64) {
	if len(p.count) == 0 {
		count = int64(j - i)
	} else {
		count = p.count[j] - p.count[i]
	}
	if !p.needs.HasValues() {
		return count, 0, 0
	}
	n = p.n[j] - p.n[i]
	if n == 0 || p.needs&(NeedSum|NeedM2) == 0 {
		return count, n, 0
	}
	return count, n, diff(p.s1[j], p.s1lo[j], p.s1[i], p.s1lo[i])
}

func eventMean(values []float64, valid []bool) float64 {
	var s float64
	var n int
	for i, v := range values {
		if valid == nil || valid[i] {
			s += v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

func grow(s []int64, n int) []int64 {
	if cap(s) < n {
		return make([]int64, n)
	}
	s = s[:n]
	s[0] = 0
	return s
}

func growF(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	s = s[:n]
	s[0] = 0
	return s
}
