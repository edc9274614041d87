package pipe

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

var ctx = context.Background()

func seq(b []byte) usermem.IOSequence { return usermem.BytesSequence(b) }

func TestReadWriteEOF(t *testing.T) {
	r, w := NewConnectedPipe(0)
	if n, err := w.Write(ctx, seq([]byte("hello"))); n != 5 || err != nil {
		t.Fatalf("write %d %v", n, err)
	}
	buf := make([]byte, 3)
	if n, _ := r.Read(ctx, seq(buf)); n != 3 || string(buf) != "hel" {
		t.Fatalf("read %q", buf[:n])
	}
	if n, _ := r.Read(ctx, seq(buf)); n != 2 || string(buf[:2]) != "lo" {
		t.Fatalf("read %q", buf[:n])
	}
	if _, err := r.Read(ctx, seq(buf)); err != unix.EAGAIN {
		t.Fatalf("empty read with writer: %v", err)
	}
	if r.Readiness(waiter.EventIn) != 0 {
		t.Fatalf("empty pipe readable")
	}
	w.DecRef(ctx)
	if n, err := r.Read(ctx, seq(buf)); n != 0 || err != nil {
		t.Fatalf("EOF read: %d %v", n, err)
	}
	if r.Readiness(waiter.EventIn)&waiter.EventHUp == 0 {
		t.Fatalf("no POLLHUP after writer closed")
	}
	if _, err := r.PRead(ctx, seq(buf), 0); err != unix.ESPIPE {
		t.Fatalf("pread: %v", err)
	}
	if _, err := r.Seek(ctx, 0, unix.SEEK_SET); err != unix.ESPIPE {
		t.Fatalf("lseek: %v", err)
	}
	r.DecRef(ctx)
}

func TestEPIPE(t *testing.T) {
	r, w := NewConnectedPipe(0)
	r.DecRef(ctx)
	if _, err := w.Write(ctx, seq([]byte("x"))); err != unix.EPIPE {
		t.Fatalf("write without reader: %v", err)
	}
	if w.Readiness(waiter.EventOut)&waiter.EventErr == 0 {
		t.Fatalf("no POLLERR")
	}
	w.DecRef(ctx)
}

func TestCapacityAndAtomicity(t *testing.T) {
	r, w := NewConnectedPipe(unix.O_NONBLOCK)
	defer r.DecRef(ctx)
	defer w.DecRef(ctx)
	big := make([]byte, DefaultSize+100)
	n, err := w.Write(ctx, seq(big))
	if n != DefaultSize || err != nil {
		t.Fatalf("fill: %d %v", n, err)
	}
	if _, err := w.Write(ctx, seq([]byte("x"))); err != unix.EAGAIN {
		t.Fatalf("full pipe: %v", err)
	}
	if w.Readiness(waiter.EventOut) != 0 {
		t.Fatalf("full pipe writable")
	}
	// Free 100 bytes: a 200-byte (≤ PIPE_BUF) write must not split.
	r.Read(ctx, seq(make([]byte, 100)))
	if _, err := w.Write(ctx, seq(make([]byte, 200))); err != unix.EAGAIN {
		t.Fatalf("atomic write split: %v", err)
	}
	// A larger-than-PIPE_BUF write may be partial.
	r.Read(ctx, seq(make([]byte, 8000)))
	if n, _ := w.Write(ctx, seq(make([]byte, 10000))); n != 8100 {
		t.Fatalf("partial write %d, want 8100", n)
	}
	// FIONREAD.
	io := &usermem.BytesIO{Bytes: make([]byte, 8)}
	var args arch.SyscallArguments
	args[1].Value = vfs.FIONREAD
	if _, err := r.Ioctl(ctx, bytesCopy{io}, args); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(io.Bytes); got != DefaultSize {
		t.Fatalf("FIONREAD %d", got)
	}
	// Shrinking below the data held is EBUSY; growing works.
	p := FromFD(w)
	if _, err := p.SetSize(ctx, 4096); err != unix.EBUSY {
		t.Fatalf("shrink: %v", err)
	}
	if n, err := p.SetSize(ctx, 100000); n != 131072 || err != nil {
		t.Fatalf("grow: %d %v", n, err)
	}
	user := context.WithValue(ctx, auth.CtxCredentials, auth.NewUser(1000, 1000, nil))
	if _, err := p.SetSize(user, 2<<20); err != unix.EPERM {
		t.Fatalf("grow past max unprivileged: %v", err)
	}
}

