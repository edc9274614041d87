package proc

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// Inode numbers of global entries.
const (
	inoSelf = inoGlobalBase + iota
	inoThreadSelf
	inoCPUInfo
	inoMemInfo
	inoUptime
	inoVersion
	inoLoadAvg
	inoFilesystems
	inoStat
	inoMounts
	inoNet
	inoSwaps
	inoPartitions
	inoSys
	inoSysvipc
	inoSysvipcShm
	inoSysvipcMsg
	inoSysvipcSem
	// inoSysBase and on: /proc/sys (sys.go); inoNetBase: /proc/net.
	inoSysBase = 1 << 10
	inoNetBase = 2 << 10
)

func (fs *Filesystem) rootEntries(ctx context.Context) []entry {
	es := []entry{
		{"self", symlink(inoSelf, func(ctx context.Context) (string, error) {
			t := taskOf(ctx)
			if t == nil {
				return "", unix.ENOENT
			}
			return strconv.Itoa(int(t.ThreadGroup().ID())), nil
		})},
		{"thread-self", symlink(inoThreadSelf, func(ctx context.Context) (string, error) {
			t := taskOf(ctx)
			if t == nil {
				return "", unix.ENOENT
			}
			return fmt.Sprintf("%d/task/%d", t.ThreadGroup().ID(), t.ThreadID()), nil
		})},
		{"cpuinfo", textFile(inoCPUInfo, 0444, fs.cpuinfo)},
		{"meminfo", textFile(inoMemInfo, 0444, fs.meminfo)},
		{"uptime", textFile(inoUptime, 0444, fs.uptime)},
		{"version", constFile(inoVersion, fmt.Sprintf("Linux version %s (veil@veil) %s\n", kernel.Release, kernel.Version))},
		{"loadavg", textFile(inoLoadAvg, 0444, fs.loadavg)},
		{"filesystems", constFile(inoFilesystems, "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevpts\nnodev\toverlay\nnodev\t9p\n")},
		{"stat", textFile(inoStat, 0444, fs.stat)},
		{"mounts", symlink(inoMounts, func(context.Context) (string, error) { return "self/mounts", nil })},
		{"net", symlink(inoNet, func(context.Context) (string, error) { return "self/net", nil })},
		{"swaps", constFile(inoSwaps, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")},
		{"partitions", constFile(inoPartitions, "major minor  #blocks  name\n\n")},
		{"sys", func() vfs.Inode { return fs.sysDir() }},
		{"sysvipc", dir(inoSysvipc, fixedEntries([]entry{
			{"msg", textFile(inoSysvipcMsg, 0444, func(context.Context) (string, error) { return fs.k.IPC().MsgText(), nil })},
			{"sem", textFile(inoSysvipcSem, 0444, func(context.Context) (string, error) { return fs.k.IPC().SemText(), nil })},
			{"shm", textFile(inoSysvipcShm, 0444, func(context.Context) (string, error) { return fs.k.IPC().ShmText(), nil })},
		}))},
	}
	for _, tg := range fs.k.ProcessList() {
		pid := tg.ID()
		es = append(es, entry{strconv.Itoa(int(pid)), func() vfs.Inode { return fs.taskDir(pid, 0) }})
	}
	return es
}

// rootLookup finds /proc/PID, and /proc/TID for any thread (not listed,
// as on Linux).
func (fs *Filesystem) rootLookup(ctx context.Context, name string) (vfs.Inode, error) {
	id, err := strconv.ParseUint(name, 10, 31)
	if err != nil || id == 0 || name[0] == '0' {
		return nil, unix.ENOENT
	}
	tid := kernel.ThreadID(id)
	if fs.k.ThreadGroupByID(tid) != nil {
		return fs.taskDir(tid, 0), nil
	}
	if t := fs.k.TaskByID(tid); t != nil {
		return fs.taskDir(t.ThreadGroup().ID(), tid), nil
	}
	return nil, unix.ENOENT
}

func (fs *Filesystem) cpuinfo(context.Context) (string, error) {
	flags := []string{"fpu", "tsc", "cx8", "cmov", "mmx", "fxsr", "sse", "sse2", "syscall", "lm"}
	x := cpu.X86
	for _, f := range []struct {
		on   bool
		name string
	}{
		{x.HasSSE3, "pni"}, {x.HasPCLMULQDQ, "pclmulqdq"}, {x.HasSSSE3, "ssse3"}, {x.HasFMA, "fma"},
		{x.HasSSE41, "sse4_1"}, {x.HasSSE42, "sse4_2"}, {x.HasPOPCNT, "popcnt"}, {x.HasAES, "aes"},
		{x.HasOSXSAVE, "xsave"}, {x.HasAVX, "avx"}, {x.HasRDRAND, "rdrand"}, {x.HasBMI1, "bmi1"},
		{x.HasAVX2, "avx2"}, {x.HasBMI2, "bmi2"}, {x.HasERMS, "erms"}, {x.HasAVX512F, "avx512f"},
		{x.HasAVX512DQ, "avx512dq"}, {x.HasRDSEED, "rdseed"}, {x.HasADX, "adx"},
		{x.HasAVX512CD, "avx512cd"}, {x.HasAVX512BW, "avx512bw"}, {x.HasAVX512VL, "avx512vl"},
	} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	id := identifyCPU()
	var b bytes.Buffer
	n := fs.k.NumCPU
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "processor\t: %d\nvendor_id\t: %s\ncpu family\t: %d\nmodel\t\t: %d\nmodel name\t: %s\nstepping\t: %d\n",
			i, id.vendor, id.family, id.model, id.brand, id.stepping)
		fmt.Fprintf(&b, "physical id\t: 0\nsiblings\t: %d\ncore id\t\t: %d\ncpu cores\t: %d\napicid\t\t: %d\n", n, i, n, i)
		fmt.Fprintf(&b, "fpu\t\t: yes\nfpu_exception\t: yes\nwp\t\t: yes\nflags\t\t: %s\n", strings.Join(flags, " "))
		fmt.Fprintf(&b, "clflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: %d bits physical, %d bits virtual\n\n", id.physBits, id.virtBits)
	}
	return b.String(), nil
}

