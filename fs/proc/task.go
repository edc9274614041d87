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
	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// processDir is /proc/PID; taskDir is /proc/PID/task/TID (same contents
// seen from one thread).
func (fs *Filesystem) processDir(tg *kernel.ThreadGroup) vfs.Inode {
	return fs.taskDir(tg, nil)
}

func (fs *Filesystem) taskDir(tg *kernel.ThreadGroup, thread *kernel.Task) vfs.Inode {
	pid := tg.ID()
	task := func() *kernel.Task {
		if thread != nil {
			return thread
		}
		return tg.Leader()
	}
	var uid, gid uint32
	if t := task(); t != nil {
		c := t.Credentials()
		uid, gid = uint32(c.EffectiveKUID), uint32(c.EffectiveKGID)
	}
	slot := uint64(0)
	if thread != nil {
		slot = uint64(thread.ThreadID()) << 8
	}
	f := func(n uint64, gen func(t *kernel.Task) ([]byte, error)) func() vfs.Inode {
		return func() vfs.Inode {
			return &fileInode{ino: inoFor(pid, slot+n), uid: uid, gid: gid, gen: func(ctx context.Context) ([]byte, error) {
				t := task()
				if t == nil || t.MemoryManager() == nil {
					return nil, unix.ESRCH
				}
				return gen(t)
			}}
		}
	}
	link := func(n uint64, target func(t *kernel.Task) (string, error)) func() vfs.Inode {
		return func() vfs.Inode {
			return &symlinkInode{ino: inoFor(pid, slot+n), uid: uid, gid: gid, target: func(ctx context.Context) (string, error) {
				t := task()
				if t == nil {
					return "", unix.ENOENT
				}
				return target(t)
			}}
		}
	}
	es := []entry{
		{"exe", link(1, func(t *kernel.Task) (string, error) {
			if m := t.MemoryManager(); m != nil && m.Executable() != "" {
				return m.Executable(), nil
			}
			return "", unix.ENOENT
		})},
		{"cwd", link(2, func(t *kernel.Task) (string, error) {
			fsc := t.FSContext()
			p, _ := fs.k.VFS().PathnameWithin(fsc.Root(), fsc.WorkingDirectory())
			return p, nil
		})},
		{"root", link(3, func(t *kernel.Task) (string, error) { return "/", nil })},
		{"maps", f(4, func(t *kernel.Task) ([]byte, error) { return []byte(t.MemoryManager().MapsText()), nil })},
		{"stat", f(5, func(t *kernel.Task) ([]byte, error) { return []byte(fs.taskStat(tg, t)), nil })},
		{"statm", f(6, func(t *kernel.Task) ([]byte, error) {
			m := t.MemoryManager()
			return []byte(fmt.Sprintf("%d %d 0 0 0 0 0\n", m.VirtualSize()/4096, m.ResidentSize()/4096)), nil
		})},
		{"status", f(7, func(t *kernel.Task) ([]byte, error) { return []byte(fs.taskStatus(tg, t)), nil })},
		{"cmdline", f(8, func(t *kernel.Task) ([]byte, error) { return readRange(t, true) })},
		{"environ", f(9, func(t *kernel.Task) ([]byte, error) { return readRange(t, false) })},
		{"comm", f(10, func(t *kernel.Task) ([]byte, error) { return []byte(t.Name() + "\n"), nil })},
		{"auxv", f(11, func(t *kernel.Task) ([]byte, error) { return t.MemoryManager().Auxv(), nil })},
		{"mounts", f(12, func(t *kernel.Task) ([]byte, error) { return []byte(fs.mounts(t)), nil })},
		{"limits", f(13, func(t *kernel.Task) ([]byte, error) { return []byte(limitsText(tg.Limits())), nil })},
		{"fd", func() vfs.Inode { return fs.fdDir(pid, slot, uid, gid, task) }},
	}
	if thread == nil {
		es = append(es, entry{"task", func() vfs.Inode {
			return &dirInode{fs: fs, ino: inoFor(pid, 15), uid: uid, gid: gid, list: func(ctx context.Context) []entry {
				var out []entry
				for _, t := range tg.Tasks() {
					t := t
					out = append(out, entry{strconv.Itoa(int(t.ThreadID())), func() vfs.Inode { return fs.taskDir(tg, t) }})
				}
				return out
			}}
		}})
	}
	return &dirInode{fs: fs, ino: inoFor(pid, slot), uid: uid, gid: gid, list: func(context.Context) []entry { return es }}
}

