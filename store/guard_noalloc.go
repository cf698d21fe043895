//go:build !linux

package store

import "errors"

var errUnsupported = errors.New("preallocation not supported")

// allocate is a no-op where fallocate(2) is not available.
func allocate(string, int64) error { return errUnsupported }
