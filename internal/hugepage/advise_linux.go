package hugepage

import (
	"os"
	"strings"
	"sync"
	"syscall"
)

// wanted reports whether the kernel backs memory with transparent huge
// pages only where asked to ("madvise"): where it does so everywhere
// ("always") a request adds nothing, and its withdrawal (MADV_NOHUGEPAGE)
// would opt the memory out for good; where it never does, it refuses.
var wanted = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && strings.Contains(string(b), "[madvise]")
})

// advise asks for huge pages under b (on) or withdraws the request, and
// reports whether the kernel took it: a kernel without transparent huge
// pages refuses, which is no error for the caller.
func advise(b []byte, on bool) bool {
	advice := syscall.MADV_HUGEPAGE
	if !on {
		advice = syscall.MADV_NOHUGEPAGE
	}
	return syscall.Madvise(b, advice) == nil
}

// mapFresh maps size bytes of fresh, zero memory outside the Go heap, with
// the whole huge pages inside it asked for before anything touches them;
// it returns nil when the kernel refuses the mapping.
func mapFresh(size int) (b []byte, unmap func()) {
	m, err := syscall.Mmap(-1, 0, size+hugeSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, nil
	}
	// Start on a huge page boundary, so that the pages of the buffer are
	// whole huge pages but for its tail.
	lo := alignUp(m)
	b = m[lo : lo+size : lo+size]
	if whole := wholePages(b); len(whole) > 0 && wanted() {
		advise(whole, true)
	}
	return b, func() { _ = syscall.Munmap(m) }
}
