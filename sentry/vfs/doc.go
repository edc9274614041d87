// Package vfs owns the filesystem-independent half of file handling in the
// sentry: the mount namespace, the dentry cache, the one path walker,
// permission checks, open file descriptions, the FD table, the per-task
// root/cwd/umask (FSContext) and epoll. It knows no particular filesystem:
// each filesystem (fs/tmpfs, fs/gofer, fs/dev, ...) implements
// FilesystemImpl and Inode, and file types implement FileDescriptionImpl.
//
// # Model
//
// A filesystem exposes Inodes. The VFS wraps each Inode it has looked up in
// a Dentry, which records the name and parent it was reached by; dentries
// form one tree per Filesystem and are cached while the file stays linked,
// so a remote filesystem is asked for each (directory, name) once. Mounts
// attach a Filesystem (or a subtree of one, for bind mounts) at a
// (Mount, Dentry) pair. A VirtualDentry is a (Mount, Dentry) pair: the
// position of a file in the mount namespace.
//
// Every mutation of the file tree goes through the VFS, which keeps the
// dentry cache in step; a filesystem never needs to tell the VFS about a
// change it did not make itself.
//
// # Locking
//
// Lock order, outermost first:
//
//	VirtualFilesystem.mountMu   (mount table)
//	VirtualFilesystem.renameMu  (tree shape: Dentry.parent/name/children)
//	Dentry.mu                   (one dentry's children cache; parent before child)
//	filesystem-internal locks
//	FileDescription.offMu
//	waiter.Queue locks
//
// Walks hold renameMu for reading; rename, unlink, rmdir, link and the
// create operations hold it for writing, so the cache and the filesystem
// change together.
package vfs
