package store

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

var errUnsupported = errors.New("preallocation not supported")

// allocate makes sure the first n bytes of the file have blocks on disk,
// without changing its length.
func allocate(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return errUnsupported
	}
	return err
}
