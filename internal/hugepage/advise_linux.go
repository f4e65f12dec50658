package hugepage

import "syscall"

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
