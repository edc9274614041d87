package kernel

import (
	"context"

	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// taskFS is the filesystem state of a task: its FD table and its
// root/cwd/umask. Either may be shared with other tasks (CLONE_FILES,
// CLONE_FS); both are reference counted by the vfs package. The fields are
// set at task creation and replaced only by the task itself (unshare).
type taskFS struct {
	fdTable   *vfs.FDTable
	fsContext *vfs.FSContext
}

// kernelFS is the kernel-wide filesystem state: the one
// VirtualFilesystem (mount namespace) of the sandbox.
type kernelFS struct {
	vfs *vfs.VirtualFilesystem
}

// newTaskFS makes the filesystem state of a new task from an FD table and
// an FSContext, whose references pass to it.
func newTaskFS(fdt *vfs.FDTable, fsc *vfs.FSContext) taskFS {
	return taskFS{fdTable: fdt, fsContext: fsc}
}

// NewInitTaskFS builds the filesystem state of the init process: an empty
// FD table, root and cwd as given, umask 022 (boot code calls it).
func NewInitTaskFS(root, cwd vfs.VirtualDentry) taskFS {
	return newTaskFS(vfs.NewFDTable(), vfs.NewFSContext(root, cwd, 0o022))
}

// fork returns the state of a child made by clone: the FD table and the
// FSContext are shared (a new reference) or copied as the flags say.
func (fs *taskFS) fork(shareFiles, shareFS bool) taskFS {
	var n taskFS
	if fs.fdTable != nil {
		if shareFiles {
			fs.fdTable.IncRef()
			n.fdTable = fs.fdTable
		} else {
			n.fdTable = fs.fdTable.Fork()
		}
	}
	if fs.fsContext != nil {
		if shareFS {
			fs.fsContext.IncRef()
			n.fsContext = fs.fsContext
		} else {
			n.fsContext = fs.fsContext.Fork()
		}
	}
	return n
}

// release drops the task's references (exit); the last user of an FD
// table closes its files.
func (fs *taskFS) release() {
	if fs.fdTable != nil {
		fs.fdTable.DecRef(context.Background())
		fs.fdTable = nil
	}
	if fs.fsContext != nil {
		fs.fsContext.DecRef()
		fs.fsContext = nil
	}
}

// FDTable returns the task's FD table.
func (t *Task) FDTable() *vfs.FDTable { return t.fs.fdTable }

// FSContext returns the task's root, cwd and umask.
func (t *Task) FSContext() *vfs.FSContext { return t.fs.fsContext }

// FileLimit is the task's RLIMIT_NOFILE soft limit, the bound of new FDs.
func (t *Task) FileLimit() int32 {
	cur := t.tg.Limits().Get(limits.NumberOfFiles).Cur
	if cur > 1<<20 {
		cur = 1 << 20
	}
	return int32(cur)
}

// closeOnExec closes the FD_CLOEXEC descriptors (execve). execve has
// already unshared the FD table.
func (t *Task) closeOnExec() {
	if t.fs.fdTable != nil {
		t.fs.fdTable.CloseOnExec(t)
	}
}

// VFS returns the sandbox's VirtualFilesystem.
func (k *Kernel) VFS() *vfs.VirtualFilesystem { return k.fs.vfs }

// SetVFS installs the VirtualFilesystem (boot, before the first task).
func (k *Kernel) SetVFS(v *vfs.VirtualFilesystem) { k.fs.vfs = v }
