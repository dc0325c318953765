package spec

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuoteIsShortAndValidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt":                   `"a.txt"`,
		"a\xffb":                  `"a\xffb"`,
		strings.Repeat("é", 60):   `"` + strings.Repeat("é", 50) + `…"`,
		strings.Repeat("x", 5000): `"` + strings.Repeat("x", MaxQuoted) + `…"`,
	} {
		if got := Quote(in); got != want || !utf8.ValidString(got) {
			t.Errorf("Quote(%.20q…) = %q, want %q", in, got, want)
		}
	}
	// Cut between characters: "é" is two bytes.
	if got := Clip("a"+strings.Repeat("é", 60), MaxQuoted); got != "a"+strings.Repeat("é", 49)+"…" {
		t.Errorf("Clip cut inside a character: %q", got)
	}
}
