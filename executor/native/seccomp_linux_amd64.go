package native

import "golang.org/x/sys/unix"

// nativeAuditArch is the seccomp architecture of this build's system calls.
const nativeAuditArch = unix.AUDIT_ARCH_X86_64

// archDeniedSyscalls are the calls of deniedSyscalls that only this
// architecture has: direct access to I/O ports.
var archDeniedSyscalls = []uint32{unix.SYS_IOPL, unix.SYS_IOPERM}
