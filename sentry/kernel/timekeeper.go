package kernel

import (
	"log"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/loader"
	"github.com/veil-sandbox/veil/sentry/vdso"
)

// The timekeeper owns the sandbox's CLOCK_MONOTONIC and CLOCK_REALTIME, and
// publishes them to the vvar page every application maps, so that the vDSO
// computes exactly what the clock_gettime syscall returns.
//
// With an invariant TSC the clock is a line in the TSC: MONOTONIC is
// vdso.Params.MonoAt(tsc), the same integer arithmetic the vDSO does, and
// REALTIME is MONOTONIC plus an offset. The timekeeper steers that line
// towards the host's CLOCK_MONOTONIC: every update (each second once
// settled) it samples the host clocks against the TSC, and re-anchors the
// line where it is at that moment, with a slope that would meet the host
// clock at the next update. The slope only ever differs from the measured
// TSC rate by a small slew (or the line jumps forward when it has fallen
// far behind), so MONOTONIC never goes back and advances at the host's
// rate to within the slew.
//
// Every reader, the vDSO in the applications and MonotonicNow here, reads
// the TSC inside a seqlock read section, and the writer takes the anchor's
// TSC only once the sequence is odd; so a reader on the old line read an
// earlier TSC than any reader of the new one, and the value at the anchor
// is the same on both lines.
//
// Without a usable TSC the vvar page says so and the vDSO makes the
// syscall; MONOTONIC is then the host's plus a fixed offset.
//
// Lock order: timekeeper.mu is a leaf.
type timekeeper struct {
	// seq is the sentry's own seqlock over state (odd while the writer
	// updates it, together with every vvar page).
	seq   atomic.Uint32
	state atomic.Pointer[clockState]

	startOnce sync.Once
	// log is the log of the kernel that started the timekeeper.
	log *log.Logger
	// ready is closed once the timekeeper has decided how to keep time
	// (calibrated the TSC, or given up on it).
	ready chan struct{}

	// mu serialises writers and guards what follows.
	mu sync.Mutex
	// pages are the vvar pages of every live kernel, kept equal to state.
	pages map[*Kernel]*vdso.Pages
	// history holds host samples of the last half minute or so; the
	// oldest gives the TSC rate.
	history []clockSample
	// interval is the time between updates; it grows to maxInterval.
	interval time.Duration
}

// clockState is the published clock: vdso.Params (as in the vvar pages)
// and, in vdso.ModeSyscall, the offset of MONOTONIC from the host's.
type clockState struct {
	vdso.Params
	hostOffset int64
}

// clockSample is the host's clocks at a TSC value.
type clockSample struct {
	tsc        uint64
	mono, real int64
}

const (
	// clockShift is vdso.Params.Shift: Mult is nanoseconds per TSC tick
	// times 2^32, which leaves plenty of precision at any TSC rate.
	clockShift = 32
	// calibrationTime is how long the first TSC rate is measured over
	// before the vDSO is trusted with it; the rate is refined at every
	// update after that.
	calibrationTime = 2 * time.Millisecond
	// firstInterval and maxInterval bound the time between updates: short
	// at first, while the rate is measured over a short baseline.
	firstInterval = 4 * time.Millisecond
	maxInterval   = time.Second
	// rateWindow is how far back the sample the TSC rate is measured
	// from may go: long enough for precision, short enough to follow the
	// host's NTP frequency corrections.
	rateWindow = 30 * time.Second
	// maxSlew bounds how much the clock's rate may differ from the
	// measured rate while it catches up with the host (Linux's NTP allows
	// 500 ppm).
	maxSlew = 500e-6
	// realtimeStep is how far the host's REALTIME - MONOTONIC must move
	// before the sandbox follows: only a real step of the host's clock,
	// never sampling noise, changes the sandbox's REALTIME offset (so
	// REALTIME never goes back by noise).
	realtimeStep = 100 * time.Microsecond
	// minTSCRate and maxTSCRate bound a believable TSC rate, in ticks per
	// nanosecond.
	minTSCRate, maxTSCRate = 0.05, 20
)

var tk = &timekeeper{ready: make(chan struct{})}

func init() {
	tk.state.Store(&clockState{Params: vdso.Params{Mode: vdso.ModeSyscall}})
}

// Host clocks. Go's monotonic clock is the host's CLOCK_MONOTONIC less a
// constant, which one raw reading at start-up gives (taken before the
// sentry's seccomp filter is in place), paired with the middle of two Go
// readings around it.
var hostMonoBase, hostMonoAtBase = func() (time.Time, int64) {
	var ts unix.Timespec
	before := time.Now()
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	after := time.Now()
	return before.Add(after.Sub(before) / 2), ts.Nano()
}()

