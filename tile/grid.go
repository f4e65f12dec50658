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

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
