package native

import "golang.org/x/sys/unix"

// nativeAuditArch is the seccomp architecture of this build's system calls.
const nativeAuditArch = unix.AUDIT_ARCH_AARCH64
