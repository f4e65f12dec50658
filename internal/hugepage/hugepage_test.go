package hugepage

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
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

// TestScratch: a buffer of Scratch holds n elements that keep what is
// written to them until it is freed; on Linux a large one lies outside the
// Go heap, starting on a huge page with the request for huge pages taken,
// and small or empty ones are zero buffers of the heap.
func TestScratch(t *testing.T) {
	Trim()
	for _, n := range []int{0, 1, 1000, hugeSize / 8, 3*hugeSize/8 + 5} {
		x, free := Scratch[float64](n)
		if len(x) != n {
			t.Fatalf("Scratch(%d) has %d elements", n, len(x))
		}
		for i, v := range x {
			if n*8 < hugeSize && v != 0 {
				t.Fatalf("Scratch(%d)[%d] = %v, not zero", n, i, v)
			}
			x[i] = float64(i) + 0.5
		}
		for i, v := range x {
			if v != float64(i)+0.5 {
				t.Fatalf("Scratch(%d)[%d] = %v after writing", n, i, v)
			}
		}
		if runtime.GOOS == "linux" && n*8 >= hugeSize {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(x)))
			if p%hugeSize != 0 {
				t.Errorf("Scratch(%d) starts at %#x, inside a huge page", n, p)
			}
			if flags := vmFlags(t, p); wanted() && !strings.Contains(flags, " hg") {
				t.Errorf("Scratch(%d): VmFlags%s, no huge page request", n, flags)
			}
		}
		free()
	}
	ints, free := Scratch[uint32](1 << 20)
	ints[len(ints)-1] = 7
	free()
	Trim()
}

// TestScratchReuse: a freed buffer of Scratch waits, still mapped, for the
// next buffer it holds with at most a quarter to spare, which gets the same
// memory; the rest go back to the kernel on Trim, after spareIdle, or when
// more than maxSpares wait.
func TestScratchReuse(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memory is mapped outside the Go heap on Linux only")
	}
	Trim()
	base := Mapped()
	const n = 1 << 20 // 8 MiB of float64
	x, free := Scratch[float64](n)
	if Mapped() != base+8*n {
		t.Fatalf("Mapped() = %d with 8 MiB mapped, want %d", Mapped(), base+8*n)
	}
	x[n-1] = 42
	p := unsafe.SliceData(x)
	free()
	if Mapped() != base+8*n {
		t.Fatalf("Mapped() = %d once freed, want the spare's %d", Mapped(), base+8*n)
	}
	if y, free := Scratch[float64](2 * n); unsafe.SliceData(y) == p {
		t.Fatal("a spare of 8 MiB was reused for a buffer of 16 MiB")
	} else {
		free()
	}
	if y, free := Scratch[uint32](n); unsafe.SliceData(y) == (*uint32)(unsafe.Pointer(p)) {
		t.Fatal("a spare of 8 MiB was reused for a buffer of 4 MiB, holding twice what it needs")
	} else {
		free()
	}
	y, free := Scratch[uint32](n * 7 / 4) // 7 MiB: the spare holds it, with little to spare
	if unsafe.SliceData(y) != (*uint32)(unsafe.Pointer(p)) {
		t.Fatal("a buffer of 7 MiB did not reuse the spare of 8 MiB")
	}
	y[0] = 1
	free()
	Trim()
	if Mapped() != base {
		t.Fatalf("Mapped() = %d after Trim, want %d", Mapped(), base)
	}

	// No more than maxSpares wait.
	var frees []func()
	for range maxSpares + 3 {
		_, free := Scratch[byte](hugeSize)
		frees = append(frees, free)
	}
	for _, f := range frees {
		f()
	}
	if got := Mapped() - base; got != maxSpares*hugeSize {
		t.Fatalf("%d bytes of spares wait, want %d", got, maxSpares*hugeSize)
	}
	Trim()

	// Spares go back to the kernel once they waited spareIdle.
	setIdle := func(d time.Duration) {
		spares.mu.Lock()
		defer spares.mu.Unlock()
		spareIdle = d
	}
	old := spareIdle
	setIdle(20 * time.Millisecond)
	defer setIdle(old)
	_, free = Scratch[byte](hugeSize)
	free()
	for deadline := time.Now().Add(10 * time.Second); Mapped() != base; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Mapped() = %d long after spareIdle, want %d", Mapped(), base)
		}
	}
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
