//go:build !linux

package hugepage

// advise does nothing where huge pages are not asked for.
func advise([]byte, bool) bool { return false }

// mapFresh maps nothing where huge pages are not asked for: Scratch takes
// memory from the Go heap.
func mapFresh(int) ([]byte, func()) { return nil, nil }

// wanted reports false: huge pages are not asked for here.
func wanted() bool { return false }
