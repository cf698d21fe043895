//go:build unix && !linux

package store

import "golang.org/x/sys/unix"

// statfsReadOnly is left to the write probe here.
func statfsReadOnly(*unix.Statfs_t) bool { return false }
