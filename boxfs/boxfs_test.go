package boxfs

import "testing"

func TestRelPath(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt": "a.txt", "dir/../b": "b", "/space/c": "c", "./d/": "d", "/space/e/../f": "f",
	} {
		if got, err := relPath(in, false); err != nil || got != want {
			t.Errorf("relPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"../x", "/etc/passwd", "/spacex/y", "a/../../b", "", "/space", "x\x00y"} {
		if got, err := relPath(bad, false); err == nil {
			t.Errorf("relPath(%q) = %q, accepted", bad, got)
		}
	}
	if got, err := relPath("", true); err != nil || got != "." {
		t.Errorf("relPath of /space itself for a listing: %q, %v", got, err)
	}
}
