package kernel

import (
	"github.com/veil-sandbox/veil/sentry/hostarch"

	"golang.org/x/sys/unix"
	"path"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/loader"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// execFile adapts an open file description to the loader.
type execFile struct {
	t  *Task
	fd *vfs.FileDescription
}

func (f execFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.fd.PRead(f.t, usermem.BytesSequence(p), off)
	return int(n), err
}

func (f execFile) ConfigureMMap(opts *memmap.MMapOpts) error {
	return f.fd.ConfigureMMap(f.t, opts)
}

func (f execFile) Size() (int64, error) {
	st, err := f.fd.Stat(f.t)
	return int64(st.Size), err
}

func (f execFile) Close() error {
	f.fd.DecRef(f.t)
	return nil
}

// execOpener resolves executables in the task's root and cwd, and
// remembers where each path led (symlinks resolved), for /proc/pid/exe.
type execOpener struct {
	t        *Task
	resolved map[string]string
	// dentries are the files opened, for /proc/PID/exe.
	dentries map[string]vfs.VirtualDentry
}

func (o execOpener) Open(path string) (loader.File, error) {
	t := o.t
	fsc := t.FSContext()
	fd, err := t.k.VFS().OpenForExec(t, fsc.Root(), fsc.WorkingDirectory(), path)
	if err != nil {
		return nil, err
	}
	if p, ok := t.k.VFS().PathnameWithin(fsc.Root(), fd.VirtualDentry()); ok {
		o.resolved[path] = p
	}
	o.dentries[path] = fd.VirtualDentry()
	return execFile{t: t, fd: fd}, nil
}

var hwcap, hwcap2 = loader.HostHWCap()

// loadExecutable loads path into t.mm (a fresh address space) and points
// the registers at its entry.
func (t *Task) loadExecutable(path string, argv, envv []string) error {
	c := t.Credentials()
	stack := t.tg.limits.Get(limits.Stack).Cur
	if stack == limits.Infinity || stack > 1<<30 {
		stack = 1 << 30
	}
	t.mm.SetStackLimit(stack)
	vd, err := t.k.vdsoForExec()
	if err != nil {
		return err
	}
	opener := execOpener{t: t, resolved: make(map[string]string), dentries: make(map[string]vfs.VirtualDentry)}
	res, err := loader.Load(loader.LoadArgs{
		MM:        t.mm,
		Opener:    opener,
		Path:      path,
		Argv:      argv,
		Envv:      envv,
		StackTop:  t.mm.StackTop(),
		MaxAddr:   t.mm.MaxAddress(),
		StackSize: stack,
		UID:       uint32(c.RealKUID), EUID: uint32(c.EffectiveKUID),
		GID: uint32(c.RealKGID), EGID: uint32(c.EffectiveKGID),
		HWCap: hwcap, HWCap2: hwcap2,
		VDSO: vd,
	})
	if err != nil {
		return err
	}
	t.mm.SetBrkStart(res.BrkStart)
	t.mm.SetArgvRange(hostarch.AddrRange{Start: res.ArgvStart, End: res.ArgvEnd})
	t.mm.SetEnvvRange(hostarch.AddrRange{Start: res.EnvvStart, End: res.EnvvEnd})
	auxv := make([]byte, 0, 16*(len(res.Auxv)+1))
	for _, e := range res.Auxv {
		auxv = appendLE64(appendLE64(auxv, e.Key), e.Value)
	}
	auxv = appendLE64(appendLE64(auxv, 0), 0)
	t.mm.SetAuxv(auxv)
	exe, ok := opener.resolved[res.ExecPath]
	if !ok {
		exe = t.absPath(res.ExecPath)
	}
	t.mm.SetExecutable(exe)
	t.setExecutableDentry(opener.dentries[res.ExecPath])
	t.ac.ResetForExec(res.Entry, res.StackPointer)
	t.SetName(baseName(path))
	return nil
}

func appendLE64(b []byte, v uint64) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

// Execve replaces the task's program. On success the registers are set for
// the new program (the handler returns ErrNoReturn).
func (t *Task) Execve(path string, argv, envv []string) error {
	k := t.k
	// Other threads go first (de_thread): they exit, and this task takes
	// the group's ID.
	k.mu.Lock()
	if t.tg.execing != nil || t.tg.exiting {
		k.mu.Unlock()
		return unix.EAGAIN
	}
	t.tg.execing = t
	for _, ot := range t.tg.tasks {
		if ot != t {
			ot.exiting = true
			ot.interrupt()
		}
	}
	for len(t.tg.tasks) > 1 {
		k.mu.Unlock()
		if err := t.Block(nil, timeNever); err == ErrInterrupted {
			k.mu.Lock()
			if t.exiting || t.tg.exiting {
				t.tg.execing = nil
				k.mu.Unlock()
				return errRestartSys
			}
			continue
		}
		k.mu.Lock()
	}
	t.tg.execing = nil
	if t.tid != t.tg.id {
		delete(k.tasks, t.tid)
		t.tid = t.tg.id
		k.tasks[t.tid] = t
	}
	k.mu.Unlock()

	old := t.mm
	m, err := k.newMM()
	if err != nil {
		return unix.ENOMEM
	}
	t.mm = m
	if err := t.loadExecutable(path, argv, envv); err != nil {
		t.mm = old
		m.DecUsers()
		return err
	}
	old.DecUsers()
	// Past the point of no return.
	if t.vforkDone != nil {
		close(t.vforkDone)
		t.vforkDone = nil
	}
	t.closeOnExec()
	k.mu.Lock()
	// Caught signals go back to default; ignored ones stay ignored. A
	// shared handler table is unshared.
	h := &SignalHandlers{}
	for i, a := range t.tg.handlers.actions {
		if a.Handler == arch.SIG_IGN {
			h.actions[i].Handler = arch.SIG_IGN
		}
	}
	t.tg.handlers = h
	t.altStack = arch.SignalStack{Flags: arch.SS_DISABLE}
	t.clearChildTID = 0
	t.robustList = 0
	k.mu.Unlock()
	return ErrNoReturn
}

// absPath makes a path the task gave absolute, as /proc/pid/exe shows it.
func (t *Task) absPath(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	fsc := t.FSContext()
	cwd, _ := t.k.VFS().PathnameWithin(fsc.Root(), fsc.WorkingDirectory())
	return path.Join(cwd, p)
}
