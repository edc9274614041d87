package proc

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/mm"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// target names what a /proc/PID (tid 0) or /proc/PID/task/TID directory
// shows. It is looked up again on every use.
type target struct {
	fs       *Filesystem
	pid, tid kernel.ThreadID
}

func (x target) group() *kernel.ThreadGroup { return x.fs.k.ThreadGroupByID(x.pid) }

// task returns the thread, or the task standing for the process (an
// exited one for a zombie), or nil once it is gone.
func (x target) task() *kernel.Task {
	if x.tid != 0 {
		t := x.fs.k.TaskByID(x.tid)
		if t == nil || t.ThreadGroup().ID() != x.pid {
			return nil
		}
		return t
	}
	tg := x.group()
	if tg == nil {
		return nil
	}
	return tg.ProcTask()
}

func (x target) alive() error {
	if x.task() == nil {
		return unix.ENOENT
	}
	return nil
}

// owner is the process's effective user and group, as Linux shows a
// dumpable process's entries.
func (x target) owner() (auth.KUID, auth.KGID) {
	if t := x.task(); t != nil {
		c := t.Credentials()
		return c.EffectiveKUID, c.EffectiveKGID
	}
	return 0, 0
}

func (x target) node(slot uint64, mode uint32) node {
	return node{ino: inoFor(x.pid, x.tid, slot), mode: mode, owner: x.owner, alive: x.alive}
}

// live returns the task if it has not exited, with its address space
// held (release it with the returned function), for entries that read
// memory. A zombie has none: ok is false.
func (x target) live() (t *kernel.Task, m *mm.MemoryManager, release func(), ok bool) {
	t = x.task()
	if t == nil || t.Exited() {
		return t, nil, nil, false
	}
	m = t.MemoryManager()
	if m == nil || !m.IncUsers() {
		return t, nil, nil, false
	}
	return t, m, m.DecUsers, true
}

// mayRead checks ptrace read access of the caller to the target.
func (x target) mayRead(ctx context.Context, t *kernel.Task) error {
	if !kernel.MayReadProcess(taskOf(ctx), t) {
		return unix.EACCES
	}
	return nil
}

// file makes a read-only entry; private ones need ptrace read access.
func (x target) file(slot uint64, mode uint32, private bool, gen func(ctx context.Context, t *kernel.Task) (string, error)) func() vfs.Inode {
	return func() vfs.Inode {
		return &fileInode{node: x.node(slot, mode), read: func(ctx context.Context) ([]byte, error) {
			t := x.task()
			if t == nil {
				return nil, unix.ESRCH
			}
			if private {
				if err := x.mayRead(ctx, t); err != nil {
					return nil, err
				}
			}
			s, err := gen(ctx, t)
			return []byte(s), err
		}}
	}
}

