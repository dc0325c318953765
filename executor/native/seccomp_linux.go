package native

import (
	"fmt"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter of every process in a box. The box user holds no
// capability, so most of what it refuses would fail anyway; what it stops
// is the way to get capabilities back (a user namespace, where the program
// is root, and from there mounts and the kernel's less trodden paths),
// interfaces with a long record of kernel exploits, and sockets that reach
// past the box's network namespace. Everything else a contest program or a
// compiler needs is allowed.
//
// Attaching a filter costs about 0.1 ms (the kernel compiles it), as much
// as a fifth of a small run; so the box's init confines itself once, after
// building the box, and every program inherits the filter. The init needs
// none of what it refuses, except clone3 on cgroup v2, where programs are
// born in their cgroup with it: there each program gets a one-rule filter
// of its own for clone3.

// namespaceFlags are the clone flags that make a new namespace.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// deniedSyscalls are refused with EPERM. They are this build's numbers
// (x/sys/unix), not names looked up in a table of every architecture's
// calls: such a table, built when the program starts, cost 1-2 ms of every
// start of sandboxd and of every box's init.
var deniedSyscalls = append([]uint32{
	// namespaces and mounts (mount and umount2 stay: the init shows and
	// hides host views with them; a program, without capabilities and
	// without a way to a user namespace of its own, cannot use them);
	// open_tree_attr is Linux 6.15's open_tree and mount_setattr in one
	unix.SYS_UNSHARE, unix.SYS_SETNS, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_OPEN_TREE, unix.SYS_OPEN_TREE_ATTR, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_MOUNT_SETATTR,
	// kernel keyrings, BPF, perf, userfaultfd
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	// the machine itself
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD, unix.SYS_SYSLOG,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_LOOKUP_DCOOKIE,
}, archDeniedSyscalls...)

// notImplemented are refused with ENOSYS, so that libraries fall back to
// plain system calls. clone3 joins them for programs: it passes its flags in
// memory a filter cannot read (glibc then uses clone, whose flags it can).
var notImplemented = []uint32{unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER}

// confineInit applies the box's filter to the init (and so to everything
// it will start), and returns the filter each program must get on top of
// it, if any.
func confineInit(initNeedsClone3 bool) (programFilter *syscall.SockFprog, err error) {
	initFilter, programFilter, err := boxFilters(initNeedsClone3)
	if err != nil {
		return nil, err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(initFilter))); errno != 0 {
		return nil, fmt.Errorf("apply seccomp filter: %w", errno)
	}
	return programFilter, nil
}

// boxFilters builds the init's filter and the program's, if it needs one.
func boxFilters(initNeedsClone3 bool) (initFilter, programFilter *syscall.SockFprog, err error) {
	refused := slices.Concat(socketRule(), refuseCalls(deniedSyscalls, eperm), refuseCalls(notImplemented, enosys))
	noClone3 := refuseCalls([]uint32{unix.SYS_CLONE3}, enosys)
	if initNeedsClone3 {
		if programFilter, err = assemble(noClone3); err != nil {
			return nil, nil, err
		}
	} else {
		refused = append(refused, noClone3...)
	}
	if initFilter, err = assemble(slices.Concat(refused, cloneNamespaceRule())); err != nil {
		return nil, nil, err
	}
	return initFilter, programFilter, nil
}

// eperm and enosys are the answers of a refused call: EPERM, or ENOSYS for
// one that libraries should take for absent and fall back from.
const (
	eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// refuseCalls answers each of the calls with ret. It expects the call's number
// loaded, and leaves it loaded for the next rule.
func refuseCalls(calls []uint32, ret uint32) []bpf.Instruction {
	var rule []bpf.Instruction
	for _, nr := range calls {
		rule = append(rule, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: nr, SkipTrue: 1}, bpf.RetConstant{Val: ret})
	}
	return rule
}

// cloneNamespaceRule refuses with EPERM a clone(2) that makes a namespace
// (its flags are its first argument, of which they are in the low half). It
// loads the argument, so it comes last.
func cloneNamespaceRule() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.SYS_CLONE, SkipTrue: 3},
		argLow(0),
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: namespaceFlags, SkipFalse: 1},
		bpf.RetConstant{Val: eperm},
	}
}

// nativeOnly kills a process that makes a system call of another ABI than
// the native one (i386's int 0x80, x32): the rules below are written for the
// native numbers only, and another ABI's calls would pass them unchecked.
var nativeOnly = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: nativeAuditArch, SkipTrue: 1},
	bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
	loadCallNumber,
	bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
	bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
}

// loadCallNumber loads seccomp_data.nr.
var loadCallNumber = bpf.LoadAbsolute{Off: 0, Size: 4}

// x32SyscallBit marks the x32 ABI's system call numbers on x86-64.
const x32SyscallBit = 0x40000000

// socketFamilies are the socket families a box needs: Unix sockets (local
// IPC; the nix daemon's socket during installs) and IPv4 and IPv6, in the
// box's own network namespace, whose one interface is a loopback. netlink
// is allowed for its routing protocol only, which shows that namespace
// alone and which getifaddrs, glibc's getaddrinfo (AI_ADDRCONFIG) and
// mq_notify use. Every other family is refused: vsock is not per network
// namespace and reaches the hypervisor of a virtual machine; packet, XDP,
// Bluetooth, CAN, TIPC, AF_ALG and the rest reach past the namespace or into
// kernel code no contest program needs, and a family's first socket may load
// its kernel module.
var socketFamilies = []uint32{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6}

// socketRule refuses socket(2) and socketpair(2) of the other families with
// EAFNOSUPPORT, the kernel's own answer for a family it lacks, which
// libraries take for "not here" (EPERM or EACCES read as a fault to
// report). The family and the protocol are ints, of which seccomp sees the
// whole 64-bit register: one with upper bits set is refused. It follows
// nativeOnly, with the call's number loaded, and ends loading it again,
// where every way through it that does not refuse leads.
func socketRule() []bpf.Instruction {
	n := len(socketFamilies)
	refuse, next := 10+n, 11+n // indexes in the rule
	skip := func(from, to int) uint8 { return uint8(to - from - 1) }
	rule := []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_SOCKET, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_SOCKETPAIR, SkipFalse: skip(1, next)},
		argHigh(0),
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: skip(3, refuse)},
		argLow(0),
	}
	for _, family := range socketFamilies {
		rule = append(rule, bpf.JumpIf{Cond: bpf.JumpEqual, Val: family, SkipTrue: skip(len(rule), next)})
	}
	rule = append(rule,
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.AF_NETLINK, SkipTrue: skip(5+n, refuse)},
		argHigh(2),
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: skip(7+n, refuse)},
		argLow(2),
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.NETLINK_ROUTE, SkipTrue: skip(9+n, next)},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)},
		loadCallNumber,
	)
	return rule
}

// argLow and argHigh load the low and the high half of a system call's
// argument from seccomp_data (little-endian, as amd64 and arm64 are).
func argLow(i uint32) bpf.Instruction  { return bpf.LoadAbsolute{Off: 16 + 8*i, Size: 4} }
func argHigh(i uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: 16 + 8*i + 4, Size: 4} }

// assemble builds a filter that allows everything of the native ABI but
// what the rules (instructions that follow nativeOnly, the call's number
// loaded) refuse.
func assemble(rules []bpf.Instruction) (*syscall.SockFprog, error) {
	raw, err := bpf.Assemble(slices.Concat(nativeOnly, rules, []bpf.Instruction{bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}}))
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	filter := make([]syscall.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = syscall.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &syscall.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}, nil
}
