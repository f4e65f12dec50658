package tile

// Grid is a fixed bucket grid: bucket k covers [Origin+k*Width, Origin+(k+1)*Width),
// labelled by its start. Times are microseconds since the Unix epoch.
type Grid struct {
	Width  int64 // bucket duration in microseconds, > 0
	Origin int64 // start of bucket 0
}

// Floor returns the start of the bucket holding ts.
func (g Grid) Floor(ts int64) int64 {
	return g.Origin + floorDiv(ts-g.Origin, g.Width)*g.Width
}

// Ceil returns the smallest bucket boundary >= ts.
func (g Grid) Ceil(ts int64) int64 {
	f := g.Floor(ts)
	if f == ts {
		return f
	}
	return f + g.Width
}

// OnBoundary reports whether ts is a bucket boundary.
func (g Grid) OnBoundary(ts int64) bool { return g.Floor(ts) == ts }

// OffBoundaries returns how many of the times ts are not bucket
// boundaries, and the index of the first of them (-1 when none): what
// OnBoundary says of each, with a multiplication by the width's inverse
// where OnBoundary divides. A 64-bit division costs tens of cycles, and a
// commit checks every tile's start (4.56M in a 20M-event backfill), a query
// every spine row's time.
func (g Grid) OffBoundaries(ts []int64) (n, first int) {
	b := newBucketer(g)
	first = -1
	for i, t := range ts {
		if !b.on(t) {
			if n == 0 {
				first = i
			}
			n++
		}
	}
	return n, first
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// bucketer numbers the buckets of a grid, of(ts) = floorDiv(ts-Origin,
// Width), with a multiplication by the width's inverse and a correction
// instead of a 64-bit division, which costs tens of cycles: the hot loops
// of a build take one per event.
type bucketer struct {
	origin, width int64
	inv           float64
}

func newBucketer(g Grid) bucketer {
	return bucketer{origin: g.Origin, width: g.Width, inv: 1 / float64(g.Width)}
}

// fastSpan bounds the offsets that of estimates: below 2^52 an offset is
// exact as a float64 and the estimate is off by less than one, which the
// correction loops (at most two turns) repair.
const fastSpan = 1 << 52

func (b bucketer) of(ts int64) int64 {
	x := ts - b.origin
	if x <= -fastSpan || x >= fastSpan {
		return floorDiv(x, b.width)
	}
	q := int64(float64(x) * b.inv)
	r := x - q*b.width
	for r < 0 {
		q--
		r += b.width
	}
	for r >= b.width {
		q++
		r -= b.width
	}
	return q
}

// on reports whether ts is a bucket boundary.
func (b bucketer) on(ts int64) bool {
	x := ts - b.origin
	if x > -fastSpan && x < fastSpan {
		if e := float64(x) * b.inv; e > -nearSpan && e < nearSpan {
			// e is within one of x/width (see nearSpan): x is a multiple
			// of the width when what e's integer part leaves of it is
			// -width, 0 or width.
			r := x - int64(e)*b.width
			return r == 0 || r == b.width || r == -b.width
		}
	}
	return x%b.width == 0
}

// nearSpan bounds the offsets from the origin, in buckets, for which the
// estimate of of is off by at most one (its error is below 2^-10): one
// correction then repairs it.
const nearSpan = 1 << 40

// near reports whether ts lies within nearSpan buckets of the origin.
func (b bucketer) near(ts int64) bool {
	x := float64(ts-b.origin) * b.inv
	return ts-b.origin > -fastSpan && ts-b.origin < fastSpan && x > -nearSpan && x < nearSpan
}
