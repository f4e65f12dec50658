//go:build unix

// Package cputime reads the CPU time the process has used, so that
// benchmarks on a shared machine can report work besides wall time, which
// other load disturbs more.
package cputime

import (
	"syscall"
	"time"
)

// Process returns the user plus system CPU time the process has used; 0
// where it cannot be read.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
