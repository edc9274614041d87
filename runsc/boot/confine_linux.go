package boot

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ConfineOptions tunes Confine. The zero value is the production setting:
// empty root, no capabilities, seccomp on and fatal.
type ConfineOptions struct {
	// NoSeccomp skips the seccomp filter (--debug-no-seccomp).
	NoSeccomp bool
	// SeccompLog makes violations logged by the kernel instead of fatal
	// (--debug-seccomp-log), to find calls missing from the allowlist.
	SeccompLog bool
	// KeepCaps lists capabilities to keep. None are needed by default: the
	// sentry only ptraces its own children, which have the same UID and a
	// subset of its (empty) capabilities, so the kernel's ptrace access
	// check passes without CAP_SYS_PTRACE.
	KeepCaps []int
	// Allowlist overrides SentryAllowlist (tests).
	Allowlist []SyscallRule
}

// Confine locks the calling process (the sentry) down before it runs any
// application code. It must be called in the process started by runsc with
// fresh mount and PID namespaces, after the platform has made what it needs
// from /proc and /dev (its first stub: stubs forked later are cloned from
// that one, so they do not inherit this filter), and from a process whose
// only file descriptors are ones it means to keep. In order:
//
//  1. every mount becomes private, so nothing below propagates to the host;
//  2. a tmpfs becomes the root (pivot_root) and the old root is detached,
//     so no host path can be named any more, even by a bug;
//  3. no_new_privs is set, and every capability is dropped from the
//     bounding, ambient, effective, permitted and inheritable sets of
//     every thread;
//  4. the seccomp allowlist is installed on every thread (TSYNC).
func Confine(opts ConfineOptions) error {
	// Only runsc starts the sentry as the init of a new PID namespace, and
	// always with a new mount namespace too. Refuse otherwise, so that a
	// stray call can never re-root the host's mount namespace.
	if os.Getpid() != 1 {
		return errors.New("confine: not the init of a new PID namespace; runsc boot must be started by runsc")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("confine: making mounts private: %w", err)
	}
	if err := pivotToEmptyRoot(); err != nil {
		return err
	}
	if err := setNoNewPrivs(); err != nil {
		return err
	}
	if err := dropCapabilities(opts.KeepCaps); err != nil {
		return err
	}
	if opts.NoSeccomp {
		return nil
	}
	rules := opts.Allowlist
	if rules == nil {
		rules = SentryAllowlist
	}
	violation := uint32(seccompRetKillProcess)
	if opts.SeccompLog {
		violation = seccompRetLog
	}
	return InstallSeccomp(rules, violation)
}

// newRootDir is where the empty root is mounted before pivoting. /proc is
// used because it exists on every host, the mount namespace is private by
// then, and the sentry is done with /proc at this point; a directory made
// for the purpose would be left behind on the host's file system.
const newRootDir = "/proc"

func pivotToEmptyRoot() error {
	// The root is read-only, tiny and mode 0111 (search only): nothing
	// can be created in it, listed, or executed from it.
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("veil-sentry-root", newRootDir, "tmpfs", flags, "mode=0111,size=4k,nr_inodes=16"); err != nil {
		return fmt.Errorf("confine: mounting tmpfs root: %w", err)
	}
	if err := unix.Chdir(newRootDir); err != nil {
		return fmt.Errorf("confine: chdir to new root: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one at
	// "/", so it can be detached without a put_old directory inside the
	// (read-only-to-be) new root.
	switch err := unix.PivotRoot(".", "."); {
	case err == nil:
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return fmt.Errorf("confine: detaching old root: %w", err)
		}
	case errors.Is(err, unix.EINVAL):
		// The host's root is the initramfs rootfs, which cannot be
		// pivoted. chroot is the fallback: the old root stays mounted but
		// unreachable, as the sentry holds no directory FD outside and
		// will have no capability to chroot again.
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("confine: chroot to new root: %w", err)
		}
	default:
		return fmt.Errorf("confine: pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("confine: chdir /: %w", err)
	}
	if err := unix.Mount("", "/", "", flags|unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("confine: making new root read-only: %w", err)
	}
	return nil
}

// allThreads runs a syscall on every thread of the process: credentials,
// no_new_privs and the capability bounding set are per thread in Linux,
// and the Go runtime already has several threads.
func allThreads(trap, a1, a2, a3, a4, a5 uintptr) error {
	if _, _, e := syscall.AllThreadsSyscall6(trap, a1, a2, a3, a4, a5, 0); e != 0 {
		return e
	}
	return nil
}

func setNoNewPrivs() error {
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("confine: PR_SET_NO_NEW_PRIVS: %w", err)
	}
	return nil
}

// lastCap is read once: the highest capability this kernel knows. Caps
// above CAP_LAST_CAP of our headers would otherwise stay in the bounding
// set on a newer kernel.
func lastCap() int {
	last := 40 // CAP_CHECKPOINT_RESTORE, the last one as of Linux 6.x
	for c := last + 1; c < 64; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil {
			break
		}
		last = c
	}
	return last
}

// Capability sets for capset; package-level so the kernel is handed
// addresses that the Go runtime never moves.
var (
	capHeader unix.CapUserHeader
	capData   [2]unix.CapUserData
)

func dropCapabilities(keep []int) error {
	var keepMask uint64
	for _, c := range keep {
		if c < 0 || c >= 64 {
			return fmt.Errorf("confine: capability %d out of range", c)
		}
		keepMask |= 1 << uint(c)
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("confine: clearing ambient capabilities: %w", err)
	}
	for c := 0; c <= lastCap(); c++ {
		if keepMask&(1<<uint(c)) != 0 {
			continue
		}
		if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("confine: dropping capability %d from the bounding set: %w", c, err)
		}
	}
	capHeader = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	capData[0] = unix.CapUserData{Effective: uint32(keepMask), Permitted: uint32(keepMask)}
	capData[1] = unix.CapUserData{Effective: uint32(keepMask >> 32), Permitted: uint32(keepMask >> 32)}
	err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&capHeader)), uintptr(unsafe.Pointer(&capData[0])), 0, 0, 0)
	if err != nil {
		return fmt.Errorf("confine: capset: %w", err)
	}
	return nil
}

// filterProg is package-level for the same reason as capHeader.
var filterProg unix.SockFprog

// InstallSeccomp installs the filter built from rules on every thread of
// the process. no_new_privs (or CAP_SYS_ADMIN) must already be in force.
func InstallSeccomp(rules []SyscallRule, violation uint32) error {
	prog, err := BuildFilter(rules, violation)
	if err != nil {
		return err
	}
	filterProg = unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&filterProg)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("confine: installing seccomp filter: %w", e)
	}
	if r != 0 {
		// With TSYNC a positive result is a thread that could not be
		// synchronised; the filter was not installed anywhere.
		return fmt.Errorf("confine: installing seccomp filter: thread %d could not be synchronised", r)
	}
	return nil
}
