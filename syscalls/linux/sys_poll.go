package linux

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

func init() {
	reg(unix.SYS_POLL, Partial, Poll, "a poll interrupted by a signal with SA_RESTART restarts with its full timeout")
	reg(unix.SYS_PPOLL, Full, Ppoll)
	reg(unix.SYS_SELECT, Full, Select)
	reg(unix.SYS_PSELECT6, Full, Pselect6)
}

const (
	pollWrNorm = 0x100
	pollWrBand = 0x200
	allEvents  = waiter.EventMask(0xffff)
)

type entryOn struct {
	f *vfs.FileDescription
	e *waiter.Entry
}

// wait blocks until something is signalled or the deadline passes; it
// reports false on timeout and the restart code on interruption.
func waitOn(t *kernel.Task, ch chan struct{}, deadline time.Time, restart error) (bool, error) {
	switch err := t.Block(ch, deadline); err {
	case nil:
		return true, nil
	case kernel.ErrTimedOut:
		return false, nil
	default:
		return false, restart
	}
}

// deadlineAfter returns the deadline of a relative timeout; negative
// means none (zero time), zero means "do not block" (reported by now).
func deadlineAfter(d time.Duration) (deadline time.Time, poll bool) {
	switch {
	case d < 0:
		return time.Time{}, false
	case d == 0:
		return time.Time{}, true
	}
	return time.Now().Add(d), false
}

// pollRevents computes revents for the events a pollfd asked for.
func pollRevents(f *vfs.FileDescription, events uint16) uint16 {
	r := f.Readiness(allEvents)
	var out uint16
	ask := waiter.EventMask(events)
	if r&waiter.EventIn != 0 {
		out |= uint16(ask & (waiter.EventIn | waiter.EventRdNorm))
	}
	if r&waiter.EventOut != 0 {
		out |= uint16(ask&waiter.EventOut) | events&(pollWrNorm|pollWrBand)
	}
	out |= uint16(r & ask & (waiter.EventPri | waiter.EventRdHUp))
	out |= uint16(r & (waiter.EventErr | waiter.EventHUp))
	return out
}

// doPoll is poll/ppoll over the pollfd array at addr.
func doPoll(t *kernel.Task, addr hostarch.Addr, nfds uint32, timeout time.Duration, restart error) (uintptr, error) {
	if int64(nfds) > int64(t.FileLimit()) {
		return 0, unix.EINVAL
	}
	buf := make([]byte, 8*int(nfds))
	if nfds > 0 {
		if _, err := t.CopyInBytes(addr, buf); err != nil {
			return 0, unix.EFAULT
		}
	}
	ws := &waitSet2{}
	defer ws.release(t)
	fds := make([]int32, nfds)
	events := make([]uint16, nfds)
	files := make([]*vfs.FileDescription, nfds)
	for i := range fds {
		fds[i] = int32(binary.LittleEndian.Uint32(buf[8*i:]))
		events[i] = binary.LittleEndian.Uint16(buf[8*i+4:])
		if fds[i] >= 0 {
			files[i] = ws.add(t, fds[i])
		}
	}
	deadline, nowait := deadlineAfter(timeout)
	for {
		n := 0
		for i := range fds {
			var rev uint16
			switch {
			case fds[i] < 0:
			case files[i] == nil:
				rev = uint16(waiter.EventNVal)
			default:
				rev = pollRevents(files[i], events[i])
			}
			binary.LittleEndian.PutUint16(buf[8*i+6:], rev)
			if rev != 0 {
				n++
			}
		}
		if n > 0 || nowait {
			if nfds > 0 {
				if _, err := t.CopyOutBytes(addr, buf); err != nil {
					return 0, unix.EFAULT
				}
			}
			return uintptr(n), nil
		}
		ok, err := waitOn(t, ws.ch, deadline, restart)
		if err != nil {
			return 0, err
		}
		if !ok {
			nowait = true
		}
	}
}

// waitSet2 registers one entry per file, all signalling one channel.
type waitSet2 struct {
	ch      chan struct{}
	entries []entryOn
}

func (w *waitSet2) add(t *kernel.Task, fd int32) *vfs.FileDescription {
	if w.ch == nil {
		w.ch = make(chan struct{}, 1)
	}
	f, _ := t.FDTable().Get(fd)
	if f == nil {
		return nil
	}
	e := &waiter.Entry{Mask: allEvents, Ch: w.ch}
	f.EventRegister(e)
	w.entries = append(w.entries, entryOn{f, e})
	return f
}

func (w *waitSet2) release(t *kernel.Task) {
	for _, eo := range w.entries {
		eo.f.EventUnregister(eo.e)
		eo.f.DecRef(t)
	}
}

// Poll is poll(2).
func Poll(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	ms := args[2].Int()
	timeout := time.Duration(-1)
	if ms >= 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	return doPoll(t, args[0].Pointer(), args[1].Uint(), timeout, linuxerr.ERESTARTNOHAND)
}

// installSigmask installs ppoll/pselect6/epoll_pwait's temporary mask.
func installSigmask(t *kernel.Task, addr hostarch.Addr, size uint) (bool, error) {
	if addr == 0 {
		return false, nil
	}
	if size != 8 {
		return false, unix.EINVAL
	}
	m, err := copyInU64(t, addr)
	if err != nil {
		return false, unix.EFAULT
	}
	t.SetSavedSignalMask(kernel.SignalSet(m))
	return true, nil
}

