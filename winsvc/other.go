//go:build !windows

package winsvc

import "context"

// IsService reports whether the process was started by the Windows SCM.
// It is always false on this platform.
func IsService() (bool, error) { return false, nil }

// Run serves the SCM protocol; it needs Windows.
func Run(cfg Config, run func(ctx context.Context, name string) error) (Result, error) {
	return Result{}, ErrNotWindows
}

// OpenEventLog opens the Windows event log under source; it needs Windows.
func OpenEventLog(source string) (EventLog, func() error, error) {
	return nil, nil, ErrNotWindows
}

// Install registers a service; it needs Windows.
func Install(s ServiceConfig) error { return ErrNotWindows }

// Uninstall removes a service; it needs Windows.
func Uninstall(name string) error { return ErrNotWindows }

// Start starts an installed service; it needs Windows.
func Start(name string) error { return ErrNotWindows }

// Stop stops a running service; it needs Windows.
func Stop(ctx context.Context, name string) error { return ErrNotWindows }
