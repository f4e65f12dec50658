package tilestore

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing bytes [off, off+n) of f
// to disk now, without waiting for it (sync_file_range with
// SYNC_FILE_RANGE_WRITE): a later fsync then waits for the last chunks
// only. It is advice; a kernel or file system that refuses it changes
// nothing but that wait.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
