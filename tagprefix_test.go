package imap

import "testing"

func TestInt2AP(t *testing.T) {
	tests := []struct {
		num  uint64
		want string
	}{
		{0, ""},
		{1, "B"},
		{15, "P"},
		{16, "BA"},
		{4096, "BAAA"},
		{0xffff, "PPPP"},
		{0x1234, "BCDE"},
		{^uint64(0), "PPPPPPPPPPPPPPPP"},
	}
	for _, tt := range tests {
		if got := string(Int2AP(tt.num)); got != tt.want {
			t.Errorf("Int2AP(%d) = %q, want %q", tt.num, got, tt.want)
		}
	}
	// imaplib's tag prefixes are random numbers in [4096, 65535]: always
	// four letters.
	for n := uint64(4096); n < 65536; n += 97 {
		if got := Int2AP(n); len(got) != 4 {
			t.Fatalf("Int2AP(%d) = %q, want four letters", n, got)
		}
	}
}
