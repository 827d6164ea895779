//go:build !linux

package harness

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; elsewhere the
// cleanups of the tests are all there is.
func dieWithParent(*exec.Cmd) {}