// taskDir is /proc/PID (tid 0) or /proc/PID/task/TID.
func (fs *Filesystem) taskDir(pid, tid kernel.ThreadID) vfs.Inode {
	x := target{fs: fs, pid: pid, tid: tid}
	es := []entry{
		{"auxv", x.file(1, 0400, true, func(ctx context.Context, _ *kernel.Task) (string, error) {
			_, m, rel, ok := x.live()
			if !ok {
				return "", nil
			}
			defer rel()
			return string(m.Auxv()), nil
		})},
		{"cgroup", x.file(2, 0444, false, func(context.Context, *kernel.Task) (string, error) { return "0::/\n", nil })},
		{"cmdline", x.file(3, 0444, false, func(context.Context, *kernel.Task) (string, error) { return x.memRange(true), nil })},
		{"comm", func() vfs.Inode {
			return &fileInode{node: x.node(4, 0644), read: func(ctx context.Context) ([]byte, error) {
				t := x.task()
				if t == nil {
					return nil, unix.ESRCH
				}
				return []byte(t.Name() + "\n"), nil
			}, write: x.writeComm}
		}},
		{"cwd", x.magicLink(5, x.cwd)},
		{"environ", x.file(6, 0400, true, func(context.Context, *kernel.Task) (string, error) { return x.memRange(false), nil })},
		{"exe", x.magicLink(7, x.exe)},
		{"fd", func() vfs.Inode { return x.fdDir(false) }},
		{"fdinfo", func() vfs.Inode { return x.fdDir(true) }},
		{"gid_map", x.file(9, 0444, false, idMap)},
		{"io", x.file(10, 0400, true, x.io)},
		{"limits", x.file(11, 0444, false, func(_ context.Context, t *kernel.Task) (string, error) {
			return limitsText(t.ThreadGroup().Limits()), nil
		})},
		{"maps", x.file(12, 0444, true, func(context.Context, *kernel.Task) (string, error) {
			_, m, rel, ok := x.live()
			if !ok {
				return "", nil
			}
			defer rel()
			return m.MapsText(), nil
		})},
		{"mountinfo", x.file(13, 0444, false, fs.mountinfo)},
		{"mounts", x.file(14, 0444, false, fs.mounts)},
		{"net", func() vfs.Inode { return fs.netDir(x.node(15, 0555)) }},
		{"ns", func() vfs.Inode { return x.nsDir() }},
		{"oom_score", x.file(17, 0444, false, x.oomScore)},
		{"oom_score_adj", func() vfs.Inode {
			return &fileInode{node: x.node(18, 0644), read: func(ctx context.Context) ([]byte, error) {
				tg := x.group()
				if tg == nil {
					return nil, unix.ESRCH
				}
				return []byte(fmt.Sprintf("%d\n", tg.OOMScoreAdj())), nil
			}, write: x.writeOOMScoreAdj}
		}},
		{"root", x.magicLink(19, x.root)},
		{"setgroups", x.file(20, 0644, false, func(context.Context, *kernel.Task) (string, error) { return "allow\n", nil })},
		{"smaps", x.file(21, 0444, true, func(context.Context, *kernel.Task) (string, error) {
			_, m, rel, ok := x.live()
			if !ok {
				return "", nil
			}
			defer rel()
			return m.SmapsText(), nil
		})},
		{"stat", x.file(22, 0444, false, x.stat)},
		{"statm", x.file(23, 0444, false, x.statm)},
		{"status", x.file(24, 0444, false, x.status)},
		{"uid_map", x.file(25, 0444, false, idMap)},
	}
	if tid == 0 {
		es = append(es, entry{"task", func() vfs.Inode {
			return &dirInode{node: x.node(26, 0555), list: func(ctx context.Context) []entry {
				tg := x.group()
				if tg == nil {
					return nil
				}
				var out []entry
				for _, t := range tg.Tasks() {
					id := t.ThreadID()
					out = append(out, entry{strconv.Itoa(int(id)), func() vfs.Inode { return fs.taskDir(pid, id) }})
				}
				return out
			}, lookup: func(ctx context.Context, name string) (vfs.Inode, error) {
				id, err := strconv.ParseUint(name, 10, 31)
				if err != nil || name[0] == '0' {
					return nil, unix.ENOENT
				}
				t := fs.k.TaskByID(kernel.ThreadID(id))
				if t == nil || t.ThreadGroup().ID() != pid {
					return nil, unix.ENOENT
				}
				return fs.taskDir(pid, kernel.ThreadID(id)), nil
			}}
		}})
	}
	return &dirInode{node: x.node(0, 0555), list: fixedEntries(es)}
}

// idMap is uid_map and gid_map: the sandbox has one user namespace, whose
// IDs map to themselves.
func idMap(context.Context, *kernel.Task) (string, error) {
	return fmt.Sprintf("%10d %10d %10d\n", 0, 0, uint64(1)<<32-1), nil
}

// memRange reads the argument or environment strings from the process's
// memory, as Linux does (so a process that rewrites them shows the new
// text).
func (x target) memRange(argv bool) string {
	_, m, rel, ok := x.live()
	if !ok {
		return ""
	}
	defer rel()
	ar := m.EnvvRange()
	if argv {
		ar = m.ArgvRange()
	}
	if ar.Length() == 0 || ar.Length() > 1<<21 {
		return ""
	}
	buf := make([]byte, ar.Length())
	n, _ := m.CopyIn(ar.Start, buf)
	return string(buf[:n])
}

