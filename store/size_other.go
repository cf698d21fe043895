//go:build !unix

package store

import "io/fs"

// diskUsage is the file's length where allocated blocks are not known.
func diskUsage(info fs.FileInfo) int64 { return info.Size() }
