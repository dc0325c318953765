package runtimes

import (
	"encoding/binary"
	"net"
	"path/filepath"
	"testing"
	"time"

	"sandboxd/spec"
)

// fakeDaemon answers one connection on a unix socket with hello, after
// reading the client's 8 bytes.
func fakeDaemon(t *testing.T, hello ...uint64) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "socket")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var buf [8]byte
		c.Read(buf[:])
		for _, w := range hello {
			binary.LittleEndian.PutUint64(buf[:], w)
			c.Write(buf[:])
		}
	}()
	return sock
}

func TestPingDaemon(t *testing.T) {
	v, err := PingDaemon(fakeDaemon(t, workerMagic2, 0x122), time.Second)
	if err != nil || v != "1.34" {
		t.Errorf("a daemon that answers: got %q, %v; want 1.34", v, err)
	}
	if _, err := PingDaemon(fakeDaemon(t, 0x1234, 0x122), time.Second); err == nil {
		t.Error("a socket that answers with the wrong hello passed for a nix daemon")
	}
	if _, err := PingDaemon(fakeDaemon(t), time.Second); err == nil {
		t.Error("a socket that hangs up passed for a nix daemon")
	}
	if _, err := PingDaemon(filepath.Join(t.TempDir(), "none"), time.Second); err == nil {
		t.Error("a missing socket passed for a nix daemon")
	}
}

func TestInstallResult(t *testing.T) {
	f, i := func(v float64) *float64 { return &v }, func(v int) *int { return &v }
	req := &spec.InstallRequest{CPUTime: f(1), WallTime: f(2)}
	metrics := func(cpu, real float64) spec.Metrics {
		return spec.Metrics{CPUTime: cpu, RealTime: real, Memory: 4096 * 1024}
	}
	cases := []struct {
		name   string
		run    spec.RunResult
		status string
		code   *int
		signal *int
	}{
		{"ok", spec.RunResult{Verdict: spec.VerdictOK, ExitCode: i(0), Metrics: metrics(0.5, 1)}, "", i(0), nil},
		{"exit 1", spec.RunResult{Verdict: spec.VerdictOK, ExitCode: i(1), Metrics: metrics(0.5, 1)}, "RE", i(1), nil},
		// Killed only at cpu_time + extra_time, but past cpu_time all the same.
		{"cpu within extra time", spec.RunResult{Verdict: spec.VerdictOK, ExitCode: i(0), Metrics: metrics(1.2, 1.3)}, "TO", nil, nil},
		{"wall", spec.RunResult{Verdict: spec.VerdictRealTimeLimit, Metrics: metrics(0.1, 2.5)}, "TO", nil, nil},
		{"signal", spec.RunResult{Verdict: spec.VerdictSignaled, ExitCode: i(-11), Metrics: metrics(0.1, 0.1)}, "SG", nil, i(11)},
		{"memory", spec.RunResult{Verdict: spec.VerdictMemoryLimitExceeded, Metrics: metrics(0.1, 0.1)}, "SG", nil, i(9)},
	}
	for _, c := range cases {
		r := installResult(req, c.run)
		status := ""
		if r.ExitStatus != nil {
			status = *r.ExitStatus
			if r.ExitMessage == nil || *r.ExitMessage == "" {
				t.Errorf("%s: status %s without a message", c.name, status)
			}
		}
		if status != c.status || !same(r.ExitCode, c.code) || !same(r.ExitSignal, c.signal) {
			t.Errorf("%s: got status %q code %v signal %v; want %q %v %v", c.name, status, deref(r.ExitCode), deref(r.ExitSignal), c.status, deref(c.code), deref(c.signal))
		}
		if *r.Memory != 4096 || *r.CPUTime != c.run.CPUTime || *r.WallTime != c.run.RealTime {
			t.Errorf("%s: metrics %d KB, %v s, %v s", c.name, *r.Memory, *r.CPUTime, *r.WallTime)
		}
	}
}

func same(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
