package aggregate

// Extreme answers sliding-window min or max queries over a sequence of
// points: Query(i, j) gives the extreme of points [i, j). Successive queries
// must have non-decreasing i and j (the order of a sweep over sorted rows);
// each point then enters and leaves the monotonic deque once, so a sweep of
// q queries over n points costs O(n + q).
type Extreme struct {
	vals  []float64
	valid []bool
	max   bool
	dq    []int32 // indices of candidate points, values monotone
	head  int     // dq[head:] is live
	next  int     // next point to push
	lastI int     // i of the previous query
}

// Reset starts a sweep over vals; valid[i] false marks a point without a
// value (null event, or a tile with N == 0); valid nil means all valid. max
// selects maximum rather than minimum.
func (e *Extreme) Reset(vals []float64, valid []bool, max bool) {
	e.vals, e.valid, e.max = vals, valid, max
	e.dq = e.dq[:0]
	e.head, e.next, e.lastI = 0, 0, 0
}

// Query returns the extreme of points [i, j); ok is false when none of them
// has a value.
func (e *Extreme) Query(i, j int) (v float64, ok bool) {
	if j < e.next || i < e.lastI { // a bound went backwards: caller broke the contract; recompute
		e.dq, e.head, e.next = e.dq[:0], 0, i
	}
	e.lastI = i
	if i > e.next {
		e.next = i
		e.dq, e.head = e.dq[:0], 0
	}
	for ; e.next < j; e.next++ {
		k := e.next
		if e.valid != nil && !e.valid[k] {
			continue
		}
		x := e.vals[k]
		for len(e.dq) > e.head {
			last := e.vals[e.dq[len(e.dq)-1]]
			if (e.max && last <= x) || (!e.max && last >= x) {
				e.dq = e.dq[:len(e.dq)-1]
				continue
			}
			break
		}
		e.dq = append(e.dq, int32(k))
	}
	for e.head < len(e.dq) && int(e.dq[e.head]) < i {
		e.head++
	}
	if e.head == len(e.dq) {
		if e.head > 1024 { // keep the buffer from growing without bound
			e.dq, e.head = e.dq[:0], 0
		}
		return 0, false
	}
	return e.vals[e.dq[e.head]], true
}
