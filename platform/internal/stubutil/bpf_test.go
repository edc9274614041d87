package stubutil

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestProgramAssemble(t *testing.T) {
	var b Program
	b.LoadAbs(SeccompDataNR)
	b.JEQ(unix.SYS_PAUSE, "allow", "")
	b.JEQ(unix.SYS_EXIT, "allow", "kill")
	b.Label("kill")
	b.Ret(SeccompRetKillProcess)
	b.Label("allow")
	b.Ret(SeccompRetAllow)
	got, err := b.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	want := []unix.SockFilter{
		LoadAbs(SeccompDataNR),
		JEQ(unix.SYS_PAUSE, 2, 0),
		JEQ(unix.SYS_EXIT, 1, 0),
		Ret(SeccompRetKillProcess),
		Ret(SeccompRetAllow),
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("instruction %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestProgramBadJumps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(*Program)
	}{
		{"unknown", func(b *Program) { b.JEQ(0, "nowhere", "") }},
		{"backward", func(b *Program) { b.Label("back"); b.JEQ(0, "back", "") }},
		{"far", func(b *Program) {
			b.JEQ(0, "", "end")
			for range 256 {
				b.Ret(0)
			}
			b.Label("end")
			b.Ret(0)
		}},
	} {
		var b Program
		tc.build(&b)
		if _, err := b.Assemble(); err == nil {
			t.Errorf("%s: assembled", tc.name)
		}
	}
}
