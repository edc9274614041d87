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

// TestStdioSharedDescription: stdout and stderr that are one host open file
// description (a shell's `>f 2>&1`) are one description in the sandbox
// too, so interleaved writes follow each other instead of overwriting
// each other at two offsets; O_APPEND descriptions (`>>`) append. The
// file must hold what the same redirections give natively.
func TestStdioSharedDescription(t *testing.T) {
	needSandbox(t)
	sh := needTool(t, "sh")
	const script = `echo a; echo bbbb >&2; echo c; echo dd >&2`
	for _, tc := range []struct{ name, redir string }{
		{"2>&1", `> "$F" 2>&1`},
		{">>2>&1", `>> "$F" 2>&1`},
		{">>2>>", `>> "$F" 2>> "$F"`},
		{"<>", `1<> "$F" 2>&1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			contents := func(prefix []string) string {
				path := filepath.Join(t.TempDir(), "out")
				if err := os.WriteFile(path, []byte("previous contents, longer than the output\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				argv := append(prefix, sh, "-c", script)
				line := `"$@" ` + tc.redir
				r := runProc(t, 30*time.Second, append([]string{"env", "F=" + path, sh, "-c", line, "sh"}, argv...)...)
				if r.code != 0 {
					t.Fatalf("%q: exit %d, stderr %q", argv, r.code, r.stderr)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return string(got)
			}
			want := contents(nil)
			got := contents(runscArgs(t))
			checkNoLeftovers(t)
			if got != want {
				t.Errorf("file after %s: %q; natively %q", tc.redir, got, want)
			}
		})
	}
}
