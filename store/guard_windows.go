package store

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/windows"
)

// identify has no inode on Windows: a replaced directory is not detected
// by identity (the write probe still finds a missing one).
func identify(fs.FileInfo) fileID { return fileID{} }

// freeSpace is the space the process may use on dir's volume; read-only
// volumes are left to the write probe.
func freeSpace(dir string) (int64, bool, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, false, err
	}
	var free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &free, nil, nil); err != nil {
		return 0, false, err
	}
	return int64(free), false, nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL)
}

func isReadOnly(err error) bool {
	return errors.Is(err, windows.ERROR_WRITE_PROTECT)
}
