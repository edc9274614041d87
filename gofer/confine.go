package gofer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// keepCaps are the capabilities serving needs: owning and moding files for
// the sandbox's users whatever the host permissions say (the sentry has
// checked the sandbox's own permissions). mknod of FIFOs and sockets needs
// no capability, and the root is entered with pivot_root before the rest
// go. Everything else is dropped from every set.
var keepCaps = []uintptr{
	unix.CAP_CHOWN,
	unix.CAP_DAC_OVERRIDE,
	unix.CAP_DAC_READ_SEARCH,
	unix.CAP_FOWNER,
	unix.CAP_FSETID,
}

// SeccompLogEnv, when set to "1" in the gofer's environment, makes a
// syscall outside the allowlist be logged by the host kernel (audit/dmesg)
// instead of killing the gofer: a debugging aid, never for production.
const SeccompLogEnv = "VEIL_GOFER_SECCOMP_LOG"

// CloneFlags are the namespaces the process that will call Confine must be
// started in (exec.Cmd.SysProcAttr.Cloneflags): Confine rearranges mounts
// and may only do so in a mount namespace of its own. The gofer needs no
// network, IPC or hostname of the host either.
const CloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET

// Confine locks the calling process (the gofer) in: root becomes its whole
// file tree, it keeps only keepCaps, no_new_privs is set and a seccomp
// allowlist kills it on any other syscall. It must run before any request
// is served and before any other goroutine does work, in a process started
// with CloneFlags (Confine refuses to touch the mount namespace of its
// parent or of PID 1). Mount roots other than root must be opened with
// OpenRoot before Confine; afterwards serve root as "/".
//
// The new root is entered with pivot_root and the old one detached, so no
// host mount stays reachable; the roots of other mounts are held only as
// the FDs OpenRoot gave before.
func Confine(root string) error {
	if err := checkOwnMountNS(); err != nil {
		return err
	}
	// /proc vanishes from view below; keep the handle to it that reopen
	// needs.
	if _, err := openProcSelfFD(); err != nil {
		return err
	}
	if err := enterRoot(root); err != nil {
		return err
	}
	// The sentry applies the application's umask; the gofer must not add
	// its own.
	unix.Umask(0)
	raiseNoFile()
	if err := dropCaps(); err != nil {
		return err
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("gofer: set no_new_privs: %w", err)
	}
	action := uint32(unix.SECCOMP_RET_KILL_PROCESS)
	if os.Getenv(SeccompLogEnv) == "1" {
		action = unix.SECCOMP_RET_LOG
	}
	if err := installSeccomp(action); err != nil {
		return fmt.Errorf("gofer: install seccomp filter: %w", err)
	}
	return nil
}

// checkOwnMountNS refuses to run in the mount namespace of the parent or
// of PID 1: making mounts private and pivoting there would change the
// host's view of its own files.
func checkOwnMountNS() error {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &self); err != nil {
		return fmt.Errorf("gofer: confine: %w", err)
	}
	for _, other := range []string{fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()), "/proc/1/ns/mnt"} {
		var st unix.Stat_t
		if err := unix.Stat(other, &st); err != nil {
			continue // gone or not visible: not our namespace to compare
		}
		if st.Ino == self.Ino && st.Dev == self.Dev {
			return fmt.Errorf("gofer: confine: not in a mount namespace of its own (start the gofer with CLONE_NEWNS)")
		}
	}
	return nil
}

// enterRoot makes root the process's root directory.
func enterRoot(root string) error {
	// Nothing done below may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("gofer: make mounts private: %w", err)
	}
	// pivot_root needs the new root to be a mount point we can chdir into.
	// Binding a directory onto itself does that, except for "/": a lookup
	// of "/" never descends into a mount stacked on the root, so the root
	// is bound (recursively, a copy of the tree as it stands) onto a
	// staging directory instead. All of this is in the gofer's own mount
	// namespace.
	stage := root
	if filepath.Clean(root) == "/" {
		stage = ""
		for _, d := range []string{"/proc", "/mnt", "/tmp", "/srv"} {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				stage = d
				break
			}
		}
		if stage == "" {
			return fmt.Errorf("gofer: no directory to stage the root on")
		}
	}
	if err := unix.Mount(root, stage, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("gofer: bind %q onto %q: %w", root, stage, err)
	}
	if err := unix.Chdir(stage); err != nil {
		return fmt.Errorf("gofer: chdir %q: %w", stage, err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// detach then leaves only the new root.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("gofer: pivot_root into %q: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("gofer: detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("gofer: chdir /: %w", err)
	}
	return nil
}

// raiseNoFile lifts the soft FD limit to the hard one: every handle is an
// FD.
func raiseNoFile() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
}

// ErrNeedsNoCgo is returned by Confine in a binary linked with cgo (also
// any -race build): Go can then not change per-thread credentials on all
// threads. Build the gofer with CGO_ENABLED=0.
var ErrNeedsNoCgo = errors.New("gofer: Confine needs a binary built with CGO_ENABLED=0 (capabilities and no_new_privs are per thread)")

// allThreads runs a syscall on every thread of the process: credentials,
// capability sets and no_new_privs are per thread on Linux, and Go runs
// goroutines on any of its threads. It fails with ENOTSUP in a cgo binary.
func allThreads(trap, a1, a2, a3, a4, a5 uintptr) error {
	_, _, e := syscall.AllThreadsSyscall6(trap, a1, a2, a3, a4, a5, 0)
	if e == unix.ENOTSUP {
		return ErrNeedsNoCgo
	}
	if e != 0 {
		return e
	}
	return nil
}

// dropCaps empties the bounding and ambient sets of everything but
// keepCaps and leaves keepCaps as the only effective and permitted ones.
func dropCaps() error {
	keep := map[uintptr]bool{}
	var lo, hi uint32
	for _, c := range keepCaps {
		keep[c] = true
		if c < 32 {
			lo |= 1 << c
		} else {
			hi |= 1 << (c - 32)
		}
	}
	for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
		if keep[c] {
			continue
		}
		err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0, 0, 0)
		if err != nil && err != unix.EINVAL { // EINVAL: unknown to this kernel
			return fmt.Errorf("gofer: drop capability %d from bounding set: %w", c, err)
		}
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("gofer: clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: lo, Permitted: lo},
		{Effective: hi, Permitted: hi},
	}
	if err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0, 0, 0); err != nil {
		return fmt.Errorf("gofer: capset: %w", err)
	}
	return nil
}