func (x target) writeComm(ctx context.Context, data []byte) error {
	t := x.task()
	if t == nil {
		return unix.ESRCH
	}
	// Only a thread of the same process may rename it.
	if c := taskOf(ctx); c != nil && c.ThreadGroup() != t.ThreadGroup() {
		return unix.EINVAL
	}
	// As Linux, the bytes are taken as written, a newline included.
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	t.SetName(string(data))
	return nil
}

func (x target) writeOOMScoreAdj(ctx context.Context, data []byte) error {
	tg := x.group()
	if tg == nil {
		return unix.ESRCH
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return unix.EINVAL
	}
	creds := auth.CredentialsFromContext(ctx)
	if creds == nil {
		creds = auth.NewRoot()
	}
	return tg.SetOOMScoreAdj(creds, v)
}

// oomScore is the badness Linux's OOM killer would give the process:
// its share of memory in thousandths, moved by oom_score_adj.
func (x target) oomScore(_ context.Context, t *kernel.Task) (string, error) {
	tg := t.ThreadGroup()
	score := int64(tg.OOMScoreAdj())
	if _, m, rel, ok := x.live(); ok {
		if total := x.fs.k.TotalMemory(); total > 0 {
			score += int64(m.ResidentSize() * 1000 / total)
		}
		rel()
	}
	return fmt.Sprintf("%d\n", min(max(score, 0), 2000)), nil
}

func (x target) io(_ context.Context, t *kernel.Task) (string, error) {
	s := t.ThreadGroup().IOStats()
	if x.tid != 0 {
		s = t.IOStats()
	}
	return fmt.Sprintf("rchar: %d\nwchar: %d\nsyscr: %d\nsyscw: %d\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n",
		s.RChar, s.WChar, s.SysCR, s.SysCW), nil
}

// Magic links: cwd, root, exe.

// magicLink makes cwd, root or exe. resolve returns the file and, when
// named is set, the text readlink shows; a jump must not ask for the name,
// because the walker calling it holds the VFS's rename lock, which naming
// takes.
func (x target) magicLink(slot uint64, resolve func(ctx context.Context, named bool) (vfs.VirtualDentry, string, error)) func() vfs.Inode {
	return func() vfs.Inode {
		return &magicLinkInode{
			symlinkInode: symlinkInode{node: x.node(slot, 0777), target: func(ctx context.Context) (string, error) {
				_, name, err := resolve(ctx, true)
				return name, err
			}},
			jump: func(ctx context.Context, _ vfs.VirtualDentry) (vfs.VirtualDentry, error) {
				vd, _, err := resolve(ctx, false)
				return vd, err
			},
		}
	}
}

// fsContext returns the live task's root and working directory holder,
// after the access check.
func (x target) fsContext(ctx context.Context) (*vfs.FSContext, error) {
	t := x.task()
	if t == nil || t.Exited() {
		return nil, unix.ENOENT
	}
	if err := x.mayRead(ctx, t); err != nil {
		return nil, err
	}
	fsc := t.FSContext()
	if fsc == nil {
		return nil, unix.ENOENT
	}
	return fsc, nil
}

// pathFor names vd as the reader sees it: from the reader's root, with
// " (deleted)" for a removed file, as Linux's d_path.
func (fs *Filesystem) pathFor(ctx context.Context, vd vfs.VirtualDentry, fallbackRoot vfs.VirtualDentry) string {
	root := fallbackRoot
	if t := taskOf(ctx); t != nil && t.FSContext() != nil {
		root = t.FSContext().Root()
	}
	if !root.Ok() {
		root = fs.k.VFS().Root()
	}
	p, reachable := fs.k.VFS().PathnameWithin(root, vd)
	if !reachable {
		if _, err := fs.k.VFS().StatDentry(ctx, vd); err == nil {
			// Outside the reader's root: Linux prints the path from the
			// namespace root.
			if gp, ok := fs.k.VFS().PathnameWithin(fs.k.VFS().Root(), vd); ok {
				return gp
			}
		}
		return p + " (deleted)"
	}
	return p
}

func (x target) cwd(ctx context.Context, named bool) (vfs.VirtualDentry, string, error) {
	fsc, err := x.fsContext(ctx)
	if err != nil {
		return vfs.VirtualDentry{}, "", err
	}
	vd := fsc.WorkingDirectory()
	if !named {
		return vd, "", nil
	}
	return vd, x.fs.pathFor(ctx, vd, fsc.Root()), nil
}