func hostMono(now time.Time) int64 { return hostMonoAtBase + int64(now.Sub(hostMonoBase)) }

// MonotonicNow is the sandbox's CLOCK_MONOTONIC (and BOOTTIME, the
// sandbox never suspends), in nanoseconds: what the vDSO returns.
func MonotonicNow() time.Duration {
	mono, _ := tk.now()
	return time.Duration(mono)
}

// RealtimeNow is the sandbox's CLOCK_REALTIME, in nanoseconds since the
// epoch: what the vDSO returns.
func RealtimeNow() time.Duration {
	mono, off := tk.now()
	return time.Duration(mono + off)
}

// now reads MONOTONIC and REALTIME - MONOTONIC, as the vDSO does.
func (tk *timekeeper) now() (mono, realOff int64) {
	for {
		s := tk.seq.Load()
		if s&1 != 0 {
			runtime.Gosched()
			continue
		}
		st := tk.state.Load()
		if st.Mode == vdso.ModeTSC {
			mono = int64(st.MonoAt(vdso.ReadTSC()))
			realOff = st.RealtimeOffset
		} else {
			now := time.Now()
			mono = hostMono(now) + st.hostOffset
			realOff = now.UnixNano() - mono
		}
		if tk.seq.Load() == s {
			return mono, realOff
		}
	}
}

// vdsoForExec returns the vDSO to map into a new address space of k: its
// image and vvar page in k's memory file, made on first use. It starts the
// timekeeper and waits (briefly, once) for the TSC to be calibrated, so
// that even the sandbox's first program reads the clock without traps.
func (k *Kernel) vdsoForExec() (*loader.VDSO, error) {
	tk.startOnce.Do(func() {
		tk.log = k.Log
		go tk.run()
	})
	tk.mu.Lock()
	p, ok := tk.pages[k]
	if !ok {
		var err error
		if p, err = vdso.NewPages(k.MemoryFile); err != nil {
			tk.mu.Unlock()
			return nil, unix.ENOMEM
		}
		// getcpu through the vDSO says what the getcpu syscall says: the
		// sandbox does not show which host CPU a thread is on.
		p.VVar.SetCPU(0, 0)
		tk.publishPageLocked(p)
		if tk.pages == nil {
			tk.pages = make(map[*Kernel]*vdso.Pages)
		}
		tk.pages[k] = p
		// Once the sandbox has ended nobody reads the page; stop writing
		// it before whoever tears the kernel down frees its memory file.
		go func() {
			<-k.done
			tk.mu.Lock()
			delete(tk.pages, k)
			tk.mu.Unlock()
		}()
	}
	tk.mu.Unlock()
	select {
	case <-tk.ready:
	default:
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-tk.ready:
		case <-t.C:
			// A starved calibration: run with the syscall until it is
			// done.
		}
		t.Stop()
	}
	return &loader.VDSO{
		Image:     p.Image(),
		ImageSize: vdso.ImageSize(),
		VVar:      p.VVarMappable(),
		VVarSize:  vdso.VVarSize,
	}, nil
}

// publishPageLocked brings a new page up to date. tk.mu is held, so no
// update is in progress.
func (tk *timekeeper) publishPageLocked(p *vdso.Pages) {
	p.VVar.BeginUpdate()
	p.VVar.Store(tk.state.Load().Params)
	p.VVar.EndUpdate()
}

// run keeps time for the rest of the process's life.
func (tk *timekeeper) run() {
	if !vdso.InvariantTSC() {
		tk.logf("timekeeper: the CPU's TSC is not invariant; vDSO clock calls are syscalls")
		close(tk.ready)
		return
	}
	a := takeSample()
	time.Sleep(calibrationTime)
	b := takeSample()
	rate, ok := tscRate(a, b)
	if !ok {
		tk.logf("timekeeper: implausible TSC rate; vDSO clock calls are syscalls")
		close(tk.ready)
		return
	}
	tk.mu.Lock()
	tk.history = []clockSample{a, b}
	tk.interval = firstInterval
	tk.startTSCLocked(b, rate)
	tk.mu.Unlock()
	close(tk.ready)

	for {
		tk.mu.Lock()
		interval := tk.interval
		tk.mu.Unlock()
		time.Sleep(interval)
		if !tk.update() {
			return
		}
	}
}

// logf logs to the log of the kernel that started the timekeeper.
func (tk *timekeeper) logf(format string, args ...any) {
	if tk.log != nil {
		tk.log.Printf(format, args...)
	}
}

