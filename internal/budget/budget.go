// Package budget says how much memory a step may use, so that work larger
// than memory is split into key partitions that each fit.
//
// The limit is the smallest of GOMEMLIMIT (or debug.SetMemoryLimit), the
// cgroup's memory.max, and half of physical memory when neither is set,
// less the buffers internal/hugepage maps outside the Go heap.
package budget

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"

	"github.com/tessera-fe/tessera/internal/hugepage"
)

// Limit returns the memory the process should stay under, in bytes.
func Limit() int64 {
	// A limit that is set is already lowered by what hugepage maps outside
	// the Go heap; the others are not.
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		limit = physical()/2 - hugepage.Mapped()
	}
	if c := cgroupMax(); c > 0 {
		limit = min(limit, c-hugepage.Mapped())
	}
	return max(limit, 64<<20)
}

// Free returns the memory a step may still take: the limit less the live
// heap, and at least an eighth of the limit.
func Free() int64 {
	limit := Limit()
	return max(limit-liveHeap(), limit/8)
}

// Parts returns how many key partitions a step that needs need bytes at once
// should run as, each taking at most half of Free: 1 when it fits. A step
// that would not fit first takes back the memory hugepage keeps for its
// next buffer (hugepage.Trim), which would otherwise count against it.
func Parts(need int64) int {
	if p := parts(need); p == 1 || hugepage.Spare() == 0 {
		return p
	}
	hugepage.Trim()
	return parts(need)
}

func parts(need int64) int {
	per := max(Free()/2, 1)
	if need <= per {
		return 1
	}
	return int(min((need+per-1)/per, 1<<12))
}

func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

func physical() int64 {
	var info syscall.Sysinfo_t
	if err := syscall.Sysinfo(&info); err != nil || info.Totalram == 0 {
		return 8 << 30
	}
	return int64(info.Totalram) * int64(info.Unit)
}

// cgroupMax returns the memory limit of the process's cgroup (v2
// memory.max or v1 memory.limit_in_bytes), or 0 when there is none.
func cgroupMax() int64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		// "0::/path" (v2) or "4:memory:/path" (v1).
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			file = "/sys/fs/cgroup" + parts[2] + "/memory.max"
		case parts[1] == "memory":
			file = "/sys/fs/cgroup/memory" + parts[2] + "/memory.limit_in_bytes"
		default:
			continue
		}
		if n := readLimit(file); n > 0 {
			return n
		}
	}
	return 0
}

// readLimit reads a cgroup limit file: 0 for "max", a missing file, or
// v1's "no limit" (a value near 2^63).
func readLimit(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}
