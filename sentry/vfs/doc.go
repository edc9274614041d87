// Package vfs owns the filesystem-independent half of file handling in the
// sentry: the mount namespace, the dentry cache, the one path walker,
// permission checks, open file descriptions, the FD table, the per-task
// root/cwd/umask (FSContext), epoll, advisory file locks (flock, POSIX
// and OFD record locks), inotify, extended attribute checks, O_TMPFILE
// and openat2's resolution scoping. It knows no particular filesystem:
// each filesystem (fs/tmpfs, fs/gofer, fs/dev, ...) implements
// FilesystemImpl and Inode, and file types implement FileDescriptionImpl.
//
// # Model
//
// A filesystem exposes Inodes. The VFS wraps each Inode it has looked up in
// a Dentry, which records the name and parent it was reached by; dentries
// form one tree per Filesystem. Dentries of filesystems whose inodes hold
// nothing remote stay cached while the file stays linked; for inodes that
// implement InodeEvicter the cache is bounded, and the least recently used
// leaves are evicted (dcache.go), their inodes re-acquiring what they let
// go of when next used. Mounts
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
//	Filesystem.lruMu            (the dentry eviction list; a leaf among these)
//	filesystem-internal locks
//	FileDescription.offMu
//	inotifyMu → Inotify.mu      (inotify watches and queues; inotify.go)
//	lockMu                      (flock and record locks; locks.go)
//	waiter.Queue locks
//
// lockMu and inotifyMu are never held while calling a filesystem; event
// delivery and lock waits happen after they are dropped.
//
// Walks hold renameMu for reading; rename, unlink, rmdir, link and the
// create operations hold it for writing, so the cache and the filesystem
// change together. Eviction only ever happens inside a lookup or create,
// so under renameMu too: a dentry's parent cannot change while it is
// evicted, and rename and unlink find every dentry where it belongs.
package vfs
