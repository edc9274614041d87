// Package linuxerr is the one place the sentry's errors come from. Handlers
// return unix.Errno values (the Linux ABI numbers); this package adds the
// kernel-internal restart codes that never reach an application and the
// translation of host failures into errnos.
package linuxerr

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Kernel-internal errnos that ask the syscall layer to restart a call
// (include/linux/errno.h). They are never returned to the application.
const (
	ERESTARTSYS           = unix.Errno(512)
	ERESTARTNOINTR        = unix.Errno(513)
	ERESTARTNOHAND        = unix.Errno(514)
	ERESTART_RESTARTBLOCK = unix.Errno(516)
)

// IsRestart reports whether err is one of the restart codes.
func IsRestart(err error) bool {
	switch err {
	case ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK:
		return true
	}
	return false
}

// FromHost turns an error from a host call into an errno. Anything that is
// not already an errno becomes EIO: a host failure is never leaked raw.
func FromHost(err error) error {
	if err == nil {
		return nil
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EIO
}

// ToErrno returns the errno err stands for, or EIO.
func ToErrno(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EIO
}
