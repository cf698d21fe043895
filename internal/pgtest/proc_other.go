//go:build !linux

package pgtest

import "os/exec"

// runAs leaves cmd as it is: switching accounts (PostgreSQL refuses to run
// as root) is done on Linux only, where the tests and CI run.
func runAs(*exec.Cmd, *account) {}

// dieWithParent leaves cmd as it is: only Linux has a parent-death signal;
// elsewhere the server is stopped by Main or the test's cleanup.
func dieWithParent(*exec.Cmd) {}
