package rswebhooks

import (
	"errors"
	"time"
)

// DefaultRetention is how long the store keeps events, attempts, finished
// deliveries and seen executions unless configured otherwise (--retention).
// The store applies it; the execution watcher's bookkeeping follows it.
const DefaultRetention = 7 * 24 * time.Hour

// Store conditions: why the store refuses writes for now (degraded mode).
// They are the bounded values of the reason label of
// rswebhooks_events_lost_total and rswebhooks_store_degraded.
const (
	// StoreDiskFull: the data directory's filesystem has less free space
	// than the store needs for its next memory-mapped files.
	StoreDiskFull = "disk_full"
	// StoreUnwritable: the data directory is gone, replaced, read-only or
	// failing writes.
	StoreUnwritable = "unwritable"
	// StoreUnopened: the store could not be opened at start (corrupt,
	// unsupported version, locked by another process).
	StoreUnopened = "unopened"
)

// StoreConditions lists the degraded-mode conditions.
func StoreConditions() []string {
	return []string{StoreDiskFull, StoreUnwritable, StoreUnopened}
}

// ErrStoreUnavailable is matched (errors.Is) by every error of a store in
// degraded mode: nothing was written, and the store recovers by itself when
// the condition clears.
var ErrStoreUnavailable = errors.New("store unavailable")

// StoreUnavailableError says why the store refuses writes.
type StoreUnavailableError struct {
	// Condition is one of StoreConditions.
	Condition string
	// Detail is a human explanation (free space, path, the open error).
	Detail string
}

func (e *StoreUnavailableError) Error() string {
	return "store unavailable (" + e.Condition + "): " + e.Detail
}

// Is makes errors.Is(err, ErrStoreUnavailable) true.
func (e *StoreUnavailableError) Is(target error) bool { return target == ErrStoreUnavailable }

// StoreCondition returns the degraded-mode condition carried by err, or ""
// when err is not a StoreUnavailableError.
func StoreCondition(err error) string {
	var u *StoreUnavailableError
	if errors.As(err, &u) {
		return u.Condition
	}
	return ""
}
