package kernel

import (
	"math"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/vdso"
)

func hostNow(t *testing.T, clk int32) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(clk, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

// TestTimekeeper starts the timekeeper as the first exec does and, across
// its first updates, checks that MONOTONIC (as the sentry and as the vDSO
// read it) never goes back and stays with the host's clocks.
func TestTimekeeper(t *testing.T) {
	mf, err := memory.NewSized(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	k := New(Config{MemoryFile: mf})
	vd, err := k.vdsoForExec()
	if err != nil {
		t.Fatal(err)
	}
	if vd.ImageSize != vdso.ImageSize() || vd.VVarSize != vdso.VVarSize || vd.Image == nil || vd.VVar == nil {
		t.Fatalf("vDSO %+v", vd)
	}
	if vd2, _ := k.vdsoForExec(); vd2.VVar != vd.VVar {
		t.Error("a second exec got another vvar page")
	}
	tk.mu.Lock()
	page := tk.pages[k].VVar
	tk.mu.Unlock()
	select {
	case <-tk.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the timekeeper never became ready")
	}
	tsc := vdso.InvariantTSC()
	if _, ok := page.ReadMonotonic(); ok != tsc {
		t.Fatalf("vvar page in TSC mode: %v; invariant TSC: %v", ok, tsc)
	}

	// Readers on several threads: the sentry's clock and the page's
	// alternate, each thread's values must never decrease, and none may
	// be below what another thread had already published.
	var mu sync.Mutex
	latest := int64(0)
	var wg sync.WaitGroup
	deadline := time.Now().Add(300 * time.Millisecond) // several updates
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			for i := 0; time.Now().Before(deadline); i++ {
				mu.Lock()
				seen := latest
				mu.Unlock()
				var now int64
				if v, ok := page.ReadMonotonic(); ok && i%2 == 0 {
					now = int64(v)
				} else {
					now = int64(MonotonicNow())
				}
				if now < last || now < seen {
					t.Errorf("MONOTONIC %d after %d on this thread, %d on another", now, last, seen)
					return
				}
				last = now
				mu.Lock()
				latest = max(latest, now)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	// The clocks follow the host's: within a millisecond (the steering
	// keeps them within microseconds; this is a loaded shared machine).
	for range 5 {
		h1 := hostNow(t, unix.CLOCK_MONOTONIC)
		m := int64(MonotonicNow())
		h2 := hostNow(t, unix.CLOCK_MONOTONIC)
		if m < h1-int64(time.Millisecond) || m > h2+int64(time.Millisecond) {
			t.Errorf("MONOTONIC %d, host's between %d and %d", m, h1, h2)
		}
		r1 := hostNow(t, unix.CLOCK_REALTIME)
		r := int64(RealtimeNow())
		r2 := hostNow(t, unix.CLOCK_REALTIME)
		if r < r1-int64(time.Millisecond) || r > r2+int64(time.Millisecond) {
			t.Errorf("REALTIME %d, host's between %d and %d", r, r1, r2)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The page holds what the sentry reads.
	if tsc {
		st := tk.state.Load()
		if p := page.Load(); p != st.Params {
			t.Errorf("vvar page %+v, sentry's clock %+v", p, st.Params)
		}
	}
}

// TestSteer checks the slope chosen at an update: it meets the host clock
// one interval later when that takes less than maxSlew, and is limited to
// maxSlew otherwise.
func TestSteer(t *testing.T) {
	k := &timekeeper{interval: time.Second}
	const rate = 0.4 // ns per tick
	s := clockSample{tsc: 1_000_000, mono: 5e9}
	t0 := uint64(1_250_000)                          // 100 µs of ticks after the sample
	host := float64(s.mono) + float64(t0-s.tsc)*rate // host clock at t0
	for _, c := range []struct {
		name  string
		ahead float64 // how far the line is ahead of the host at t0, ns
		want  float64 // the slope it should get
	}{
		{"on time", 0, rate},
		{"ahead a little", 1000, rate * (1 - 1000/1e9)},
		{"behind a little", -1000, rate * (1 + 1000/1e9)},
		{"ahead a lot", 1e8, rate * (1 - maxSlew)},
		{"behind a lot", -1e8, rate * (1 + maxSlew)},
	} {
		mult := k.steer(uint64(host+c.ahead), t0, s, rate)
		got := float64(mult) / (1 << clockShift)
		if math.Abs(got-c.want)/rate > 1e-9 {
			t.Errorf("%s: slope %.12f ns/tick, want %.12f", c.name, got, c.want)
		}
	}
}

func TestTSCRate(t *testing.T) {
	a := clockSample{tsc: 1000, mono: 100}
	if r, ok := tscRate(a, clockSample{tsc: 1000 + 3e9, mono: 100 + 1e9}); !ok || math.Abs(r-1.0/3) > 1e-12 {
		t.Errorf("3 GHz TSC: %v %v", r, ok)
	}
	for _, b := range []clockSample{
		{tsc: 1000, mono: 200},             // TSC stopped
		{tsc: 900, mono: 200},              // TSC went back
		{tsc: 2000, mono: 100},             // host clock stopped
		{tsc: 1000 + 1e6, mono: 100 + 1e9}, // 1 MHz: not a TSC
	} {
		if _, ok := tscRate(a, b); ok {
			t.Errorf("tscRate(%+v, %+v) accepted", a, b)
		}
	}
}

// newTestTimekeeper is a timekeeper of the test's own, on the host clock
// until started, with a vvar page.
func newTestTimekeeper(t *testing.T) (*timekeeper, *vdso.VVar) {
	if !vdso.InvariantTSC() {
		t.Skip("no invariant TSC on this machine")
	}
	k := &timekeeper{ready: make(chan struct{}), interval: firstInterval}
	k.state.Store(&clockState{Params: vdso.Params{Mode: vdso.ModeSyscall}})
	page := vdso.NewVVar(make([]byte, vdso.VVarSize))
	pages := &vdso.Pages{VVar: page}
	k.pages = map[*Kernel]*vdso.Pages{nil: pages}
	return k, page
}

// TestTimekeeperTransitions: host clock → TSC line → updates → host clock
// again (the TSC given up), MONOTONIC never going back at any step and the
// vvar page following each.
func TestTimekeeperTransitions(t *testing.T) {
	k, page := newTestTimekeeper(t)
	last, _ := k.now()
	step := func(what string) {
		t.Helper()
		now, _ := k.now()
		if now < last {
			t.Errorf("%s: MONOTONIC went back from %d to %d", what, last, now)
		}
		last = now
	}

	a := takeSample()
	time.Sleep(calibrationTime)
	b := takeSample()
	rate, ok := tscRate(a, b)
	if !ok {
		t.Fatalf("TSC rate from %+v to %+v", a, b)
	}
	k.mu.Lock()
	k.history = []clockSample{a, b}
	k.startTSCLocked(b, rate)
	k.mu.Unlock()
	step("switch to the TSC")
	if _, ok := page.ReadMonotonic(); !ok {
		t.Fatal("vvar page not in TSC mode after the switch")
	}
	for i := range 5 {
		time.Sleep(time.Millisecond)
		if !k.update() {
			t.Fatalf("update %d gave up the TSC", i)
		}
		step("update")
		v, _ := page.ReadMonotonic()
		if now, _ := k.now(); int64(v) > now {
			t.Errorf("vvar page %d ahead of the sentry's clock %d", v, now)
		}
	}

	// Put the line's anchor in the future: to the next update the TSC
	// went back, and the clock must continue on the host's, from where
	// the line was.
	k.mu.Lock()
	st := *k.state.Load()
	st.TSCBase = vdso.ReadTSC() + 1<<40
	st.MonoBase = uint64(last) + uint64(time.Second)
	k.state.Store(&st)
	k.mu.Unlock()
	last = int64(st.MonoBase)
	if k.update() {
		t.Fatal("update kept a TSC that went back")
	}
	step("TSC given up")
	if _, ok := page.ReadMonotonic(); ok {
		t.Error("vvar page still in TSC mode")
	}
	if st := k.state.Load(); st.Mode != vdso.ModeSyscall || st.hostOffset < int64(time.Second)-int64(10*time.Millisecond) {
		t.Errorf("state after giving up %+v", st)
	}
}
