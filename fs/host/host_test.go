package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

var ctx = context.Background()

func TestHostPipeNonBlockingAndNotify(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, err := NewFD(p[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.DecRef(ctx)
	w, err := NewFD(p[1])
	if err != nil {
		t.Fatal(err)
	}
	defer w.DecRef(ctx)
	if !r.IsStream() || !r.IsReadable() || r.IsWritable() {
		t.Fatalf("read end: stream=%v r=%v w=%v", r.IsStream(), r.IsReadable(), r.IsWritable())
	}
	buf := make([]byte, 10)
	// Empty: EAGAIN rather than blocking, and the host FD stays blocking.
	if _, err := r.Read(ctx, usermem.BytesSequence(buf)); err != unix.EAGAIN {
		t.Fatalf("empty read: %v", err)
	}
	if fl, _ := unix.FcntlInt(uintptr(p[0]), unix.F_GETFL, 0); fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("host FD made non-blocking")
	}
	e, ch := waiter.NewChannelEntry(waiter.EventIn)
	r.EventRegister(e)
	defer r.EventUnregister(e)
	if _, err := w.Write(ctx, usermem.BytesSequence([]byte("hi"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification from the host notifier")
	}
	if r.Readiness(waiter.EventIn)&waiter.EventIn == 0 {
		t.Fatal("not readable")
	}
	if n, err := r.Read(ctx, usermem.BytesSequence(buf)); n != 2 || string(buf[:2]) != "hi" || err != nil {
		t.Fatalf("read %d %q %v", n, buf[:n], err)
	}
	st, err := r.Stat(ctx)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Fatalf("stat mode %o %v", st.Mode, err)
	}
	if _, err := r.Seek(ctx, 0, unix.SEEK_SET); err != unix.ESPIPE {
		t.Fatalf("seek on pipe: %v", err)
	}
}

func TestHostRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, []byte("0123456789"), 0644); err != nil {
		t.Fatal(err)
	}
	hfd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Seek(hfd, 4, unix.SEEK_SET)
	f, err := NewFD(hfd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef(ctx)
	buf := make([]byte, 3)
	if n, _ := f.Read(ctx, usermem.BytesSequence(buf)); n != 3 || string(buf) != "456" {
		t.Fatalf("read continues at host offset: %q", buf[:n])
	}
	if _, err := f.Write(ctx, usermem.BytesSequence([]byte("X"))); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.PRead(ctx, usermem.BytesSequence(buf), 0); n != 3 || string(buf) != "012" {
		t.Fatalf("pread %q", buf[:n])
	}
	got, _ := os.ReadFile(path)
	if string(got) != "0123456X89" {
		t.Fatalf("file %q", got)
	}
	st, _ := f.Stat(ctx)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 10 {
		t.Fatalf("stat %+v", st)
	}
	if off, err := f.Seek(ctx, 0, unix.SEEK_END); off != 10 || err != nil {
		t.Fatalf("SEEK_END %d %v", off, err)
	}
}

func TestHostTTYIoctls(t *testing.T) {
	ptmx, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no ptmx: %v", err)
	}
	defer unix.Close(ptmx)
	if err := unix.IoctlSetPointerInt(ptmx, unix.TIOCSPTLCK, 0); err != nil {
		t.Skip(err)
	}
	n, err := unix.IoctlGetInt(ptmx, unix.TIOCGPTN)
	if err != nil {
		t.Skip(err)
	}
	pts, err := unix.Open("/dev/pts/"+itoa(n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skip(err)
	}
	unix.IoctlSetWinsize(pts, unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 99})
	f, err := NewFD(pts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef(ctx)
	mem := &memIO{b: make([]byte, 64)}
	if _, err := f.Ioctl(ctx, mem, ioctlArgs(0x5413, 0)); err != nil {
		t.Fatalf("TIOCGWINSZ: %v", err)
	}
	if mem.b[0] != 33 || mem.b[2] != 99 {
		t.Fatalf("winsize bytes %v", mem.b[:8])
	}
	if _, err := f.Ioctl(ctx, mem, ioctlArgs(0x5401, 0)); err != nil {
		t.Fatalf("TCGETS: %v", err)
	}
	st, _ := f.Stat(ctx)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Fatalf("tty mode %o", st.Mode)
	}
}

func TestSameDescription(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	a, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(a)
	dup, _ := unix.Dup(a)
	defer unix.Close(dup)
	other, _ := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
	defer unix.Close(other)
	if !SameDescription(a, dup) {
		t.Error("a dup is not the same description")
	}
	if SameDescription(a, other) {
		t.Error("a second open of the file is the same description")
	}
	if off, _ := unix.Seek(a, 0, unix.SEEK_CUR); off != 0 {
		t.Errorf("offset left at %d", off)
	}
	var pp [2]int
	unix.Pipe2(pp[:], unix.O_CLOEXEC)
	defer unix.Close(pp[0])
	defer unix.Close(pp[1])
	if SameDescription(pp[1], pp[1]) {
		t.Error("a pipe has an offset to share")
	}
}
