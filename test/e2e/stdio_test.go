package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStdoutFileOffset: when the sandbox's stdout is a regular file, the
// application's writes go through the caller's open file description, so
// they advance its offset like any process's would. A shell relies on
// this for `(runsc do cmd; echo more) > file`.
func TestStdoutFileOffset(t *testing.T) {
	needSandbox(t)
	needBusybox(t)
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("before\n"); err != nil {
		t.Fatal(err)
	}
	r := runProcStdout(t, 30*time.Second, f, append(runscArgs(t), busybox, "echo", "inside")...)
	checkNoLeftovers(t)
	if _, err := f.WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "before\ninside\nafter\n"; r != 0 || string(got) != want {
		t.Errorf("stdout file: status %d, contents %q; want 0, %q", r, got, want)
	}
}