func (x target) root(ctx context.Context, named bool) (vfs.VirtualDentry, string, error) {
	fsc, err := x.fsContext(ctx)
	if err != nil {
		return vfs.VirtualDentry{}, "", err
	}
	vd := fsc.Root()
	if !named {
		return vd, "", nil
	}
	return vd, x.fs.pathFor(ctx, vd, fsc.Root()), nil
}

// exe is the executable as exec found it (the text: its path with
// symlinks resolved); following the link reaches the file itself.
func (x target) exe(ctx context.Context, _ bool) (vfs.VirtualDentry, string, error) {
	if _, err := x.fsContext(ctx); err != nil {
		return vfs.VirtualDentry{}, "", err
	}
	t, m, rel, ok := x.live()
	if !ok {
		return vfs.VirtualDentry{}, "", unix.ENOENT
	}
	path := m.Executable()
	rel()
	vd := t.ThreadGroup().Executable()
	if path == "" || !vd.Ok() {
		return vfs.VirtualDentry{}, "", unix.ENOENT
	}
	return vd, path, nil
}

// ns/ holds one link per namespace. The sandbox has one of each, named
// by the inode numbers Linux gives its initial namespaces.
func (x target) nsDir() vfs.Inode {
	kinds := []struct {
		name string
		ino  uint64
	}{
		{"cgroup", 0xEFFFFFFB}, {"ipc", 0xEFFFFFFF}, {"mnt", 0xF0000000}, {"net", 0xEFFFFFF8},
		{"pid", 0xEFFFFFFC}, {"pid_for_children", 0xEFFFFFFC}, {"time", 0xEFFFFFFA},
		{"time_for_children", 0xEFFFFFFA}, {"user", 0xEFFFFFFD}, {"uts", 0xEFFFFFFE},
	}
	var es []entry
	for i, k := range kinds {
		typ := strings.TrimSuffix(k.name, "_for_children")
		text := fmt.Sprintf("%s:[%d]", typ, k.ino)
		n := x.node(64+uint64(i), 0777)
		es = append(es, entry{k.name, func() vfs.Inode {
			return &symlinkInode{node: n, target: func(ctx context.Context) (string, error) {
				t := x.task()
				if t == nil {
					return "", unix.ENOENT
				}
				if err := x.mayRead(ctx, t); err != nil {
					return "", err
				}
				return text, nil
			}}
		}})
	}
	return &dirInode{node: x.node(16, 0511), list: fixedEntries(es)}
}