func (fs *Filesystem) meminfo(context.Context) (string, error) {
	total := fs.k.TotalMemory() / 1024
	used := fs.k.MemoryFile.TotalUsage() / 1024
	free := uint64(0)
	if total > used {
		free = total - used
	}
	var b bytes.Buffer
	row := func(name string, kb uint64) { fmt.Fprintf(&b, "%-15s %8d kB\n", name+":", kb) }
	row("MemTotal", total)
	row("MemFree", free)
	row("MemAvailable", free)
	row("Buffers", 0)
	row("Cached", 0)
	row("SwapCached", 0)
	row("Active", used)
	row("Inactive", 0)
	row("Active(anon)", used)
	row("Inactive(anon)", 0)
	row("Active(file)", 0)
	row("Inactive(file)", 0)
	row("Unevictable", 0)
	row("Mlocked", 0)
	row("SwapTotal", 0)
	row("SwapFree", 0)
	row("Dirty", 0)
	row("Writeback", 0)
	row("AnonPages", used)
	row("Mapped", 0)
	row("Shmem", 0)
	row("Slab", 0)
	row("SReclaimable", 0)
	row("SUnreclaim", 0)
	row("KernelStack", 0)
	row("PageTables", 0)
	row("CommitLimit", total)
	row("Committed_AS", used)
	row("VmallocTotal", 0)
	row("VmallocUsed", 0)
	row("VmallocChunk", 0)
	return b.String(), nil
}

// busy returns the CPU time the sandbox's processes have used: that of
// the live ones and of the children they reaped.
func (fs *Filesystem) busy() (user, sys time.Duration) {
	for _, tg := range fs.k.ProcessList() {
		u, s := tg.CPUTimes()
		cu, cs := tg.ChildCPUTimes()
		user += u + cu
		sys += s + cs
	}
	return user, sys
}

func (fs *Filesystem) idle(user, sys time.Duration) time.Duration {
	idle := fs.k.Uptime()*time.Duration(fs.k.NumCPU) - user - sys
	return max(idle, 0)
}

func (fs *Filesystem) uptime(context.Context) (string, error) {
	u, s := fs.busy()
	return fmt.Sprintf("%.2f %.2f\n", fs.k.Uptime().Seconds(), fs.idle(u, s).Seconds()), nil
}

func (fs *Filesystem) loadavg(context.Context) (string, error) {
	la := fs.k.LoadAverage()
	st := fs.k.SchedStats()
	return fmt.Sprintf("%.2f %.2f %.2f %d/%d %d\n", la[0], la[1], la[2], st.Running, st.Tasks, st.LastPID), nil
}

// stat is /proc/stat. The sentry does not know which CPU ran what, so each
// CPU's line shows an equal share.
func (fs *Filesystem) stat(context.Context) (string, error) {
	u, s := fs.busy()
	idle := fs.idle(u, s)
	st := fs.k.SchedStats()
	n := int64(fs.k.NumCPU)
	var b bytes.Buffer
	fmt.Fprintf(&b, "cpu  %d 0 %d %d 0 0 0 0 0 0\n", ticks(u), ticks(s), ticks(idle))
	for i := int64(0); i < n; i++ {
		fmt.Fprintf(&b, "cpu%d %d 0 %d %d 0 0 0 0 0 0\n", i, ticks(u)/n, ticks(s)/n, ticks(idle)/n)
	}
	boot := time.Now().Add(-fs.k.Uptime()).Unix()
	// IDs are handed out in order, so the last one counts the tasks
	// created since boot until they wrap at pid_max.
	fmt.Fprintf(&b, "intr 0\nctxt 0\nbtime %d\nprocesses %d\nprocs_running %d\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n",
		boot, st.LastPID, max(st.Running, 1))
	return b.String(), nil
}

// clockTicks is USER_HZ, the unit of times in /proc.
const clockTicks = 100

func ticks(d time.Duration) int64 { return int64(d / (time.Second / clockTicks)) }
