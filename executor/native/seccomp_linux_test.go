package native

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
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
	if got := answer(t, filterVM(t, filter), seccompData(arch, nr, [6]uint64{a0, 0, a2})); got != want {
		t.Errorf("%s: filter answered %#x, want %#x", name, got, want)
	}
}

// Every call number 0..1023 (and the x32 ABI's, and numbers past every
// table) of every architecture a process can make calls of, with arguments
// that matter to the rules (each namespace flag, families, protocols, upper
// halves set) and arguments equal to the numbers the filter compares, gets
// from the box's filters the answer the rules say: ruleAnswer, written from
// the lists and the design, not from the filter's layout. A jump off by one,
// a rule that shadows another or a missing final return shows here.
func TestBoxFiltersAgreeWithTheirRules(t *testing.T) {
	values := argumentValues()
	var nrs []uint32
	for nr := uint32(0); nr < 1024; nr++ {
		nrs = append(nrs, nr, nr|x32SyscallBit)
	}
	nrs = append(nrs, x32SyscallBit-1, 0x7fffffff, 0x80000000, 0xffffffff)
	// The other one of x86-64 and arm64, their 32-bit ABIs, and garbage:
	// the native value but one bit, or without its 64-bit bit.
	otherArches := []uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM,
		nativeAuditArch ^ 1, nativeAuditArch &^ 0x80000000, 0, 0xffffffff}
	for _, initNeedsClone3 := range []bool{false, true} {
		initFilter, programFilter, err := boxFilters(initNeedsClone3)
		if err != nil {
			t.Fatal(err)
		}
		initVM := filterVM(t, initFilter)
		var programVM *bpf.VM
		if programFilter != nil {
			programVM = filterVM(t, programFilter)
		}
		failures := 0
		check := func(arch, nr uint32, args [6]uint64) {
			data := seccompData(arch, nr, args)
			forInit := answer(t, initVM, data)
			forProgram := forInit
			if programVM != nil {
				forProgram = stricter(answer(t, programVM, data), forInit)
			}
			wantInit, wantProgram := ruleAnswer(initNeedsClone3, false, arch, nr, args), ruleAnswer(initNeedsClone3, true, arch, nr, args)
			if (forInit != wantInit || forProgram != wantProgram) && failures < 20 {
				failures++
				t.Errorf("initNeedsClone3 %v, arch %#x, call %d (%#x), arguments %#x: init's answer %#x, want %#x; program's %#x, want %#x",
					initNeedsClone3, arch, nr, nr, args, forInit, wantInit, forProgram, wantProgram)
			}
		}
		for _, arch := range otherArches {
			if arch == nativeAuditArch {
				continue
			}
			for _, nr := range nrs {
				check(arch, nr, [6]uint64{})
			}
		}
		for _, nr := range nrs {
			for i, v := range values {
				// Each value as the first argument, with others beside it.
				w := values[(i*7+3)%len(values)]
				check(nativeAuditArch, nr, [6]uint64{v, w, w, v, w, v})
			}
		}
		// The calls whose rules read arguments: every pair of the family
		// (or the flags) and the protocol.
		for _, nr := range []uint32{unix.SYS_SOCKET, unix.SYS_SOCKETPAIR, unix.SYS_CLONE} {
			for _, a0 := range values {
				for _, a2 := range values {
					check(nativeAuditArch, nr, [6]uint64{a0, unix.SOCK_RAW, a2})
				}
			}
		}
	}
}

// ruleAnswer is what the design (and PROTOCOL.md) says a process of a box
// gets for a call: another ABI is killed; sockets of other families, or of
// another netlink protocol, or with the upper half of the family or the
// protocol set, fail with EAFNOSUPPORT; deniedSyscalls with EPERM;
// notImplemented with ENOSYS; clone3 with ENOSYS, in the init too unless it
// needs it; a clone that makes a namespace with EPERM (clone reads the low
// half of its flags only).
func ruleAnswer(initNeedsClone3, forProgram bool, arch, nr uint32, args [6]uint64) uint32 {
	family, protocol := args[0], args[2]
	switch {
	case arch != nativeAuditArch || nr >= x32SyscallBit:
		return unix.SECCOMP_RET_KILL_PROCESS
	case nr == unix.SYS_SOCKET || nr == unix.SYS_SOCKETPAIR:
		if family <= math.MaxUint32 && slices.Contains(socketFamilies, uint32(family)) || family == unix.AF_NETLINK && protocol == unix.NETLINK_ROUTE {
			return unix.SECCOMP_RET_ALLOW
		}
		return unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
	case slices.Contains(deniedSyscalls, nr):
		return eperm
	case slices.Contains(notImplemented, nr):
		return enosys
	case nr == unix.SYS_CLONE3 && (forProgram || !initNeedsClone3):
		return enosys
	case nr == unix.SYS_CLONE && uint32(args[0])&namespaceFlags != 0:
		return eperm
	}
	return unix.SECCOMP_RET_ALLOW
}

