package devpts

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// ldiscCase feeds input to a fresh line discipline (after adjusting its
// settings) and checks what the replica reads and the master sees.
func TestLineDiscipline(t *testing.T) {
	for _, c := range []struct {
		name     string
		setup    func(*termios)
		input    string
		read     string // all complete input, as successive reads return it
		echo     string
		readable int
	}{
		{name: "line", input: "hi\n", read: "hi\n", echo: "hi\r\n"},
		{name: "partial", input: "abc", echo: "abc"},
		{name: "erase", input: "abx\x7fc\n", read: "abc\n", echo: "abx\b \bc\r\n"},
		{name: "erase ctl", input: "a\x01\x7f\n", read: "a\n", echo: "a^A\b \b\b \b\r\n"},
		{name: "kill", input: "junk\x15ok\n", read: "ok\n", echo: "junk\b \b\b \b\b \b\b \bok\r\n"},
		{name: "kill no echoke", setup: func(t *termios) { t.lflag &^= unix.ECHOKE }, input: "ab\x15c\n", read: "c\n", echo: "ab^U\r\nc\r\n"},
		{name: "werase", input: "one two  \x17x\n", read: "one x\n"},
		{name: "eof", input: "ab\x04", read: "ab", echo: "ab"},
		{name: "icrnl", input: "x\r", read: "x\n", echo: "x\r\n"},
		{name: "igncr", setup: func(t *termios) { t.iflag |= unix.IGNCR }, input: "x\r\n", read: "x\n", echo: "x\r\n"},
		{name: "lnext", input: "\x16\x03\n", read: "\x03\n", echo: "^\b^C\r\n"},
		{name: "echoctl off", setup: func(t *termios) { t.lflag &^= unix.ECHOCTL }, input: "\x01\n", read: "\x01\n", echo: "\x01\r\n"},
		{name: "no echo", setup: func(t *termios) { t.lflag &^= unix.ECHO }, input: "pw\n", read: "pw\n"},
		{name: "echonl", setup: func(t *termios) { t.lflag = t.lflag&^unix.ECHO | unix.ECHONL }, input: "pw\n", read: "pw\n", echo: "\r\n"},
		{name: "tab erase", input: "ab\t\x7f\n", read: "ab\n", echo: "ab\t\b\b\b\b\b\b\r\n"},
		{name: "echoprt", setup: func(t *termios) { t.lflag = t.lflag&^unix.ECHOE | unix.ECHOPRT }, input: "abc\x7f\x7fd\n", read: "ad\n", echo: "abc\\cb/d\r\n"},
		{name: "raw", setup: func(t *termios) {
			t.lflag &^= unix.ICANON | unix.ECHO | unix.ISIG
			t.iflag &^= unix.ICRNL | unix.IXON
		}, input: "a\rb\x03", read: "a\rb\x03"},
		{name: "istrip", setup: func(t *termios) { t.iflag |= unix.ISTRIP; t.lflag &^= unix.ECHO }, input: "\xe1\n", read: "a\n"},
		{name: "intr flushes", input: "abc\x03x\n", read: "x\n", echo: "abc^Cx\r\n"},
		{name: "noflsh", setup: func(t *termios) { t.lflag |= unix.NOFLSH }, input: "ab\x03c\n", read: "abc\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLdisc()
			if c.setup != nil {
				nt := l.t
				c.setup(&nt)
				l.setTermios(nt)
			}
			n, _ := l.receive([]byte(c.input))
			if n != len(c.input) {
				t.Fatalf("took %d of %d", n, len(c.input))
			}
			var got []byte
			for l.readable() > 0 {
				if l.canonical() {
					data, consumed := l.peekLine(1 << 20)
					got = append(got, data...)
					l.consumeCanon(consumed)
				} else {
					got = append(got, l.in...)
					l.consume(len(l.in))
				}
			}
			if string(got) != c.read {
				t.Errorf("read %q, want %q", got, c.read)
			}
			if c.echo != "" && string(l.out) != c.echo {
				t.Errorf("echo %q, want %q", l.out, c.echo)
			}
		})
	}
}

func TestSignals(t *testing.T) {
	l := newLdisc()
	_, sigs := l.receive([]byte("a\x03b\x1cc\x1a"))
	want := []unix.Signal{unix.SIGINT, unix.SIGQUIT, unix.SIGTSTP}
	if len(sigs) != len(want) {
		t.Fatalf("signals %v, want %v", sigs, want)
	}
	for i := range want {
		if sigs[i] != want[i] {
			t.Errorf("signal %d: %v, want %v", i, sigs[i], want[i])
		}
	}
	if nt := l.t; true {
		nt.lflag &^= unix.ISIG
		l.setTermios(nt)
	}
	if _, sigs := l.receive([]byte{3}); len(sigs) != 0 {
		t.Errorf("signal without ISIG: %v", sigs)
	}
}

func TestOutputProcessing(t *testing.T) {
	l := newLdisc()
	l.write([]byte("a\nb\tc"))
	if string(l.out) != "a\r\nb\tc" {
		t.Errorf("out %q", l.out)
	}
	l.out = nil
	nt := l.t
	nt.oflag |= unix.XTABS | unix.OLCUC
	l.setTermios(nt)
	l.column = 0
	l.write([]byte("ab\tc"))
	if string(l.out) != "AB      C" {
		t.Errorf("XTABS/OLCUC out %q", l.out)
	}
}

