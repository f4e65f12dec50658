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

// Faults returns the page faults the process has taken that needed no
// disk read (first touches of fresh memory, mostly); 0 where they cannot
// be read. On a virtual machine each can cost more than the work that
// touched the page.
func Faults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}
