package devpts

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// hostPair opens a host pseudo-terminal pair: the master as a client
// (a terminal emulator, a container runtime's console) would hold it,
// and the replica's FD for the bridge.
func hostPair(t *testing.T) (*os.File, int) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no host pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := unix.Open("/dev/pts/"+strconv.FormatUint(uint64(n), 10), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// readHost reads from the host master until want has arrived or 5 s pass.
func readHost(t *testing.T, m *os.File, want string) {
	t.Helper()
	m.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 256)
	for !bytes.Contains(got, []byte(want)) {
		n, err := m.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("host master read %q, want %q: %v", got, want, err)
		}
	}
}

// readReplica reads from an in-sandbox description, waiting for input.
func readReplica(t *testing.T, f *vfs.FileDescription, n int) []byte {
	t.Helper()
	e, ch := waiter.NewChannelEntry(waiter.EventIn)
	f.EventRegister(e)
	defer f.EventUnregister(e)
	buf := make([]byte, n)
	for {
		k, err := f.Read(context.Background(), usermem.BytesSequence(buf))
		if err == unix.EAGAIN {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatal("timed out reading the replica")
			}
			continue
		}
		if err != nil {
			t.Fatalf("replica read: %v", err)
		}
		return buf[:k]
	}
}

func TestHostBridge(t *testing.T) {
	ctx := context.Background()
	v, root := mountDevpts(t)
	hm, hs := hostPair(t)
	defer hm.Close()
	ws := &unix.Winsize{Row: 30, Col: 100}
	if err := unix.IoctlSetWinsize(int(hm.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		t.Fatal(err)
	}
	replica, err := NewHostBridge(ctx, v, root, hs)
	if err != nil {
		t.Fatal(err)
	}

	// The host side is raw now: the sandbox's line discipline edits.
	tio, err := unix.IoctlGetTermios(hs, unix.TCGETS)
	if err == nil && tio.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("host terminal not raw: lflag %#x", tio.Lflag)
	}
	// The replica is a pts of the devpts it was made in.
	st, err := replica.Stat(ctx)
	if err != nil || st.RdevMajor != replicaMajor {
		t.Errorf("replica stat %+v %v", st, err)
	}
	got := make([]byte, 8)
	if err := ioctl(ctx, replica, unix.TIOCGWINSZ, got); err != nil || got[0] != 30 || got[2] != 100 {
		t.Errorf("initial window size %v %v", got, err)
	}

	// Typing on the client: edited and echoed by the sentry.
	if _, err := hm.Write([]byte("helo\x7flo\r")); err != nil {
		t.Fatal(err)
	}
	if line := readReplica(t, replica, 64); string(line) != "hello\n" {
		t.Errorf("replica read %q", line)
	}
	readHost(t, hm, "helo\b \blo\r\n")

	// Output with ONLCR.
	if _, err := replica.Write(ctx, usermem.BytesSequence([]byte("out\n"))); err != nil {
		t.Fatal(err)
	}
	readHost(t, hm, "out\r\n")

	// A resize of the client's terminal reaches the pair.
	ws.Row, ws.Col = 50, 132
	if err := unix.IoctlSetWinsize(int(hm.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ioctl(ctx, replica, unix.TIOCGWINSZ, got)
		if got[0] == 50 && got[2] == 132 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("window size not propagated: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Large output arrives whole and in order.
	big := bytes.Repeat([]byte("0123456789abcdef"), 16384)
	go func() {
		for data := big; len(data) > 0; {
			n, err := replica.Write(ctx, usermem.BytesSequence(data))
			if err == unix.EAGAIN {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				return
			}
			data = data[n:]
		}
	}()
	hm.SetReadDeadline(time.Now().Add(10 * time.Second))
	var recv []byte
	buf := make([]byte, 65536)
	for len(recv) < len(big) {
		n, err := hm.Read(buf)
		recv = append(recv, buf[:n]...)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(recv), err)
		}
	}
	if !bytes.Equal(recv, big) {
		t.Error("bulk output corrupted")
	}

	// The application closes its terminal: the client sees a hang-up.
	replica.DecRef(ctx)
	hm.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err := hm.Read(buf)
		if err == nil {
			continue
		}
		if os.IsTimeout(err) {
			t.Fatal("host master not hung up after the replica closed")
		}
		break
	}
}

func TestHostBridgeClientHangup(t *testing.T) {
	ctx := context.Background()
	v, root := mountDevpts(t)
	hm, hs := hostPair(t)
	replica, err := NewHostBridge(ctx, v, root, hs)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.DecRef(ctx)
	hm.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := replica.Write(ctx, usermem.BytesSequence([]byte("x")))
		if err == unix.EIO {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not hung up after the client closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, err := replica.Read(ctx, usermem.BytesSequence(make([]byte, 4))); n != 0 || err != nil {
		t.Errorf("hung-up read %d %v", n, err)
	}
}

func TestHostBridgeRejectsNonTerminal(t *testing.T) {
	v, root := mountDevpts(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := NewHostBridge(context.Background(), v, root, p[0]); err == nil {
		t.Error("a pipe was accepted as a host terminal")
	}
}
