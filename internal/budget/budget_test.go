package budget

import (
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/tessera-fe/tessera/internal/hugepage"
)

func TestLimitFollowsGOMEMLIMIT(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 30)
	defer debug.SetMemoryLimit(old)
	if got := Limit(); got > 1<<30 {
		t.Fatalf("Limit() = %d with a 1 GiB memory limit", got)
	}
	if Free() > Limit() || Free() < Limit()/8 {
		t.Fatalf("Free() = %d outside [limit/8, limit] (limit %d)", Free(), Limit())
	}
	// A buffer mapped outside the Go heap takes its size off the limit,
	// with a limit set and without, until it is freed.
	for _, limit := range []int64{1 << 30, math.MaxInt64} {
		debug.SetMemoryLimit(limit)
		hugepage.Trim()
		before := Limit()
		x, free := hugepage.Scratch[uint64](1 << 20) // 8 MiB
		mapped := int64(len(x)) * 8
		if hugepage.Mapped() >= mapped { // mapped where the platform maps
			if got := Limit(); got != before-mapped {
				t.Errorf("limit %d: Limit() = %d with 8 MiB mapped, want %d", limit, got, before-mapped)
			}
		}
		free()
		hugepage.Trim() // a freed buffer waits, mapped, for the next
		if got := Limit(); got != before {
			t.Errorf("limit %d: Limit() = %d once freed, want %d", limit, got, before)
		}
	}
}

func TestParts(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 30)
	defer debug.SetMemoryLimit(old)
	if p := Parts(1 << 20); p != 1 {
		t.Fatalf("Parts(1 MiB) = %d under a 1 GiB limit, want 1", p)
	}
	per := Free() / 2
	if p := Parts(10 * per); p < 10 || p > 11 {
		t.Fatalf("Parts(10 x half of free) = %d, want 10 or 11", p)
	}
	if p := Parts(1 << 62); p != 1<<12 {
		t.Fatalf("Parts is not capped: %d", p)
	}

	// Memory kept for the next huge-page buffer counts against a step
	// until the step would not fit: then it is given back first.
	_, free := hugepage.Scratch[uint64](1 << 20) // 8 MiB
	free()
	if hugepage.Spare() == 0 {
		t.Skip("no memory mapped outside the Go heap here")
	}
	if p := Parts(1 << 20); p != 1 || hugepage.Spare() == 0 {
		t.Fatalf("Parts(1 MiB) = %d and gave back the spare memory (%d bytes left)", p, hugepage.Spare())
	}
	if Parts(10 * per); hugepage.Spare() != 0 {
		t.Fatalf("a step split in parts left %d bytes of spare memory mapped", hugepage.Spare())
	}
}

func TestReadLimit(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]int64{"max\n": 0, "2147483648\n": 2 << 30, "9223372036854771712\n": 0, "junk": 0} {
		f := dir + "/limit"
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := readLimit(f); got != want {
			t.Errorf("readLimit(%q) = %d, want %d", content, got, want)
		}
	}
	if readLimit(dir+"/missing") != 0 {
		t.Error("a missing limit file reads as a limit")
	}
}