// fdDir lists a task's FDs as symlinks to what they refer to.
func (fs *Filesystem) fdDir(pid kernel.ThreadID, slot uint64, uid, gid uint32, task func() *kernel.Task) vfs.Inode {
	return &dirInode{fs: fs, ino: inoFor(pid, slot+14), mode: 0500, uid: uid, gid: gid, list: func(ctx context.Context) []entry {
		t := task()
		if t == nil || t.FDTable() == nil {
			return nil
		}
		var out []entry
		t.FDTable().ForEach(func(fd int32, file *vfs.FileDescription, _ vfs.FDFlags) {
			name := fs.fileName(t, file)
			out = append(out, entry{strconv.Itoa(int(fd)), func() vfs.Inode {
				return &symlinkInode{ino: inoFor(pid, 1<<15+uint64(fd)), uid: uid, gid: gid, target: func(context.Context) (string, error) { return name, nil }}
			}})
		})
		return out
	}}
}

// fileName is what /proc/PID/fd/N names.
func (fs *Filesystem) fileName(t *kernel.Task, file *vfs.FileDescription) string {
	vd := file.VirtualDentry()
	if vd.Ok() {
		p, _ := fs.k.VFS().PathnameWithin(t.FSContext().Root(), vd)
		return p
	}
	st, _ := file.Stat(t)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return fmt.Sprintf("pipe:[%d]", st.Ino)
	case unix.S_IFSOCK:
		return fmt.Sprintf("socket:[%d]", st.Ino)
	}
	return fmt.Sprintf("anon_inode:[%d]", st.Ino)
}

func readRange(t *kernel.Task, argv bool) ([]byte, error) {
	m := t.MemoryManager()
	ar := m.EnvvRange()
	if argv {
		ar = m.ArgvRange()
	}
	if ar.Length() == 0 || ar.Length() > 1<<20 {
		return nil, nil
	}
	buf := make([]byte, ar.Length())
	n, _ := m.CopyIn(ar.Start, buf)
	return buf[:n], nil
}

const clockTicks = 100

func ticks(d time.Duration) int64 { return int64(d / (time.Second / clockTicks)) }

func (fs *Filesystem) taskStat(tg *kernel.ThreadGroup, t *kernel.Task) string {
	u, s := tg.CPUTimes()
	cu, cs := tg.ChildCPUTimes()
	m := t.MemoryManager()
	start := ticks(tg.StartTime().Sub(time.Now().Add(-fs.k.Uptime())))
	state := tg.State()
	if state == "S" && t != nil {
		state = "R"
	}
	threads := len(tg.Tasks())
	// Fields of proc(5) /proc/pid/stat, 52 in all.
	return fmt.Sprintf("%d (%s) %s %d %d %d 0 -1 4194560 0 0 0 0 %d %d %d %d 20 0 %d 0 %d %d %d 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		t.ThreadID(), t.Name(), state, tg.ParentID(), tg.ProcessGroupID(), tg.SessionID(),
		ticks(u), ticks(s), ticks(cu), ticks(cs), threads, start, m.VirtualSize(), m.ResidentSize()/4096)
}

func (fs *Filesystem) taskStatus(tg *kernel.ThreadGroup, t *kernel.Task) string {
	c := t.Credentials()
	m := t.MemoryManager()
	var b bytes.Buffer
	state := map[string]string{"R": "R (running)", "S": "S (sleeping)", "T": "T (stopped)", "Z": "Z (zombie)"}[tg.State()]
	fmt.Fprintf(&b, "Name:\t%s\nUmask:\t%04o\nState:\t%s\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t0\n",
		t.Name(), t.FSContext().Umask(), state, tg.ID(), t.ThreadID(), tg.ParentID())
	fmt.Fprintf(&b, "Uid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\n",
		c.RealKUID, c.EffectiveKUID, c.SavedKUID, c.FSKUID, c.RealKGID, c.EffectiveKGID, c.SavedKGID, c.FSKGID)
	var groups []string
	for _, g := range c.ExtraKGIDs {
		groups = append(groups, strconv.Itoa(int(g)))
	}
	fmt.Fprintf(&b, "FDSize:\t64\nGroups:\t%s\n", strings.Join(groups, " "))
	fmt.Fprintf(&b, "VmSize:\t%8d kB\nVmRSS:\t%8d kB\nThreads:\t%d\n", m.VirtualSize()/1024, m.ResidentSize()/1024, len(tg.Tasks()))
	fmt.Fprintf(&b, "SigPnd:\t%016x\nSigBlk:\t%016x\n", uint64(t.PendingSignals()), uint64(t.SignalMask()))
	fmt.Fprintf(&b, "CapInh:\t%016x\nCapPrm:\t%016x\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t%016x\n",
		uint64(c.InheritableCaps), uint64(c.PermittedCaps), uint64(c.EffectiveCaps), uint64(c.BoundingCaps), uint64(c.AmbientCaps))
	nnp := 0
	if c.NoNewPrivs {
		nnp = 1
	}
	fmt.Fprintf(&b, "NoNewPrivs:\t%d\nSeccomp:\t0\nCpus_allowed_list:\t0-%d\n", nnp, fs.k.NumCPU-1)
	return b.String()
}