// argumentValues are the values of an argument tried with each call: each
// bit alone (each namespace flag among them, and the upper half), every
// small number (families, netlink protocols), flag words of fork and of
// threads, and every call number the filters compare, so that a rule that
// compares an argument where it means the call's number shows.
func argumentValues() []uint64 {
	values := []uint64{math.MaxUint64, math.MaxUint32, 1<<32 | unix.AF_INET, 1<<32 | unix.NETLINK_ROUTE,
		namespaceFlags, namespaceFlags | 1<<32, uint64(unix.SIGCHLD), unix.CLONE_VFORK | unix.CLONE_VM | uint64(unix.SIGCHLD),
		unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM |
			unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID}
	for b := range 64 {
		values = append(values, 1<<b)
	}
	for n := range uint64(64) {
		values = append(values, n)
	}
	for _, nr := range slices.Concat(deniedSyscalls, notImplemented, []uint32{unix.SYS_CLONE3, unix.SYS_CLONE, unix.SYS_SOCKET, unix.SYS_SOCKETPAIR}) {
		values = append(values, uint64(nr))
	}
	return values
}

// Each comparison in a box's filter tests the field of seccomp_data that
// one load put in the accumulator, whichever way led to it, and every
// instruction is reached. (A rule that leaves an argument loaded where the
// next rule compares call numbers refuses or allows a call by the value of
// its argument: go-seccomp-bpf did so after a failed argument condition.)
func TestBoxFiltersCompareOneFieldEach(t *testing.T) {
	for _, initNeedsClone3 := range []bool{false, true} {
		initFilter, programFilter, err := boxFilters(initNeedsClone3)
		if err != nil {
			t.Fatal(err)
		}
		filters := map[string]*syscall.SockFprog{"init": initFilter}
		if programFilter != nil {
			filters["program"] = programFilter
		}
		for name, filter := range filters {
			for _, problem := range loadProblems(instructions(t, filter)) {
				t.Errorf("initNeedsClone3 %v, %s's filter: %s", initNeedsClone3, name, problem)
			}
		}
	}
}

// loadProblems follows every way through a filter (its jumps go forward
// only), keeping the offsets whose word the accumulator may hold, and
// reports each comparison of a word that depends on the way, each
// comparison before any load, each instruction never reached, and each
// instruction of another kind than the filters use.
func loadProblems(insts []bpf.Instruction) []string {
	const nothing = -1
	held := make([]map[int]bool, len(insts))
	held[0] = map[int]bool{nothing: true}
	var problems []string
	flow := func(to int, offsets map[int]bool) {
		if held[to] == nil {
			held[to] = map[int]bool{}
		}
		maps.Copy(held[to], offsets)
	}
	for i, inst := range insts {
		if held[i] == nil {
			problems = append(problems, fmt.Sprintf("instruction %d (%v) is never reached", i, inst))
			continue
		}
		switch inst := inst.(type) {
		case bpf.LoadAbsolute:
			flow(i+1, map[int]bool{int(inst.Off): true})
		case bpf.JumpIf:
			if len(held[i]) != 1 || held[i][nothing] {
				problems = append(problems, fmt.Sprintf("instruction %d (%v) compares the word at offsets %v, depending on the way to it", i, inst, slices.Sorted(maps.Keys(held[i]))))
			}
			flow(i+1+int(inst.SkipTrue), held[i])
			flow(i+1+int(inst.SkipFalse), held[i])
		case bpf.RetConstant:
		default:
			problems = append(problems, fmt.Sprintf("instruction %d (%v) is of a kind the filters do not use", i, inst))
		}
	}
	return problems
}

// filterVM loads a filter into x/net/bpf's interpreter, which refuses a
// jump past the end and a program that does not end in a return.
func filterVM(t *testing.T, filter *syscall.SockFprog) *bpf.VM {
	t.Helper()
	vm, err := bpf.NewVM(instructions(t, filter))
	if err != nil {
		t.Fatalf("load the filter: %v", err)
	}
	return vm
}

func instructions(t *testing.T, filter *syscall.SockFprog) []bpf.Instruction {
	t.Helper()
	var raw []bpf.RawInstruction
	for _, i := range unsafe.Slice(filter.Filter, filter.Len) {
		raw = append(raw, bpf.RawInstruction{Op: i.Code, Jt: i.Jt, Jf: i.Jf, K: i.K})
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("the filter has instructions x/net/bpf does not know")
	}
	return insts
}

// answer runs a filter on one call's seccomp_data.
func answer(t *testing.T, vm *bpf.VM, data []byte) uint32 {
	t.Helper()
	got, err := vm.Run(data)
	if err != nil {
		t.Fatalf("run the filter: %v", err)
	}
	return uint32(got)
}

// stricter is the answer of two filters together, as the kernel decides
// it: the action that comes first of kill, errno and allow (the only ones
// the filters give).
func stricter(a, b uint32) uint32 {
	rank := map[uint32]int{unix.SECCOMP_RET_KILL_PROCESS: 0, unix.SECCOMP_RET_ERRNO: 1, unix.SECCOMP_RET_ALLOW: 2}
	if rank[b&unix.SECCOMP_RET_ACTION_FULL] < rank[a&unix.SECCOMP_RET_ACTION_FULL] {
		return b
	}
	return a
}

// seccompData lays out struct seccomp_data (nr, arch, ip, args[6]).
func seccompData(arch, nr uint32, args [6]uint64) []byte {
	data := make([]byte, 64)
	putWord(data[0:], nr)
	putWord(data[4:], arch)
	for i, a := range args {
		putArg(data[16+8*i:], a)
	}
	return data
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