// stat is /proc/PID/stat (proc(5)); in a thread directory, the thread's.
func (x target) stat(ctx context.Context, t *kernel.Task) (string, error) {
	tg := t.ThreadGroup()
	k := x.fs.k
	id := tg.ID()
	state := tg.ProcState()
	u, s := tg.CPUTimes()
	threads := len(tg.Tasks())
	start := tg.StartTime()
	exitSignal := int(unix.SIGCHLD)
	if x.tid != 0 {
		id = t.ThreadID()
		state = t.ProcState()
		u, s = t.CPUTime()
		start = t.StartTime()
		if x.tid != x.pid {
			exitSignal = -1
		}
	}
	cu, cs := tg.ChildCPUTimes()
	boot := time.Now().Add(-k.Uptime())
	var vsize, rss uint64
	var lay mm.Layout
	var argv, envv [2]uint64
	if _, m, rel, ok := x.live(); ok {
		ms := m.MemStats()
		vsize, rss = ms.Size, ms.Resident/4096
		if kernel.MayReadProcess(taskOf(ctx), t) {
			lay = m.Layout()
			a, e := m.ArgvRange(), m.EnvvRange()
			argv = [2]uint64{uint64(a.Start), uint64(a.End)}
			envv = [2]uint64{uint64(e.Start), uint64(e.End)}
		}
		rel()
	}
	rsslim := tg.Limits().Get(limits.Rss).Cur
	pend := t.OwnPendingSignals() | tg.SharedPendingSignals()
	ign, cgt := tg.SignalDispositions()
	exitCode := 0
	if state == 'Z' {
		exitCode = int(tg.ExitStatus())
	}
	// The controlling terminal as new_encode_dev numbers it, and its
	// foreground group.
	ttyNr, tpgid := uint32(0), -1
	if tty, fg := tg.TTYState(); tty != nil {
		maj, mnr := unix.Major(tty.Rdev), unix.Minor(tty.Rdev)
		ttyNr, tpgid = mnr&0xff|maj<<8|(mnr&^0xff)<<12, int(fg)
	}
	f := []any{
		id, "(" + t.Name() + ")", string(state), tg.ParentID(), tg.ProcessGroupID(), tg.SessionID(),
		ttyNr, tpgid, 0, // tty_nr, tpgid, flags
		0, 0, 0, 0, // minflt, cminflt, majflt, cmajflt
		ticks(u), ticks(s), ticks(cu), ticks(cs),
		20, 0, threads, 0, // priority, nice, num_threads, itrealvalue
		ticks(start.Sub(boot)), vsize, rss, rsslim,
		uint64(lay.StartCode), uint64(lay.EndCode), uint64(lay.StartStack), 0, 0, // kstkesp, kstkeip
		uint64(pend) & 0x7fffffff, uint64(t.SignalMask()) & 0x7fffffff, uint64(ign) & 0x7fffffff, uint64(cgt) & 0x7fffffff,
		0, 0, 0, exitSignal, 0, 0, 0, 0, 0, 0, // wchan, nswap, cnswap, exit_signal, processor, rt_priority, policy, blkio, guest, cguest
		0, 0, uint64(lay.StartBrk), argv[0], argv[1], envv[0], envv[1], exitCode,
	}
	var b strings.Builder
	for i, v := range f {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, v)
	}
	b.WriteByte('\n')
	return b.String(), nil
}

func (x target) statm(context.Context, *kernel.Task) (string, error) {
	_, m, rel, ok := x.live()
	if !ok {
		return "0 0 0 0 0 0 0\n", nil
	}
	ms := m.MemStats()
	rel()
	const pg = 4096
	return fmt.Sprintf("%d %d %d %d 0 %d 0\n", ms.Size/pg, ms.Resident/pg, 0, ms.Text/pg, (ms.Data+ms.Stack)/pg), nil
}

var stateNames = map[byte]string{'R': "R (running)", 'S': "S (sleeping)", 'T': "T (stopped)", 'Z': "Z (zombie)"}