func TestCanonicalOverflow(t *testing.T) {
	l := newLdisc()
	big := make([]byte, 2*inputSize)
	for i := range big {
		big[i] = 'x'
	}
	if n, _ := l.receive(big); n != len(big) {
		t.Fatalf("an over-long line took %d bytes", n)
	}
	l.receive([]byte("\n"))
	data, _ := l.peekLine(1 << 20)
	if len(data) != inputSize || data[len(data)-1] != '\n' {
		t.Errorf("over-long line reads as %d bytes ending %q", len(data), data[len(data)-1])
	}
	// With a complete line pending, a full buffer takes no more input.
	l.receive([]byte("yy"))
	if n, _ := l.receive(big); n != 0 {
		t.Errorf("full buffer took %d", n)
	}
}

func TestTermiosEncoding(t *testing.T) {
	tt := defaultTermios()
	b := make([]byte, termios2Size)
	tt.encode(b)
	var back termios
	back.decode(b)
	if back != tt {
		t.Errorf("round trip %+v != %+v", back, tt)
	}
	if binary.LittleEndian.Uint32(b[12:]) != tt.lflag || b[17+unix.VINTR] != 3 {
		t.Errorf("layout: %x", b)
	}
}

// bytesIO is a CopyIO over a byte slice at address 0.
type bytesIO []byte

func (b bytesIO) CopyInBytes(a hostarch.Addr, dst []byte) (int, error) {
	if int(a)+len(dst) > len(b) {
		return 0, unix.EFAULT
	}
	return copy(dst, b[a:]), nil
}

func (b bytesIO) CopyOutBytes(a hostarch.Addr, src []byte) (int, error) {
	if int(a)+len(src) > len(b) {
		return 0, unix.EFAULT
	}
	return copy(b[a:], src), nil
}

func ioctl(ctx context.Context, fd *vfs.FileDescription, req uint32, arg []byte) error {
	var args arch.SyscallArguments
	args[1].Value = uintptr(req)
	_, err := fd.Ioctl(ctx, bytesIO(arg), args)
	return err
}

// mountDevpts mounts a devpts as the root of a new VFS.
func mountDevpts(t *testing.T) (*vfs.VirtualFilesystem, vfs.VirtualDentry) {
	ctx := context.Background()
	v := vfs.New()
	fs, err := v.NewFilesystem(ctx, New(DefaultOptions()))
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.MountRoot(ctx, fs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v, root
}

func open(v *vfs.VirtualFilesystem, root vfs.VirtualDentry, path string) (*vfs.FileDescription, error) {
	return v.OpenAt(context.Background(), &vfs.PathOperation{Root: root, Start: root, Path: path, FollowFinalSymlink: true},
		vfs.OpenOptions{Flags: unix.O_RDWR | unix.O_NOCTTY})
}

func TestPair(t *testing.T) {
	ctx := context.Background()
	v, root := mountDevpts(t)
	m, err := open(v, root, "ptmx")
	if err != nil {
		t.Fatal(err)
	}
	n := make([]byte, 4)
	if err := ioctl(ctx, m, unix.TIOCGPTN, n); err != nil || binary.LittleEndian.Uint32(n) != 0 {
		t.Fatalf("TIOCGPTN %v %v", n, err)
	}
	if _, err := open(v, root, "0"); err != unix.EIO {
		t.Errorf("open of a locked replica: %v", err)
	}
	if err := ioctl(ctx, m, unix.TIOCSPTLCK, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	s, err := open(v, root, "0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(ctx, usermem.BytesSequence([]byte("hello\n"))); err != nil {
		t.Fatal(err)
	}
	if s.Readiness(waiter.EventIn) == 0 {
		t.Error("replica not readable after a line")
	}
	buf := make([]byte, 64)
	if k, err := s.Read(ctx, usermem.BytesSequence(buf)); err != nil || string(buf[:k]) != "hello\n" {
		t.Errorf("replica read %q %v", buf[:k], err)
	}
	if _, err := s.Read(ctx, usermem.BytesSequence(buf)); err != unix.EAGAIN {
		t.Errorf("empty replica read: %v", err)
	}
	if k, err := m.Read(ctx, usermem.BytesSequence(buf)); err != nil || string(buf[:k]) != "hello\r\n" {
		t.Errorf("echo %q %v", buf[:k], err)
	}
	// Window size through the master, seen by the replica.
	ws := []byte{24, 0, 80, 0, 0, 0, 0, 0}
	if err := ioctl(ctx, m, unix.TIOCSWINSZ, ws); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8)
	if err := ioctl(ctx, s, unix.TIOCGWINSZ, got); err != nil || got[0] != 24 || got[2] != 80 {
		t.Errorf("winsize %v %v", got, err)
	}
	if err := ioctl(ctx, s, unix.TIOCGPTN, n); err != unix.ENOTTY {
		t.Errorf("TIOCGPTN on the replica: %v", err)
	}
	// Replica closed: master reads EIO.
	s.DecRef(ctx)
	if _, err := m.Read(ctx, usermem.BytesSequence(buf)); err != unix.EIO {
		t.Errorf("master read after the replica closed: %v", err)
	}
	if m.Readiness(waiter.EventIn)&waiter.EventHUp == 0 {
		t.Error("no POLLHUP on the master")
	}
	s, _ = open(v, root, "0")
	m.DecRef(ctx)
	if k, err := s.Read(ctx, usermem.BytesSequence(buf)); k != 0 || err != nil {
		t.Errorf("hung-up read %d %v", k, err)
	}
	if _, err := s.Write(ctx, usermem.BytesSequence([]byte("x"))); err != unix.EIO {
		t.Errorf("hung-up write: %v", err)
	}
	s.DecRef(ctx)
	if _, err := open(v, root, "0"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("pts/0 after the master closed: %v", err)
	}
}
