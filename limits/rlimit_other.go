//go:build !unix

package limits

import "errors"

// openFileLimit: there is no such limit here; the default bound applies.
func openFileLimit() (uint64, error) { return 0, errors.New("no open-file limit on this platform") }