func (x target) status(ctx context.Context, t *kernel.Task) (string, error) {
	tg := t.ThreadGroup()
	c := t.Credentials()
	state := tg.ProcState()
	if x.tid != 0 {
		state = t.ProcState()
	}
	var b bytes.Buffer
	umask := uint32(0)
	if fsc := t.FSContext(); fsc != nil && !t.Exited() {
		umask = fsc.Umask()
	}
	fmt.Fprintf(&b, "Name:\t%s\nUmask:\t%04o\nState:\t%s\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t0\n",
		t.Name(), umask, stateNames[state], tg.ID(), t.ThreadID(), tg.ParentID())
	fmt.Fprintf(&b, "Uid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\n",
		c.RealKUID, c.EffectiveKUID, c.SavedKUID, c.FSKUID, c.RealKGID, c.EffectiveKGID, c.SavedKGID, c.FSKGID)
	fdSize := 0
	if fdt := t.FDTable(); fdt != nil && !t.Exited() {
		// FDSize is the table's capacity: Linux grows it in powers of
		// two from 64.
		fdSize = 64
		for int32(fdSize) < fdt.Len() {
			fdSize *= 2
		}
	}
	var groups []string
	for _, g := range c.ExtraKGIDs {
		groups = append(groups, strconv.Itoa(int(g)))
	}
	fmt.Fprintf(&b, "FDSize:\t%d\nGroups:\t%s\n", fdSize, strings.Join(groups, " "))
	fmt.Fprintf(&b, "NStgid:\t%d\nNSpid:\t%d\nNSpgid:\t%d\nNSsid:\t%d\nKthread:\t0\n",
		tg.ID(), t.ThreadID(), tg.ProcessGroupID(), tg.SessionID())
	if _, m, rel, ok := x.live(); ok {
		ms := m.MemStats()
		rel()
		kb := func(name string, n uint64) { fmt.Fprintf(&b, "%s\t%8d kB\n", name+":", n/1024) }
		kb("VmSize", ms.Size)
		kb("VmLck", ms.Locked)
		kb("VmPin", 0)
		kb("VmRSS", ms.Resident)
		kb("RssAnon", ms.Resident)
		kb("RssFile", 0)
		kb("RssShmem", 0)
		kb("VmData", ms.Data)
		kb("VmStk", ms.Stack)
		kb("VmExe", ms.Text)
		kb("VmLib", ms.Lib)
		kb("VmPTE", 0)
		kb("VmSwap", 0)
		fmt.Fprintf(&b, "CoreDumping:\t0\nTHP_enabled:\t0\n")
	}
	pend := t.OwnPendingSignals()
	shd := tg.SharedPendingSignals()
	ign, cgt := tg.SignalDispositions()
	sigLimit := tg.Limits().Get(limits.SignalsPending).Cur
	sigQ := strconv.FormatUint(sigLimit, 10)
	if sigLimit == limits.Infinity {
		sigQ = "unlimited"
	}
	fmt.Fprintf(&b, "Threads:\t%d\nSigQ:\t%d/%s\n", len(tg.Tasks()), pend.PopCount()+shd.PopCount(), sigQ)
	fmt.Fprintf(&b, "SigPnd:\t%016x\nShdPnd:\t%016x\nSigBlk:\t%016x\nSigIgn:\t%016x\nSigCgt:\t%016x\n",
		uint64(pend), uint64(shd), uint64(t.SignalMask()), uint64(ign), uint64(cgt))
	fmt.Fprintf(&b, "CapInh:\t%016x\nCapPrm:\t%016x\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t%016x\n",
		uint64(c.InheritableCaps), uint64(c.PermittedCaps), uint64(c.EffectiveCaps), uint64(c.BoundingCaps), uint64(c.AmbientCaps))
	nnp := 0
	if c.NoNewPrivs {
		nnp = 1
	}
	n := x.fs.k.NumCPU
	mask := strings.Repeat("f", n/4)
	if r := n % 4; r != 0 {
		mask = strconv.FormatInt(int64(1)<<r-1, 16) + mask
	}
	fmt.Fprintf(&b, "NoNewPrivs:\t%d\nCpus_allowed:\t%s\nCpus_allowed_list:\t0-%d\nMems_allowed:\t1\nMems_allowed_list:\t0\n",
		nnp, mask, n-1)
	return b.String(), nil
}

func limitsText(ls *limits.LimitSet) string {
	rows := []struct {
		name, unit string
		r          int
	}{
		{"Max cpu time", "seconds", limits.CPU}, {"Max file size", "bytes", limits.FileSize},
		{"Max data size", "bytes", limits.Data}, {"Max stack size", "bytes", limits.Stack},
		{"Max core file size", "bytes", limits.Core}, {"Max resident set", "bytes", limits.Rss},
		{"Max processes", "processes", limits.ProcessCount}, {"Max open files", "files", limits.NumberOfFiles},
		{"Max locked memory", "bytes", limits.MemoryLocked}, {"Max address space", "bytes", limits.AS},
		{"Max file locks", "locks", limits.Locks}, {"Max pending signals", "signals", limits.SignalsPending},
		{"Max msgqueue size", "bytes", limits.MessageQueueBytes}, {"Max nice priority", "", limits.Nice},
		{"Max realtime priority", "", limits.RealTimePriority}, {"Max realtime timeout", "us", limits.Rttime},
	}
	val := func(v uint64) string {
		if v == limits.Infinity {
			return "unlimited"
		}
		return strconv.FormatUint(v, 10)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%-25s %-20s %-20s %-10s\n", "Limit", "Soft Limit", "Hard Limit", "Units")
	for _, r := range rows {
		l := ls.Get(r.r)
		fmt.Fprintf(&b, "%-25s %-20s %-20s %-10s\n", r.name, val(l.Cur), val(l.Max), r.unit)
	}
	return b.String()
}
