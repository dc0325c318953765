package executor

import (
	"context"
	"os"
	"testing"

	"sandboxd/spec"
)

func TestMain(m *testing.M) {
	RunBoxInitIfRequested()
	os.Exit(m.Run())
}

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

func newNative(t *testing.T) *Native {
	t.Helper()
	n, err := NewNative(NativeConfig{StateDir: t.TempDir(), UIDBase: 60000, Dirs: spec.DefaultDirs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func TestNativeRunsTrue(t *testing.T) {
	n := newNative(t)
	req := &spec.RunRequest{Argv: []string{"sh", "-c", "exit 123"}, Limits: spec.Limits{CPUTime: f64(1), Processes: i64(4)}}
	res, err := n.Run(context.Background(), 0, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v exit=%v", res, *res.ExitCode)
}
