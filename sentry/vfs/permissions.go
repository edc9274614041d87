package vfs

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

// AccessTypes is a set of MayRead, MayWrite, MayExec.
type AccessTypes uint32

const (
	MayExec  AccessTypes = 1
	MayWrite AccessTypes = 2
	MayRead  AccessTypes = 4
)

// AccessTypesForOpenFlags returns what open(2) with flags needs.
func AccessTypesForOpenFlags(flags uint32) AccessTypes {
	var ats AccessTypes
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		ats = MayRead
	case unix.O_WRONLY:
		ats = MayWrite
	default:
		ats = MayRead | MayWrite
	}
	if flags&unix.O_TRUNC != 0 {
		ats |= MayWrite
	}
	return ats
}

// GenericCheckPermissions decides whether creds may access a file with
// perms as Linux's generic_permission does: the owner, group or other
// class (supplementary groups count), then CAP_DAC_OVERRIDE (anything but
// executing a file with no execute bit) and CAP_DAC_READ_SEARCH (reading
// anything, searching directories).
func GenericCheckPermissions(creds *auth.Credentials, ats AccessTypes, p Perms) error {
	mode := p.Mode
	var bits uint32
	switch {
	case creds.FSKUID == p.UID:
		bits = mode >> 6
	case creds.InGroup(p.GID):
		bits = mode >> 3
	default:
		bits = mode
	}
	if AccessTypes(bits&7)&ats == ats {
		return nil
	}
	isDir := p.IsDir()
	if creds.HasCapability(auth.CAP_DAC_OVERRIDE) {
		if ats&MayExec == 0 || isDir || mode&0111 != 0 {
			return nil
		}
	}
	if creds.HasCapability(auth.CAP_DAC_READ_SEARCH) {
		if ats == MayRead || (isDir && ats&MayWrite == 0) {
			return nil
		}
	}
	return unix.EACCES
}

// CanActAsOwner reports whether creds own a file owned by uid or have
// CAP_FOWNER (inode_owner_or_capable).
func CanActAsOwner(creds *auth.Credentials, uid auth.KUID) bool {
	return creds.FSKUID == uid || creds.HasCapability(auth.CAP_FOWNER)
}

// checkSticky enforces the sticky bit of dir on removing or replacing
// child: only the owner of the file or of the directory, or CAP_FOWNER.
func checkSticky(creds *auth.Credentials, dir, child Perms) error {
	if dir.Mode&unix.S_ISVTX == 0 {
		return nil
	}
	if creds.FSKUID == child.UID || creds.FSKUID == dir.UID || creds.HasCapability(auth.CAP_FOWNER) {
		return nil
	}
	return unix.EPERM
}

// CheckSetStat makes the checks Linux makes before changing attributes
// (chmod_common, chown_common, do_truncate, utimes) for the caller in
// ctx on a file whose attributes are st. Size changes must also have
// passed a write check by the caller (truncate(2) checks MayWrite,
// ftruncate(2) the open mode).
func CheckSetStat(ctx context.Context, opts SetStatOptions, st Statx) error {
	creds := auth.CredentialsFromContext(ctx)
	uid, gid := auth.KUID(st.UID), auth.KGID(st.GID)
	if opts.Mask&unix.STATX_MODE != 0 && !CanActAsOwner(creds, uid) {
		return unix.EPERM
	}
	if opts.Mask&unix.STATX_UID != 0 && opts.UID != uid && !creds.HasCapability(auth.CAP_CHOWN) {
		return unix.EPERM
	}
	if opts.Mask&unix.STATX_GID != 0 && opts.GID != gid {
		// The owner may give the file to a group it belongs to.
		if !creds.HasCapability(auth.CAP_CHOWN) && (creds.FSKUID != uid || !creds.InGroup(opts.GID)) {
			return unix.EPERM
		}
	}
	if opts.Mask&(unix.STATX_ATIME|unix.STATX_MTIME) != 0 && !CanActAsOwner(creds, uid) {
		return unix.EPERM
	}
	if opts.Mask&unix.STATX_SIZE != 0 && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	return nil
}

// FixSetStatForChmodChown clears set-user-ID and set-group-ID bits as
// Linux does: chown of a non-directory always drops S_ISUID (and S_ISGID
// if group-executable); chmod by a caller without CAP_FSETID drops S_ISGID
// on a file of a group it is not in. It returns opts
// with the mode adjusted (adding STATX_MODE when needed).
func FixSetStatForChmodChown(ctx context.Context, opts SetStatOptions, st Statx) SetStatOptions {
	creds := auth.CredentialsFromContext(ctx)
	if opts.Mask&unix.STATX_MODE != 0 {
		gid := auth.KGID(st.GID)
		if opts.Mask&unix.STATX_GID != 0 {
			gid = opts.GID
		}
		if opts.Mode&unix.S_ISGID != 0 && !creds.InGroup(gid) && !creds.HasCapability(auth.CAP_FSETID) {
			opts.Mode &^= unix.S_ISGID
		}
	}
	if opts.Mask&(unix.STATX_UID|unix.STATX_GID) != 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		mode := uint32(st.Mode) & 07777
		if opts.Mask&unix.STATX_MODE != 0 {
			mode = opts.Mode
		}
		kill := uint32(unix.S_ISUID)
		if mode&unix.S_IXGRP != 0 {
			kill |= unix.S_ISGID
		}
		if mode&kill != 0 {
			opts.Mask |= unix.STATX_MODE
			opts.Mode = mode &^ kill
		}
	}
	return opts
}