func (fs *Filesystem) mounts(t *kernel.Task) string {
	var b bytes.Buffer
	root := t.FSContext().Root()
	for _, m := range fs.k.VFS().Mounts() {
		p, ok := fs.k.VFS().PathnameWithin(root, m.Root())
		if !ok {
			continue
		}
		opt := "rw"
		if m.ReadOnly() {
			opt = "ro"
		}
		name := m.Filesystem().Impl().Name()
		fmt.Fprintf(&b, "%s %s %s %s 0 0\n", name, p, name, opt)
	}
	return b.String()
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

func (fs *Filesystem) cpuinfo(context.Context) string {
	var b bytes.Buffer
	for i := 0; i < fs.k.NumCPU; i++ {
		fmt.Fprintf(&b, "processor\t: %d\nvendor_id\t: GenuineIntel\nmodel name\t: Veil virtual CPU\ncpu MHz\t\t: 2000.000\ncache size\t: 4096 KB\nphysical id\t: 0\nsiblings\t: %d\ncore id\t\t: %d\ncpu cores\t: %d\napicid\t\t: %d\nfpu\t\t: yes\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2\nbogomips\t: 4000.00\naddress sizes\t: 46 bits physical, 48 bits virtual\n\n",
			i, fs.k.NumCPU, i, fs.k.NumCPU, i)
	}
	return b.String()
}

func (fs *Filesystem) meminfo(context.Context) string {
	total := fs.k.TotalMemory() / 1024
	used := fs.k.MemoryFile.TotalUsage() / 1024
	free := uint64(0)
	if total > used {
		free = total - used
	}
	return fmt.Sprintf("MemTotal:       %8d kB\nMemFree:        %8d kB\nMemAvailable:   %8d kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nActive:         %8d kB\nInactive:              0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nShmem:                 0 kB\n",
		total, free, free, used)
}

func (fs *Filesystem) uptime(context.Context) string {
	up := fs.k.Uptime().Seconds()
	return fmt.Sprintf("%.2f %.2f\n", up, up*float64(fs.k.NumCPU))
}

func (fs *Filesystem) loadavg(context.Context) string {
	return fmt.Sprintf("0.00 0.00 0.00 %d/%d %d\n", 1, fs.k.TaskCount(), fs.k.TaskCount())
}

func (fs *Filesystem) stat(context.Context) string {
	var u, s time.Duration
	for _, tg := range fs.k.ThreadGroups() {
		tu, ts := tg.CPUTimes()
		u += tu
		s += ts
	}
	boot := time.Now().Add(-fs.k.Uptime()).Unix()
	var b bytes.Buffer
	fmt.Fprintf(&b, "cpu  %d 0 %d %d 0 0 0 0 0 0\n", ticks(u), ticks(s), ticks(fs.k.Uptime())*int64(fs.k.NumCPU))
	for i := 0; i < fs.k.NumCPU; i++ {
		fmt.Fprintf(&b, "cpu%d %d 0 %d %d 0 0 0 0 0 0\n", i, ticks(u)/int64(fs.k.NumCPU), ticks(s)/int64(fs.k.NumCPU), ticks(fs.k.Uptime()))
	}
	fmt.Fprintf(&b, "intr 0\nctxt 0\nbtime %d\nprocesses %d\nprocs_running 1\nprocs_blocked 0\n", boot, fs.k.TaskCount())
	return b.String()
}
