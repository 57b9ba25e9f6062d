package wire

import "testing"

func TestValidMessageID(t *testing.T) {
	for id, want := range map[string]bool{
		"0123456789abcdef0123456789abcdef": true,
		"a.b:c@d+e=f-g_h":                  true,
		"_x_":                              true,
		"__x":                              true,
		"":                                 false,
		".":                                false,
		"..":                               false,
		"__x__":                            false,
		"____":                             false,
		"a/b":                              false,
		"a b":                              false,
		string(make([]byte, 129)):          false,
	} {
		if got := ValidMessageID(id); got != want {
			t.Errorf("ValidMessageID(%q) = %v, want %v", id, got, want)
		}
	}
}
