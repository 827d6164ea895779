package harness

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd die if the test process dies (a timeout, a
// panic), so no plex process outlives the test run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