// copyInTimeout reads an optional timespec: nil means forever.
func copyInTimeout(t *kernel.Task, addr hostarch.Addr) (time.Duration, error) {
	if addr == 0 {
		return -1, nil
	}
	return copyInTimespec(t, addr)
}

// Ppoll is ppoll(2).
func Ppoll(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	timeout, err := copyInTimeout(t, args[2].Pointer())
	if err != nil {
		return 0, err
	}
	start := time.Now()
	masked, err := installSigmask(t, args[3].Pointer(), args[4].SizeT())
	if err != nil {
		return 0, err
	}
	if masked {
		defer t.RestoreSavedSignalMask()
	}
	n, err := doPoll(t, args[0].Pointer(), args[1].Uint(), timeout, linuxerr.ERESTARTNOHAND)
	if args[2].Pointer() != 0 && timeout > 0 {
		left := max(timeout-time.Since(start), 0)
		copyOutTimespec(t, args[2].Pointer(), left)
	}
	return n, err
}

// doSelect is select/pselect6 over the three fd_set bitmaps.
func doSelect(t *kernel.Task, nfds int32, rAddr, wAddr, eAddr hostarch.Addr, timeout time.Duration, restart error) (uintptr, error) {
	if nfds < 0 {
		return 0, unix.EINVAL
	}
	if nfds > t.FileLimit() {
		nfds = t.FileLimit()
	}
	nbytes := (int(nfds) + 63) / 64 * 8
	sets := [3][]byte{}
	addrs := [3]hostarch.Addr{rAddr, wAddr, eAddr}
	for i, a := range addrs {
		if a == 0 {
			continue
		}
		sets[i] = make([]byte, nbytes)
		if _, err := t.CopyInBytes(a, sets[i]); err != nil {
			return 0, unix.EFAULT
		}
	}
	isSet := func(s []byte, fd int) bool { return s != nil && s[fd/8]&(1<<(fd%8)) != 0 }
	ws := &waitSet2{}
	defer ws.release(t)
	files := make(map[int]*vfs.FileDescription)
	for fd := 0; fd < int(nfds); fd++ {
		if isSet(sets[0], fd) || isSet(sets[1], fd) || isSet(sets[2], fd) {
			f := ws.add(t, int32(fd))
			if f == nil {
				return 0, unix.EBADF
			}
			files[fd] = f
		}
	}
	deadline, nowait := deadlineAfter(timeout)
	out := [3][]byte{}
	for {
		n := 0
		for i := range out {
			if sets[i] != nil {
				out[i] = make([]byte, nbytes)
			}
		}
		for fd, f := range files {
			r := f.Readiness(allEvents)
			conds := [3]bool{
				r&(waiter.ReadableEvents|waiter.EventHUp|waiter.EventErr) != 0,
				r&(waiter.WritableEvents|waiter.EventErr) != 0,
				r&waiter.EventPri != 0,
			}
			for i := range conds {
				if conds[i] && isSet(sets[i], fd) {
					out[i][fd/8] |= 1 << (fd % 8)
					n++
				}
			}
		}
		if n > 0 || nowait {
			for i, a := range addrs {
				if a != 0 {
					if _, err := t.CopyOutBytes(a, out[i]); err != nil {
						return 0, unix.EFAULT
					}
				}
			}
			return uintptr(n), nil
		}
		ok, err := waitOn(t, ws.ch, deadline, restart)
		if err != nil {
			return 0, err
		}
		if !ok {
			nowait = true
		}
	}
}

// Select is select(2); the timeval is updated with the time left.
func Select(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	timeout := time.Duration(-1)
	tvAddr := args[4].Pointer()
	if tvAddr != 0 {
		var b [16]byte
		if _, err := t.CopyInBytes(tvAddr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		sec := int64(binary.LittleEndian.Uint64(b[0:]))
		usec := int64(binary.LittleEndian.Uint64(b[8:]))
		if sec < 0 || usec < 0 || usec >= 1e6 {
			return 0, unix.EINVAL
		}
		timeout = time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond
	}
	start := time.Now()
	n, err := doSelect(t, args[0].Int(), args[1].Pointer(), args[2].Pointer(), args[3].Pointer(), timeout, linuxerr.ERESTARTNOHAND)
	if tvAddr != 0 && timeout > 0 {
		left := max(timeout-time.Since(start), 0)
		copyOutLE(t, tvAddr, int64(left/time.Second), int64(left%time.Second/time.Microsecond))
	}
	return n, err
}

// Pselect6 is pselect6(2): the sixth argument points at {sigset *, size}.
func Pselect6(t *kernel.Task, args arch.SyscallArguments) (uintptr, error) {
	timeout, err := copyInTimeout(t, args[4].Pointer())
	if err != nil {
		return 0, err
	}
	if a := args[5].Pointer(); a != 0 {
		var b [16]byte
		if _, err := t.CopyInBytes(a, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		masked, err := installSigmask(t, hostarch.Addr(binary.LittleEndian.Uint64(b[0:])), uint(binary.LittleEndian.Uint64(b[8:])))
		if err != nil {
			return 0, err
		}
		if masked {
			defer t.RestoreSavedSignalMask()
		}
	}
	start := time.Now()
	n, err := doSelect(t, args[0].Int(), args[1].Pointer(), args[2].Pointer(), args[3].Pointer(), timeout, linuxerr.ERESTARTNOHAND)
	if args[4].Pointer() != 0 && timeout > 0 {
		copyOutTimespec(t, args[4].Pointer(), max(timeout-time.Since(start), 0))
	}
	return n, err
}