// takeSample reads the host's clocks bracketed by the TSC, a few times,
// and keeps the tightest bracket (the others were interrupted).
func takeSample() clockSample {
	var best clockSample
	width := uint64(math.MaxUint64)
	for range 8 {
		t1 := vdso.ReadTSC()
		now := time.Now()
		t2 := vdso.ReadTSC()
		if t2 > t1 && t2-t1 < width {
			width = t2 - t1
			best = clockSample{tsc: t1 + (t2-t1)/2, mono: hostMono(now), real: now.UnixNano()}
		}
	}
	return best
}

// tscRate is the host's nanoseconds per TSC tick between two samples.
func tscRate(a, b clockSample) (float64, bool) {
	if b.tsc <= a.tsc || b.mono <= a.mono {
		return 0, false
	}
	ticksPerNs := float64(b.tsc-a.tsc) / float64(b.mono-a.mono)
	if ticksPerNs < minTSCRate || ticksPerNs > maxTSCRate {
		return 0, false
	}
	return 1 / ticksPerNs, true
}

// startTSCLocked switches from the host-based clock to the TSC line,
// continuing from where the host-based clock is.
func (tk *timekeeper) startTSCLocked(s clockSample, rate float64) {
	old := tk.state.Load()
	tk.beginLocked()
	t0 := vdso.ReadTSCAfterStores()
	// Readers of the host-based clock read the host before seq went odd,
	// so this reading is at least what any of them returned.
	now := time.Now()
	v0 := hostMono(now) + old.hostOffset
	st := &clockState{Params: vdso.Params{
		Mode:           vdso.ModeTSC,
		TSCBase:        t0,
		MonoBase:       uint64(v0),
		Shift:          clockShift,
		RealtimeOffset: s.real - s.mono,
	}}
	st.Mult = tk.steer(st.MonoBase, t0, s, rate)
	tk.endLocked(st)
}

// update takes a sample, re-measures the TSC rate and re-anchors the line.
// It returns false if the TSC had to be given up.
func (tk *timekeeper) update() bool {
	s := takeSample()
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.history = append(tk.history, s)
	for len(tk.history) > 2 && s.mono-tk.history[1].mono >= int64(rateWindow) {
		tk.history = tk.history[1:]
	}
	tk.interval = min(2*tk.interval, maxInterval)
	rate, ok := tscRate(tk.history[0], s)

	old := tk.state.Load()
	tk.beginLocked()
	t0 := vdso.ReadTSCAfterStores()
	if !ok || t0 < old.TSCBase {
		// The TSC went back or its rate is no longer believable
		// (migration to another host, a broken hypervisor): keep
		// MONOTONIC going on the host's clock, never behind where the
		// TSC line was.
		v := int64(old.MonoAt(t0))
		now := time.Now()
		off := max(0, v-hostMono(now))
		tk.endLocked(&clockState{Params: vdso.Params{Mode: vdso.ModeSyscall}, hostOffset: off})
		tk.logf("timekeeper: the TSC became unusable; vDSO clock calls are now syscalls")
		return false
	}
	st := &clockState{Params: old.Params}
	st.TSCBase = t0
	st.MonoBase = old.MonoAt(t0)
	// The host's clock at t0, extrapolated from the sample.
	host := float64(s.mono) + float64(int64(t0-s.tsc))*rate
	if lag := host - float64(st.MonoBase); lag > float64(tk.interval)*maxSlew {
		// Too far behind to catch up by slewing: jump forward.
		st.MonoBase = uint64(host)
	}
	if off := s.real - s.mono; abs64(off-old.RealtimeOffset) > int64(realtimeStep) {
		st.RealtimeOffset = off
	}
	st.Mult = tk.steer(st.MonoBase, t0, s, rate)
	tk.endLocked(st)
	return true
}

// steer returns the Mult that takes the line from mono at TSC t0 to the
// host's clock (as sample s and rate extrapolate it) one interval later,
// within maxSlew of the rate.
func (tk *timekeeper) steer(mono uint64, t0 uint64, s clockSample, rate float64) uint64 {
	ticks := float64(tk.interval) / rate
	hostNext := float64(s.mono) + (float64(int64(t0-s.tsc))+ticks)*rate
	want := (hostNext - float64(mono)) / ticks
	want = min(max(want, rate*(1-maxSlew)), rate*(1+maxSlew))
	return uint64(want * (1 << clockShift))
}

// beginLocked starts an update of the sentry's state and every page.
func (tk *timekeeper) beginLocked() {
	tk.seq.Add(1)
	for _, p := range tk.pages {
		p.VVar.BeginUpdate()
	}
}

// endLocked publishes st and ends the update.
func (tk *timekeeper) endLocked(st *clockState) {
	tk.state.Store(st)
	for _, p := range tk.pages {
		p.VVar.Store(st.Params)
		p.VVar.EndUpdate()
	}
	tk.seq.Add(1)
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
