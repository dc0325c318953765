package native

import (
	"fmt"
	"slices"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
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

var deniedSyscalls = []string{
	// namespaces and mounts (mount and umount2 stay: the init shows and
	// hides host views with them; a program, without capabilities and
	// without a way to a user namespace of its own, cannot use them)
	"unshare", "setns", "pivot_root", "chroot",
	"open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	// kernel keyrings, BPF, perf, userfaultfd
	"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
	// the machine itself
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "iopl", "ioperm",
	"open_by_handle_at", "lookup_dcookie",
}

// notImplemented are refused with ENOSYS, so that libraries fall back to
// plain system calls. clone3 joins them for programs: it passes its flags in
// memory a filter cannot read (glibc then uses clone, whose flags it can).
var notImplemented = []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}

// confineInit applies the box's filter to the init (and so to everything
// it will start), and returns the filter each program must get on top of
// it, if any.
func confineInit(initNeedsClone3 bool) (programFilter *syscall.SockFprog, err error) {
	denied := []seccomp.SyscallGroup{
		{Action: seccomp.ActionErrno, Names: deniedSyscalls, NamesWithCondtions: []seccomp.NameWithConditions{{
			Name:       "clone",
			Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: namespaceFlags}},
		}}},
		{Action: enosys, Names: notImplemented},
	}
	noClone3 := seccomp.SyscallGroup{Action: enosys, Names: []string{"clone3"}}
	if initNeedsClone3 {
		if programFilter, err = assemble(nil, noClone3); err != nil {
			return nil, err
		}
	} else {
		denied = append(denied, noClone3)
	}
	initFilter, err := assemble(socketRule(), denied...)
	if err != nil {
		return nil, err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(initFilter))); errno != 0 {
		return nil, fmt.Errorf("apply seccomp filter: %w", errno)
	}
	return programFilter, nil
}

// enosys refuses a call as not implemented, so that libraries fall back.
const enosys = seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)

// nativeOnly kills a process that makes a system call of another ABI than
// the native one (i386's int 0x80, x32): the rules below are written for the
// native numbers only, and another ABI's calls would pass them unchecked.
var nativeOnly = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: nativeAuditArch, SkipTrue: 1},
	bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
	bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
	bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
	bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
}

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
// nativeOnly, with the call's number loaded, and ends in the instruction
// after it, where the library's part of the filter loads the number again.
// (The library cannot say this rule: after a failed argument condition it
// compares the argument with the next rules' call numbers.)
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
	)
	return rule
}

// argLow and argHigh load the low and the high half of a system call's
// argument from seccomp_data (little-endian, as amd64 and arm64 are).
func argLow(i uint32) bpf.Instruction  { return bpf.LoadAbsolute{Off: 16 + 8*i, Size: 4} }
func argHigh(i uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: 16 + 8*i + 4, Size: 4} }

// assemble builds a filter that allows everything of the native ABI but
// what the rules (instructions that follow nativeOnly) and the groups refuse.
func assemble(rules []bpf.Instruction, groups ...seccomp.SyscallGroup) (*syscall.SockFprog, error) {
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: groups}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	raw, err := bpf.Assemble(slices.Concat(nativeOnly, rules, insts))
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	filter := make([]syscall.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = syscall.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &syscall.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}, nil
}
