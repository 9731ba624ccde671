package stack

import "syscall"

// sysProcAttr kills the child when the test binary dies, so a crashed or
// killed test run leaves no services behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
