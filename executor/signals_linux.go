package executor

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// signalsResetEnv marks the process that ResetInheritedSignals executed
// again, so that it does so once; it holds the process's name.
const signalsResetEnv = "SANDBOXD_SIGNALS_RESET"

// ResetInheritedSignals keeps the signals that sandboxd inherited blocked
// or ignored from reaching the processes it starts. A judge that blocks
// signals to take them with sigwait, or a shell's `trap "" HUP`, passes its
// mask and its ignored signals on through exec, and so to programs (isolate's
// too), whose verdicts would change with them (SIGXFSZ blocked: a write past
// file_size_limit fails and the program goes on).
//
// The Go runtime hands the mask of the forking thread to every child, so
// sandboxd, when its threads have signals blocked, clears them and executes
// itself again, once; an ignored signal survives that, and stays ignored by
// sandboxd itself (`nohup sandboxd` outlives a hangup), but through a handler
// that drops it, which exec resets in a child, rather than SIG_IGN, which a
// child would keep. Call it first thing in main: it does not return when it
// executes sandboxd again.
func ResetInheritedSignals() error {
	if name, again := os.LookupEnv(signalsResetEnv); again {
		if err := os.Unsetenv(signalsResetEnv); err != nil {
			return err
		}
		// exec names a process after the file it executes: "exe" here.
		if err := os.WriteFile("/proc/self/comm", []byte(name), 0); err != nil {
			return fmt.Errorf("name sandboxd again after executing it: %w", err)
		}
	} else if err := executeWithNoSignalBlocked(); err != nil {
		return err
	}
	ignored, err := ignoredSignals()
	if err != nil || len(ignored) == 0 {
		return err
	}
	signal.Notify(make(chan os.Signal, 1), ignored...)
	// Some the runtime takes no handler for (32 and 34 here, beside the C
	// library's): those go back to their default, as in a new process.
	if ignored, err = ignoredSignals(); err != nil {
		return err
	}
	var defaultAction kernelSigaction
	for _, sig := range ignored {
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig.(syscall.Signal)), uintptr(unsafe.Pointer(&defaultAction)), 0, kernelSigsetSize, 0, 0); errno != 0 {
			return fmt.Errorf("reset the ignored signal %v: %w", sig, errno)
		}
	}
	return nil
}

// executeWithNoSignalBlocked executes sandboxd again from a thread with no
// signal blocked, if this one has any.
func executeWithNoSignalBlocked() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var blocked unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &blocked); err != nil {
		return fmt.Errorf("read the signal mask: %w", err)
	}
	if blocked == (unix.Sigset_t{}) {
		return nil
	}
	name, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		return fmt.Errorf("read sandboxd's name: %w", err)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &unix.Sigset_t{}, nil); err != nil {
		return fmt.Errorf("clear the signal mask: %w", err)
	}
	if err := os.Setenv(signalsResetEnv, strings.TrimSpace(string(name))); err != nil {
		return err
	}
	err = syscall.Exec("/proc/self/exe", os.Args, os.Environ())
	return fmt.Errorf("execute sandboxd again with no signal blocked: %w", err)
}

// The kernel's side of rt_sigaction: its struct sigaction (SIG_DFL is all
// zero), SIG_IGN, and the size of its signal set.
type kernelSigaction [4]uint64

const (
	sigIgn           = 1
	kernelSigsetSize = 8
)

// ignoredSignals are the signals whose disposition is SIG_IGN: at the start
// of main, those the Go runtime found ignored and left so.
func ignoredSignals() ([]os.Signal, error) {
	var ignored []os.Signal
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
