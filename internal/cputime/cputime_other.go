//go:build !unix

// Package cputime reads the CPU time the process has used, so that
// benchmarks on a shared machine can report work besides wall time, which
// other load disturbs more.
package cputime

import "time"

// Process returns 0: the CPU time is not read on this platform.
func Process() time.Duration { return 0 }

// Faults returns 0: page faults are not read on this platform.
func Faults() int64 { return 0 }
