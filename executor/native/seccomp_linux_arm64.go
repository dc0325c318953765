package native

import "golang.org/x/sys/unix"

// nativeAuditArch is the seccomp architecture of this build's system calls.
const nativeAuditArch = unix.AUDIT_ARCH_AARCH64

// archDeniedSyscalls are the calls of deniedSyscalls that only this
// architecture has: none (arm64 has no I/O ports to open).
var archDeniedSyscalls []uint32
