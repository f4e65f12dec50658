package hugepage

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// TestAdvise: a buffer holding whole huge pages keeps its contents through
// the request and its withdrawal; buffers too small or empty are left
// alone; on Linux a large buffer's request is taken (unless the kernel has
// no transparent huge pages at all).
func TestAdvise(t *testing.T) {
	big := make([]uint32, 3*hugeSize/4) // 3 huge pages' worth of bytes: at least two whole ones
	release := Advise(big)
	for i := range big {
		big[i] = uint32(i)
	}
	release()
	for i, v := range big {
		if v != uint32(i) {
			t.Fatalf("big[%d] = %d after release", i, v)
		}
	}
	for _, x := range [][]float64{nil, make([]float64, 10), make([]float64, hugeSize/8-1)} {
		Advise(x)() // nothing to do, nothing to undo
	}
	b := wholePages(big)
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if len(b) < 2*hugeSize || lo%hugeSize != 0 || len(b)%hugeSize != 0 {
		t.Fatalf("a %d-byte buffer holds whole huge pages of %d bytes at %#x", len(big)*4, len(b), lo)
	}
	if b := wholePages(make([]byte, 100)); len(b) > 0 {
		t.Fatalf("100 bytes hold %d bytes of whole huge pages", len(b))
	}
	if runtime.GOOS == "linux" {
		// The kernel marks the range (VmFlags "hg" in smaps) while the
		// request stands, where it has transparent huge pages at all.
		if !advise(b, true) {
			t.Skip("the kernel takes no huge page advice")
		}
		if flags := vmFlags(t, lo); !strings.Contains(flags, " hg") {
			t.Fatalf("advised range: VmFlags%s", flags)
		}
		advise(b, false)
		if flags := vmFlags(t, lo); strings.Contains(flags, " hg") {
			t.Fatalf("withdrawn range: VmFlags%s", flags)
		}
	}
}

// vmFlags returns the VmFlags line of the mapping of this process holding
// address a, from /proc/self/smaps.
func vmFlags(t *testing.T, a uintptr) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			var lo, hi uintptr
			if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err == nil {
				in = lo <= a && a < hi
			}
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimPrefix(line, "VmFlags:")
		}
	}
	t.Fatalf("no mapping holds %#x", a)
	return ""
}
