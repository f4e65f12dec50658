//go:build !linux

package hugepage

// advise does nothing where huge pages are not asked for.
func advise([]byte, bool) bool { return false }
