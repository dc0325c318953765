package executor

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// signalsResetEnv marks the process that ResetInheritedSignals executed
// again, so that it does so once.
const signalsResetEnv = "SANDBOXD_SIGNALS_RESET"

// The kernel's side of rt_sigaction: its struct sigaction (SIG_DFL is all
// zero), SIG_IGN, and the size of its signal set.
type kernelSigaction [4]uint64

const (
	sigIgn           = 1
	kernelSigsetSize = 8
)

// ResetInheritedSignals gives sandboxd the signal state of a new process,
// no signal blocked and none ignored, where it inherited another: a judge
// that blocks signals to take them with sigwait, or a shell's `trap "" HUP`,
// passes its mask and its ignored signals on through exec, to every process
// sandboxd starts and so to programs (isolate's too), whose verdicts would
// change with them (SIGXFSZ blocked: a write past file_size_limit fails and
// the program goes on). The Go runtime hands the mask it started with to
// every child it forks, so the one way to a clean one is to execute sandboxd
// again from a thread that has it. Call it first thing in main: it does not
// return when it executes sandboxd again.
func ResetInheritedSignals() error {
	if os.Getenv(signalsResetEnv) != "" {
		return os.Unsetenv(signalsResetEnv)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var blocked unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &blocked); err != nil {
		return fmt.Errorf("read the signal mask: %w", err)
	}
	ignored, err := ignoredSignals()
	if err != nil {
		return err
	}
	if blocked == (unix.Sigset_t{}) && len(ignored) == 0 {
		return nil
	}
	var defaultAction kernelSigaction
	for _, sig := range ignored {
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&defaultAction)), 0, kernelSigsetSize, 0, 0); errno != 0 {
			return fmt.Errorf("reset the ignored signal %v: %w", sig, errno)
		}
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &unix.Sigset_t{}, nil); err != nil {
		return fmt.Errorf("clear the signal mask: %w", err)
	}
	if err := os.Setenv(signalsResetEnv, "1"); err != nil {
		return err
	}
	err = syscall.Exec("/proc/self/exe", os.Args, os.Environ())
	return fmt.Errorf("execute sandboxd again with no signal blocked or ignored: %w", err)
}

// ignoredSignals are the signals whose disposition is SIG_IGN.
func ignoredSignals() ([]syscall.Signal, error) {
	var ignored []syscall.Signal
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			continue
		}
		var old kernelSigaction
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), kernelSigsetSize, 0, 0); errno != 0 {
			return nil, fmt.Errorf("read the disposition of signal %v: %w", sig, errno)
		}
		if old[0] == sigIgn {
			ignored = append(ignored, sig)
		}
	}
	return ignored, nil
}
