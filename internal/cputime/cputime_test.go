package cputime

import (
	"runtime"
	"testing"
)

// TestProcess: CPU time grows with work done, where it is read.
func TestProcess(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		if Process() != 0 {
			t.Fatal("CPU time read where it is not supported")
		}
		return
	}
	before := Process()
	x := 0
	for i := range 200_000_000 {
		x += i ^ x
	}
	if after := Process(); after <= before || x == 42 {
		t.Fatalf("CPU time went from %v to %v over a busy loop", before, after)
	}
}
