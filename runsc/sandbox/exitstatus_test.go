package sandbox

import (
	"syscall"
	"testing"
)

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		ws   syscall.WaitStatus
		want int
	}{
		{0, 0},
		{3 << 8, 3},           // exit(3)
		{255 << 8, 255},       // exit(255)
		{9, 128 + 9},          // killed by SIGKILL
		{15, 128 + 15},        // killed by SIGTERM
		{11 | 0x80, 128 + 11}, // SIGSEGV with core dump
	} {
		if got := ExitStatus(tc.ws); got != tc.want {
			t.Errorf("ExitStatus(%#x) = %d, want %d", uint32(tc.ws), got, tc.want)
		}
	}
}
