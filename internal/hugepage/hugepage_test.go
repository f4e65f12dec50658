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
// alone; on Linux, where the kernel gives huge pages only when asked, a
// large buffer's request is taken while it stands.
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
	if runtime.GOOS == "linux" && wanted() {
		// Where the kernel gives huge pages only when asked, it marks the
		// range (VmFlags "hg" in smaps) while the request stands.
		release := Advise(big)
		if flags := vmFlags(t, lo); !strings.Contains(flags, " hg") {
			t.Fatalf("advised range: VmFlags%s", flags)
		}
		release()
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

// TestAlloc: a buffer of Alloc holds n zero elements that keep what is
// written to them until it is freed; on Linux a large one lies outside the
// Go heap, starting on a huge page with the request for huge pages taken,
// and small or empty ones come from the heap.
func TestAlloc(t *testing.T) {
	for _, n := range []int{0, 1, 1000, hugeSize / 8, 3*hugeSize/8 + 5} {
		x, free := Alloc[float64](n)
		if len(x) != n {
			t.Fatalf("Alloc(%d) has %d elements", n, len(x))
		}
		for i, v := range x {
			if v != 0 {
				t.Fatalf("Alloc(%d)[%d] = %v, not zero", n, i, v)
			}
			x[i] = float64(i) + 0.5
		}
		for i, v := range x {
			if v != float64(i)+0.5 {
				t.Fatalf("Alloc(%d)[%d] = %v after writing", n, i, v)
			}
		}
		if runtime.GOOS == "linux" && n*8 >= hugeSize {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(x)))
			if p%hugeSize != 0 {
				t.Errorf("Alloc(%d) starts at %#x, inside a huge page", n, p)
			}
			if flags := vmFlags(t, p); wanted() && !strings.Contains(flags, " hg") {
				t.Errorf("Alloc(%d): VmFlags%s, no huge page request", n, flags)
			}
		}
		free()
	}
	ints, free := Alloc[uint32](1 << 20)
	ints[len(ints)-1] = 7
	free()
}

// TestMake: a buffer of Make is a zero slice of the Go heap of n elements
// that keeps what is written to it through the withdrawal of the request,
// which on Linux stands until then under a large buffer.
func TestMake(t *testing.T) {
	for _, n := range []int{0, 7, 3*hugeSize/8 + 1} {
		x, written := Make[int64](n)
		if len(x) != n {
			t.Fatalf("Make(%d) has %d elements", n, len(x))
		}
		for i := range x {
			if x[i] != 0 {
				t.Fatalf("Make(%d)[%d] = %d", n, i, x[i])
			}
			x[i] = int64(i) * 3
		}
		if runtime.GOOS == "linux" && n*8 >= 2*hugeSize {
			whole := wholePages(x)
			if flags := vmFlags(t, uintptr(unsafe.Pointer(unsafe.SliceData(whole)))); wanted() && !strings.Contains(flags, " hg") {
				t.Errorf("Make(%d): VmFlags%s, no huge page request", n, flags)
			}
		}
		written()
		for i, v := range x {
			if v != int64(i)*3 {
				t.Fatalf("Make(%d)[%d] = %d after the request's withdrawal", n, i, v)
			}
		}
	}
}

// TestRequests: buffers of MakeIn keep their requests in the Requests until
// Written withdraws them all, and their contents through it.
func TestRequests(t *testing.T) {
	var req Requests
	a, b := MakeIn[uint64](&req, 3*hugeSize/8), MakeIn[float64](&req, 10)
	if len(a) != 3*hugeSize/8 || len(b) != 10 || len(req.done) != 2 {
		t.Fatalf("MakeIn: %d and %d elements, %d requests kept", len(a), len(b), len(req.done))
	}
	for i := range a {
		a[i] = uint64(i)
	}
	if runtime.GOOS == "linux" && wanted() {
		if flags := vmFlags(t, uintptr(unsafe.Pointer(unsafe.SliceData(wholePages(a))))); !strings.Contains(flags, " hg") {
			t.Fatalf("MakeIn: VmFlags%s, no huge page request", flags)
		}
	}
	req.Written()
	if len(req.done) != 0 || a[len(a)-1] != uint64(len(a)-1) {
		t.Fatal("Written kept requests or lost contents")
	}
}
