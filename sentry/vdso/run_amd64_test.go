package vdso

import (
	"debug/elf"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loaded is the image mapped into the test process below its own vvar
// page, as the loader maps it into an application.
type loaded struct {
	mem  []byte
	vvar *VVar
	syms map[string]uintptr
}

func loadImage(t *testing.T) *loaded {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, int(VVarSize+ImageSize()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	copy(mem[VVarSize:], Image())
	if err := unix.Mprotect(mem[VVarSize:], unix.PROT_READ|unix.PROT_EXEC); err != nil {
		t.Fatal(err)
	}
	l := &loaded{mem: mem, vvar: NewVVar(mem[:VVarSize]), syms: map[string]uintptr{}}
	syms, err := parseImage(t).DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	base := uintptr(unsafe.Pointer(&mem[VVarSize]))
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			l.syms[s.Name] = base + uintptr(s.Value)
		}
	}
	return l
}

// call calls function name; an int result is the low half of the
// returned value.
func (l *loaded) call(name string, a0, a1, a2 uintptr) int64 {
	fn, ok := l.syms[name]
	if !ok {
		panic(name + " not in the image")
	}
	return int64(callC3(fn, a0, a1, a2))
}

// clockGettime calls the image's clock_gettime and returns the result in
// nanoseconds, or the negative errno.
func (l *loaded) clockGettime(clk int) (int64, int64) {
	ts := new([2]int64)
	r := int32(l.call("__vdso_clock_gettime", uintptr(clk), uintptr(unsafe.Pointer(ts)), 0))
	runtime.KeepAlive(ts)
	return ts[0]*1e9 + ts[1], int64(r)
}

