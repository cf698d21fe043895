//go:build unix

package store

import (
	"io/fs"
	"syscall"
)

// diskUsage is the space a file occupies on disk (allocated blocks), which
// for Badger's sparse, preallocated files is less than their length.
func diskUsage(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
