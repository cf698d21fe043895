//go:build !unix && !windows

package store

import "io/fs"

func identify(fs.FileInfo) fileID { return fileID{} }

// freeSpace is unknown here (-1): only the write probe guards the store.
func freeSpace(string) (int64, bool, error) { return -1, false, nil }

func isNoSpace(error) bool  { return false }
func isReadOnly(error) bool { return false }