func hostClock(t *testing.T, clk int32) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(clk, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

// testParams makes CLOCK_MONOTONIC tick at 0.4 ns per TSC tick from 1000 s
// at the current TSC, with distinct offsets for the other clocks.
func testParams() Params {
	return Params{
		Mode:           ModeTSC,
		TSCBase:        ReadTSC(),
		MonoBase:       1000e9,
		Mult:           2 << 32 / 5,
		Shift:          32,
		RealtimeOffset: 1_700_000_000e9,
		BoottimeOffset: 5e9,
		TAIOffset:      37e9,
	}
}

func (l *loaded) publish(p Params) {
	l.vvar.BeginUpdate()
	l.vvar.Store(p)
	l.vvar.EndUpdate()
}

func TestRunTSCMode(t *testing.T) {
	l := loadImage(t)
	p := testParams()
	l.publish(p)
	for _, c := range []struct {
		clk    int
		offset int64
	}{
		{unix.CLOCK_MONOTONIC, 0},
		{unix.CLOCK_MONOTONIC_RAW, 0},
		{unix.CLOCK_MONOTONIC_COARSE, 0},
		{unix.CLOCK_BOOTTIME, p.BoottimeOffset},
		{unix.CLOCK_REALTIME, p.RealtimeOffset},
		{unix.CLOCK_REALTIME_COARSE, p.RealtimeOffset},
		{unix.CLOCK_TAI, p.RealtimeOffset + p.TAIOffset},
	} {
		before := int64(p.MonoAt(ReadTSC())) + c.offset
		got, r := l.clockGettime(c.clk)
		after := int64(p.MonoAt(ReadTSC())) + c.offset
		if r != 0 || got < before || got > after {
			t.Errorf("clock %d: %d (ret %d), want within [%d, %d]", c.clk, got, r, before, after)
		}
	}

	tv := new([2]int64)
	before := (int64(p.MonoAt(ReadTSC())) + p.RealtimeOffset) / 1000
	r := l.call("gettimeofday", uintptr(unsafe.Pointer(tv)), 0, 0)
	after := (int64(p.MonoAt(ReadTSC())) + p.RealtimeOffset) / 1000
	if got := tv[0]*1e6 + tv[1]; r != 0 || got < before || got > after || tv[1] >= 1e6 {
		t.Errorf("gettimeofday: %v (ret %d), want within [%d, %d] µs", tv, r, before, after)
	}
	tz := &[2]int32{-1, -1}
	if r := l.call("__vdso_gettimeofday", 0, uintptr(unsafe.Pointer(tz)), 0); r != 0 || tz[0] != 0 || tz[1] != 0 {
		t.Errorf("gettimeofday(NULL, tz): ret %d tz %v, want UTC", r, tz)
	}

	var sec int64
	secBefore := (int64(p.MonoAt(ReadTSC())) + p.RealtimeOffset) / 1e9
	r = l.call("__vdso_time", uintptr(unsafe.Pointer(&sec)), 0, 0)
	if r != sec || sec < secBefore || sec > secBefore+1 {
		t.Errorf("time: ret %d, *t %d, want %d", r, sec, secBefore)
	}
	if r := l.call("time", 0, 0, 0); r < secBefore {
		t.Errorf("time(NULL) = %d, want >= %d", r, secBefore)
	}
	runtime.KeepAlive(tv)
	runtime.KeepAlive(tz)

	// A TSC behind the anchor (another CPU's, slightly) reads as the anchor.
	q := p
	q.TSCBase = ReadTSC() + 1e12
	l.publish(q)
	if got, r := l.clockGettime(unix.CLOCK_MONOTONIC); r != 0 || got != int64(q.MonoBase) {
		t.Errorf("TSC below the anchor: %d (ret %d), want exactly %d", got, r, q.MonoBase)
	}
}

func TestRunGetresAndGetcpu(t *testing.T) {
	l := loadImage(t)
	l.publish(testParams())
	for clk, want := range map[int]int64{
		unix.CLOCK_REALTIME: 1, unix.CLOCK_MONOTONIC: 1, unix.CLOCK_BOOTTIME: 1,
		unix.CLOCK_MONOTONIC_RAW: 1, unix.CLOCK_TAI: 1,
		unix.CLOCK_REALTIME_COARSE: 4e6, unix.CLOCK_MONOTONIC_COARSE: 4e6,
	} {
		res := &[2]int64{-1, -1}
		if r := l.call("clock_getres", uintptr(clk), uintptr(unsafe.Pointer(res)), 0); r != 0 || res[0] != 0 || res[1] != want {
			t.Errorf("clock_getres(%d) = %d, %v; want 0, {0 %d}", clk, r, res, want)
		}
	}
	if r := l.call("clock_getres", unix.CLOCK_MONOTONIC, 0, 0); r != 0 {
		t.Errorf("clock_getres(MONOTONIC, NULL) = %d", r)
	}
	// Not the vDSO's: the host answers (the test runs natively).
	res := new([2]int64)
	if r := int32(l.call("clock_getres", 12345, uintptr(unsafe.Pointer(res)), 0)); r != -int32(unix.EINVAL) {
		t.Errorf("clock_getres(12345) = %d, want -EINVAL from the syscall", r)
	}

	l.vvar.SetCPU(3, 1)
	cpu, node := new(uint32), new(uint32)
	if r := l.call("getcpu", uintptr(unsafe.Pointer(cpu)), uintptr(unsafe.Pointer(node)), 0); r != 0 || *cpu != 3 || *node != 1 {
		t.Errorf("getcpu = %d, cpu %d node %d; want 0, 3, 1", r, *cpu, *node)
	}
	if r := l.call("__vdso_getcpu", 0, 0, 0); r != 0 {
		t.Errorf("getcpu(NULL, NULL) = %d", r)
	}
	runtime.KeepAlive(res)
}

// TestRunSyscallMode: with the page in ModeSyscall, and for clocks the
// vDSO does not compute, the calls are the host's (the test is native).
func TestRunSyscallMode(t *testing.T) {
	l := loadImage(t)
	before := hostClock(t, unix.CLOCK_MONOTONIC)
	got, r := l.clockGettime(unix.CLOCK_MONOTONIC)
	after := hostClock(t, unix.CLOCK_MONOTONIC)
	if r != 0 || got < before || got > after {
		t.Errorf("ModeSyscall MONOTONIC: %d (ret %d), want host's, within [%d, %d]", got, r, before, after)
	}
	l.publish(testParams())
	if got, r := l.clockGettime(unix.CLOCK_PROCESS_CPUTIME_ID); r != 0 || got <= 0 || got > hostClock(t, unix.CLOCK_PROCESS_CPUTIME_ID) {
		t.Errorf("PROCESS_CPUTIME_ID: %d (ret %d), want the host's", got, r)
	}
	if _, r := l.clockGettime(12345); r != -int64(unix.EINVAL) {
		t.Errorf("clock 12345: ret %d, want -EINVAL", r)
	}
	tv := new([2]int64)
	l.publish(Params{Mode: ModeSyscall})
	before = hostClock(t, unix.CLOCK_REALTIME) / 1000
	if r := l.call("gettimeofday", uintptr(unsafe.Pointer(tv)), 0, 0); r != 0 || tv[0]*1e6+tv[1] < before {
		t.Errorf("ModeSyscall gettimeofday: %v (ret %d), want >= %d µs", tv, r, before)
	}
	runtime.KeepAlive(tv)
}

// TestRunStuckWriter: a writer that stays mid-update (seq odd) does not
// stall readers; after a bounded wait they make the syscall.
func TestRunStuckWriter(t *testing.T) {
	l := loadImage(t)
	p := testParams()
	l.publish(p)
	l.vvar.BeginUpdate()
	before := hostClock(t, unix.CLOCK_MONOTONIC)
	got, r := l.clockGettime(unix.CLOCK_MONOTONIC)
	after := hostClock(t, unix.CLOCK_MONOTONIC)
	l.vvar.EndUpdate()
	if r != 0 || got < before || got > after {
		t.Errorf("with the writer stuck: %d (ret %d), want the host's, within [%d, %d]", got, r, before, after)
	}
}

// TestRunMonotonicAcrossUpdates has a writer re-anchor the clock as fast
// as it can, with a different rate each time, while readers on other
// threads check that CLOCK_MONOTONIC never goes back, both within a
// thread and across threads (each reader publishes what it read; a later
// reader must not see less).
func TestRunMonotonicAcrossUpdates(t *testing.T) {
	l := loadImage(t)
	p := testParams()
	l.publish(p)
	var stop atomic.Bool
	var updates atomic.Int64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		runtime.LockOSThread()
		cur := p
		for i := 0; !stop.Load(); i++ {
			l.vvar.BeginUpdate()
			t0 := ReadTSCAfterStores()
			cur.MonoBase = cur.MonoAt(t0)
			cur.TSCBase = t0
			// Alternate between rates 10% apart, far more than the
			// timekeeper ever steers.
			cur.Mult = p.Mult
			if i%2 == 0 {
				cur.Mult = p.Mult + p.Mult/10
			}
			l.vvar.Store(cur)
			l.vvar.EndUpdate()
			updates.Add(1)
			// Leave the page stable for a moment, as the timekeeper
			// does for far longer.
			for s := ReadTSC(); ReadTSC()-s < 2000; {
			}
		}
	}()
	// The test's clock reads about 1000 s; the host's, to which a reader
	// falls back, has been up far longer on any machine that runs this.
	syscallBound := int64(p.MonoBase) + 1000e9
	if host := hostClock(t, unix.CLOCK_MONOTONIC); host < syscallBound+100e9 {
		t.Skipf("host CLOCK_MONOTONIC %d too close to the test's timeline to tell them apart", host)
	}
	var latest, syscalls atomic.Int64
	readers, iters := 3, 200000
	if testing.Short() {
		iters = 20000
	}
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			last := int64(0)
			for range iters {
				seen := latest.Load()
				now, r := l.clockGettime(unix.CLOCK_MONOTONIC)
				if r == 0 && now > syscallBound {
					// The writer was descheduled mid-update and this
					// reader gave up waiting: the host answered, on
					// its own timeline.
					syscalls.Add(1)
					continue
				}
				if r != 0 || now < last || now < seen {
					t.Errorf("MONOTONIC %d after %d on this thread and %d on another (ret %d)", now, last, seen, r)
					return
				}
				last = now
				for {
					old := latest.Load()
					if now <= old || latest.CompareAndSwap(old, now) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	<-writerDone
	t.Logf("%d updates during %d reads (%d answered by the syscall)", updates.Load(), readers*iters, syscalls.Load())
}
