package native

import (
	"encoding/binary"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The box's filters give each call the answer the design says, run in
// x/net/bpf's interpreter on seccomp_data as the kernel lays it out.
func TestBoxFiltersAnswers(t *testing.T) {
	allow, kill := uint32(unix.SECCOMP_RET_ALLOW), uint32(unix.SECCOMP_RET_KILL_PROCESS)
	noFamily := unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
	type call struct {
		name   string
		arch   uint32
		nr     uint32
		a0, a2 uint64
	}
	native := func(name string, nr uintptr, a0, a2 uint64) call {
		return call{name, nativeAuditArch, uint32(nr), a0, a2}
	}
	common := []struct {
		call
		want uint32
	}{
		{native("read", unix.SYS_READ, 0, 0), allow},
		{native("unshare", unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0), eperm},
		{native("lookup_dcookie (the last denied)", unix.SYS_LOOKUP_DCOOKIE, 0, 0), eperm},
		{native("keyctl", unix.SYS_KEYCTL, 0, 0), eperm},
		{native("io_uring_setup", unix.SYS_IO_URING_SETUP, 0, 0), enosys},
		{native("clone of a thread", unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_THREAD, 0), allow},
		{native("clone of a process", unix.SYS_CLONE, uint64(unix.SIGCHLD), 0), allow},
		{native("clone into a user namespace", unix.SYS_CLONE, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD), 0), eperm},
		{native("clone into a time namespace", unix.SYS_CLONE, unix.CLONE_NEWTIME, 0), eperm},
		{native("socket AF_INET6", unix.SYS_SOCKET, unix.AF_INET6, 0), allow},
		{native("socketpair AF_UNIX", unix.SYS_SOCKETPAIR, unix.AF_UNIX, 0), allow},
		{native("socket AF_INET with upper bits", unix.SYS_SOCKET, 1<<32|unix.AF_INET, 0), noFamily},
		{native("socket AF_VSOCK", unix.SYS_SOCKET, unix.AF_VSOCK, 0), noFamily},
		{native("socket netlink route", unix.SYS_SOCKET, unix.AF_NETLINK, unix.NETLINK_ROUTE), allow},
		{native("socket netlink audit", unix.SYS_SOCKET, unix.AF_NETLINK, unix.NETLINK_AUDIT), noFamily},
		{native("x32 read", unix.SYS_READ|x32SyscallBit, 0, 0), kill},
		{call{"i386 read", unix.AUDIT_ARCH_I386, 3, 0, 0}, kill},
	}
	for _, initNeedsClone3 := range []bool{false, true} {
		initFilter, programFilter, err := boxFilters(initNeedsClone3)
		if err != nil {
			t.Fatal(err)
		}
		clone3 := native("clone3", unix.SYS_CLONE3, 0, 0)
		if initNeedsClone3 {
			expectAnswer(t, initFilter, "init", clone3.arch, clone3.nr, 0, 0, allow)
			expectAnswer(t, programFilter, "program", clone3.arch, clone3.nr, 0, 0, enosys)
			expectAnswer(t, programFilter, "program", nativeAuditArch, unix.SYS_READ, 0, 0, allow)
		} else {
			expectAnswer(t, initFilter, "init", clone3.arch, clone3.nr, 0, 0, enosys)
			if programFilter != nil {
				t.Errorf("a program gets a filter of its own though the init refuses clone3")
			}
		}
		for _, c := range common {
			expectAnswer(t, initFilter, c.name, c.arch, c.nr, c.a0, c.a2, c.want)
		}
	}
}

// expectAnswer runs filter on one call's seccomp_data.
func expectAnswer(t *testing.T, filter *syscall.SockFprog, name string, arch, nr uint32, a0, a2 uint64, want uint32) {
	t.Helper()
	var raw []bpf.RawInstruction
	for _, i := range unsafe.Slice(filter.Filter, filter.Len) {
		raw = append(raw, bpf.RawInstruction{Op: i.Code, Jt: i.Jt, Jf: i.Jf, K: i.K})
	}
	insts, _ := bpf.Disassemble(raw)
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	data := make([]byte, 64) // struct seccomp_data: nr, arch, ip, args[6]
	putWord(data[0:], nr)
	putWord(data[4:], arch)
	putArg(data[16:], a0)
	putArg(data[32:], a2)
	got, err := vm.Run(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if uint32(got) != want {
		t.Errorf("%s: filter answered %#x, want %#x", name, got, want)
	}
}

// putWord stores a 32-bit field of seccomp_data as the interpreter loads it:
// in network byte order (the kernel loads seccomp_data's words natively).
func putWord(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }

// putArg stores a 64-bit argument as two words, the low one first (as
// argLow and argHigh read it on a little-endian machine).
func putArg(b []byte, v uint64) {
	putWord(b, uint32(v))
	putWord(b[4:], uint32(v>>32))
}
