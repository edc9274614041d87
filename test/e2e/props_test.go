package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"golang.org/x/sys/unix"
)

func needBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("%s missing (Debian package busybox-static; make deps installs it)", busybox)
	}
}

// TestInitPID: the sandbox has its own PID namespace, and the first
// process in it is PID 1.
func TestInitPID(t *testing.T) {
	needSandbox(t)
	needBusybox(t)
	r := sandbox(t, 30*time.Second, busybox, "sh", "-c", "echo $$")
	if r.code != 0 || r.stdout != "1\n" {
		t.Errorf("echo $$: status %d, stdout %q; want 0, %q", r.code, r.stdout, "1\n")
	}
}

// TestUname: the sandbox reports the sentry's kernel release, not the
// host's.
func TestUname(t *testing.T) {
	needSandbox(t)
	needBusybox(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	host := unix.ByteSliceToString(u.Release[:])
	if host == kernel.Release {
		t.Fatalf("the host runs %q, the sentry's own release: cannot tell them apart", host)
	}
	r := sandbox(t, 30*time.Second, busybox, "uname", "-r")
	got := strings.TrimSpace(r.stdout)
	if r.code != 0 || got != kernel.Release {
		t.Errorf("uname -r in the sandbox: status %d, %q; want 0, %q (host: %q)", r.code, got, kernel.Release, host)
	}
}

// TestPrivateTmp: /tmp inside is the sandbox's own: a file written there
// does not reach the host, and a host file in /tmp is not visible inside.
func TestPrivateTmp(t *testing.T) {
	needSandbox(t)
	needBusybox(t)
	name := fmt.Sprintf("veil-e2e-tmp-%d-%d", os.Getpid(), time.Now().UnixNano())
	inside := filepath.Join("/tmp", name+"-inside")
	hostFile := filepath.Join("/tmp", name+"-host")
	if err := os.WriteFile(hostFile, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(hostFile)
	defer os.Remove(inside) // only if the sandbox leaked it
	script := fmt.Sprintf(`echo written > %s && cat %s; if [ -e %s ]; then echo host file visible; else echo host file hidden; fi`, inside, inside, hostFile)
	r := sandbox(t, 30*time.Second, busybox, "sh", "-c", script)
	if want := "written\nhost file hidden\n"; r.code != 0 || r.stdout != want {
		t.Errorf("sandbox: status %d, stdout %q; want 0, %q", r.code, r.stdout, want)
	}
	if _, err := os.Stat(inside); err == nil {
		t.Errorf("%s, written inside the sandbox, exists on the host", inside)
	} else if !os.IsNotExist(err) {
		t.Errorf("stat %s on the host: %v", inside, err)
	}
}

// TestProcSelfExe: /proc/self/exe names the executable as Linux does, with
// symbolic links resolved: on a merged-/usr host /bin/busybox is
// /usr/bin/busybox. The expected value is what the host kernel says for
// the same command.
func TestProcSelfExe(t *testing.T) {
	needSandbox(t)
	needBusybox(t)
	want, err := filepath.EvalSymlinks(busybox)
	if err != nil {
		t.Fatal(err)
	}
	nat := native(t, 30*time.Second, busybox, "readlink", "/proc/self/exe")
	if got := strings.TrimSpace(nat.stdout); got != want {
		t.Fatalf("host: readlink /proc/self/exe = %q, EvalSymlinks(%s) = %q", got, busybox, want)
	}
	r := sandbox(t, 30*time.Second, busybox, "readlink", "/proc/self/exe")
	if got := strings.TrimSpace(r.stdout); r.code != 0 || got != want {
		t.Errorf("sandbox: readlink /proc/self/exe: status %d, %q; want 0, %q (the host kernel's answer)", r.code, got, want)
	}
}
