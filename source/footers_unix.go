//go:build unix

package source

import (
	"os"
	"syscall"
)

// inodeOf returns the file's inode number: a file replaced by a rename has
// a new one.
func inodeOf(st os.FileInfo) uint64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Ino)
	}
	return 0
}
