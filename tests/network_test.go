package tests

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// open_box's "network": "loopback" brings up the loopback interface of the
// box's own network namespace; without it a box has no network at all.

// loopbackRun runs the probe's self-exchange over addr in a box and returns
// its reply and what it printed.
func loopbackRun(s *server, box int, addr string) (obj, string) {
	s.t.Helper()
	r := s.ok(with(run("./probe", "loopback", addr), "box", box, "stdout", "lo.txt"))
	return r, s.ok(obj{"command": "read_file", "box": box, "path": "lo.txt"})["content"].(string)
}

// interfaces lists what a box's program sees of the network: name → "up" or "down".
func interfaces(s *server, box int) map[string]string {
	s.t.Helper()
	r := s.ok(with(run("./probe", "ifaces"), "box", box, "stdout", "ifaces.txt"))
	out := s.ok(obj{"command": "read_file", "box": box, "path": "ifaces.txt"})["content"].(string)
	expectVerdict(s.t, r, "OK", code(0))
	seen := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, state, _ := strings.Cut(line, " ")
		seen[name] = state
	}
	return seen
}

// hostHasIPv6 tells whether the kernel offers IPv6 at all, which ::1 needs.
func hostHasIPv6() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}

func TestLoopbackNetwork(t *testing.T) {
	s := startServer(t)
	box := int(s.ok(obj{"command": "open_box", "network": "loopback"})["box"].(float64))
	s.installProbe(box)
	addrs := []string{"127.0.0.1"}
	if hostHasIPv6() {
		addrs = append(addrs, "::1")
	} else {
		t.Log("the kernel has no IPv6: ::1 is not tried")
	}
	check := func(when string) {
		for _, addr := range addrs {
			r, out := loopbackRun(s, box, addr)
			if r["exit_code"] != 0.0 || out != "ping\npong\n" {
				t.Errorf("%s: a program that listens on %s and connects to itself: %v, printed %q", when, addr, r, out)
			}
		}
		if got := interfaces(s, box); len(got) != 1 || got["lo"] != "up" {
			t.Errorf("%s: the box's interfaces are %v, want only lo, up", when, got)
		}
	}
	check("a new box")
	s.ok(obj{"command": "reset_box", "box": box})
	s.installProbe(box)
	check("after reset_box")
}

func TestNoNetworkByDefault(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	for _, addr := range []string{"127.0.0.1", "::1"} {
		r, out := loopbackRun(s, 0, addr)
		if r["exit_code"] != 1.0 {
			t.Errorf("a box without network: the loopback exchange on %s gave %v, printed %q; want it to fail", addr, r, out)
		}
	}
	for name, state := range interfaces(s, 0) {
		if state != "down" {
			t.Errorf("a box without network sees interface %s %s", name, state)
		}
	}
}

// The loopback of a box is its own: the host's listener is not there.
func TestLoopbackIsNotTheHosts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	s := startServer(t)
	box := int(s.ok(obj{"command": "open_box", "network": "loopback"})["box"].(float64))
	s.installProbe(box)
	r := s.ok(with(run("./probe", "connect", port), "box", box, "stdout", "net.txt"))
	out := s.ok(obj{"command": "read_file", "box": box, "path": "net.txt"})["content"]
	expectVerdict(t, r, "OK", code(1))
	if !strings.Contains(out.(string), "refused") {
		t.Errorf("connect to the host's listener on 127.0.0.1:%s from a loopback box: %q, want refused (nothing listens on the box's own loopback)", port, out)
	}
}

func TestOpenBoxNetworkRefused(t *testing.T) {
	s := startServer(t)
	for _, bad := range []any{"host", "none", "Loopback", 1, true, obj{}} {
		expectError(t, s.call(obj{"command": "open_box", "network": bad}), "invalid_argument")
	}
}