type bytesCopy struct{ io *usermem.BytesIO }

func (b bytesCopy) CopyInBytes(a hostarch.Addr, d []byte) (int, error)  { return b.io.CopyIn(a, d) }
func (b bytesCopy) CopyOutBytes(a hostarch.Addr, s []byte) (int, error) { return b.io.CopyOut(a, s) }

func TestNotifyAndEpoll(t *testing.T) {
	r, w := NewConnectedPipe(0)
	defer r.DecRef(ctx)
	defer w.DecRef(ctx)
	e, ch := waiter.NewChannelEntry(waiter.EventIn)
	r.EventRegister(e)
	defer r.EventUnregister(e)
	w.Write(ctx, seq([]byte("x")))
	select {
	case <-ch:
	default:
		t.Fatalf("reader not notified")
	}

	epfd := vfs.NewEpollInstance(0)
	defer epfd.DecRef(ctx)
	ep := vfs.AsEpoll(epfd)
	if err := ep.Ctl(epfd, unix.EPOLL_CTL_ADD, 3, r, vfs.EpollEvent{Events: unix.EPOLLIN | vfs.EpollET, Data: 42}); err != nil {
		t.Fatal(err)
	}
	evs := ep.ReadEvents(10)
	if len(evs) != 1 || evs[0].Data != 42 || evs[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("ET initial: %+v", evs)
	}
	if evs := ep.ReadEvents(10); len(evs) != 0 {
		t.Fatalf("ET reported twice without new data: %+v", evs)
	}
	w.Write(ctx, seq([]byte("y")))
	if evs := ep.ReadEvents(10); len(evs) != 1 {
		t.Fatalf("ET after new data: %+v", evs)
	}
	// Level-triggered reports while data remains, and stops once drained.
	if err := ep.Ctl(epfd, unix.EPOLL_CTL_MOD, 3, r, vfs.EpollEvent{Events: unix.EPOLLIN, Data: 7}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if evs := ep.ReadEvents(10); len(evs) != 1 || evs[0].Data != 7 {
			t.Fatalf("LT round %d: %+v", i, evs)
		}
	}
	r.Read(ctx, seq(make([]byte, 10)))
	if evs := ep.ReadEvents(10); len(evs) != 0 {
		t.Fatalf("LT after drain: %+v", evs)
	}
	// One-shot: reported once until re-armed.
	ep.Ctl(epfd, unix.EPOLL_CTL_MOD, 3, r, vfs.EpollEvent{Events: unix.EPOLLIN | vfs.EpollOneShot, Data: 9})
	w.Write(ctx, seq([]byte("z")))
	if evs := ep.ReadEvents(10); len(evs) != 1 {
		t.Fatalf("oneshot: %+v", evs)
	}
	w.Write(ctx, seq([]byte("z")))
	if evs := ep.ReadEvents(10); len(evs) != 0 {
		t.Fatalf("oneshot fired twice: %+v", evs)
	}
	if err := ep.Ctl(epfd, unix.EPOLL_CTL_ADD, 3, r, vfs.EpollEvent{Events: unix.EPOLLIN}); err != unix.EEXIST {
		t.Fatalf("double add: %v", err)
	}
	if err := ep.Ctl(epfd, unix.EPOLL_CTL_DEL, 3, r, vfs.EpollEvent{}); err != nil {
		t.Fatal(err)
	}
	if err := ep.Ctl(epfd, unix.EPOLL_CTL_DEL, 3, r, vfs.EpollEvent{}); err != unix.ENOENT {
		t.Fatalf("double del: %v", err)
	}
	// Writer side: EPOLLOUT; closing the last reference drops the item.
	r2, w2 := NewConnectedPipe(0)
	ep.Ctl(epfd, unix.EPOLL_CTL_ADD, 5, w2, vfs.EpollEvent{Events: unix.EPOLLOUT, Data: 5})
	if evs := ep.ReadEvents(10); len(evs) != 1 || evs[0].Events != unix.EPOLLOUT {
		t.Fatalf("EPOLLOUT: %+v", evs)
	}
	w2.DecRef(ctx)
	if evs := ep.ReadEvents(10); len(evs) != 0 {
		t.Fatalf("closed file still reported: %+v", evs)
	}
	r2.DecRef(ctx)
	_ = bytes.Equal
}
