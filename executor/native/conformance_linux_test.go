package native

import (
	"testing"

	"sandboxd/executor/executortest"
	"sandboxd/spec"
)

// The conformance cases hold for every backend: the native one here, isolate
// in executor/isolate.

func TestNativeConformance(t *testing.T) {
	n, err := New(Config{StateDir: t.TempDir(), UIDBase: executortest.UIDs(8), Dirs: spec.DefaultDirs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	executortest.Conformance(t, n)
}
