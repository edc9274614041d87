//go:build linux && amd64

package boot

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// confineChild runs Confine (without seccomp, so it can inspect the
// result) and reports what it can still see; exit 7 means all checks held.
func confineChild() {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(103)
	}
	if err := Confine(ConfineOptions{NoSeccomp: true}); err != nil {
		fail("Confine: %v", err)
	}
	// The root is empty, unreadable (mode 0111, no CAP_DAC_OVERRIDE)
	// and read-only.
	if ents, err := os.ReadDir("/"); err == nil {
		fail("root listable: %v", ents)
	}
	for _, p := range []string{"/etc", "/proc/self", "/bin/sh"} {
		if _, err := os.Stat(p); err == nil {
			fail("%s visible after Confine", p)
		}
	}
	if err := os.Mkdir("/x", 0o755); err == nil {
		fail("mkdir in the new root succeeded")
	}
	if wd, _ := os.Getwd(); wd != "/" {
		fail("cwd %q", wd)
	}
	// No capabilities left on this thread, nor in the bounding set.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		fail("capget: %v", err)
	}
	if data[0].Effective|data[0].Permitted|data[1].Effective|data[1].Permitted|data[0].Inheritable != 0 {
		fail("capabilities left: %+v", data)
	}
	if r, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, unix.CAP_SYS_ADMIN, 0, 0, 0); r != 0 {
		fail("CAP_SYS_ADMIN still in the bounding set")
	}
	if r, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); r != 1 {
		fail("no_new_privs not set")
	}
	// Without CAP_SYS_CHROOT there is no way back out.
	if err := unix.Chroot("/"); err == nil {
		fail("chroot still permitted")
	}
	os.Exit(7)
}

// TestConfine runs Confine in a child started the way runsc starts the
// sentry: init of new PID and mount namespaces.
func TestConfine(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to create namespaces")
	}
	ps, out := runChild(t, "confine", &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	})
	if ps.ExitCode() != 7 {
		t.Errorf("confined child ended with %v; output %q", ps, out)
	}
	// The host's mounts are untouched.
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Errorf("host /proc damaged: %v", err)
	}
}

// TestConfineRefusesOutsideSandbox makes sure a stray Confine never
// re-roots the test's own (host) mount namespace.
func TestConfineRefusesOutsideSandbox(t *testing.T) {
	if os.Getpid() == 1 {
		t.Skip("running as a namespace init")
	}
	if err := Confine(ConfineOptions{}); err == nil {
		t.Fatal("Confine succeeded outside a fresh PID namespace")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Errorf("host /proc damaged: %v", err)
	}
}
