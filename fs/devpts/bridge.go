package devpts

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/linuxerr"
	"github.com/veil-sandbox/veil/sentry/usermem"
	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// winsizePoll is how often a bridge looks at the host terminal's window
// size: the host delivers SIGWINCH to the host terminal's foreground
// group, which the sentry is not, so polling is the one way to learn of
// a resize without owning the host session.
const winsizePoll = 200 * time.Millisecond

// NewHostBridge makes a new pair in the devpts mounted at pts and
// connects its master to hostFD, a host terminal (the replica of a host
// pty pair) that the bridge takes over: it is made non-blocking and raw
// (the sandbox's line discipline does the editing, echo and signals) and
// closed when the bridge ends. It returns the in-sandbox replica, opened
// through pts (so that it is /dev/pts/N to the application) with
// O_RDWR|O_NOCTTY. The caller owns that reference.
//
// Bytes read from hostFD are written to the master, and what the master
// reads is written to hostFD. The bridge ends when every replica of the
// pair has closed (hostFD is then closed: the client sees its master hang
// up) or when hostFD reports end of file or an error (the client closed
// its master: the in-sandbox master closes, which hangs the session up).
func NewHostBridge(ctx context.Context, v *vfs.VirtualFilesystem, pts vfs.VirtualDentry, hostFD int) (*vfs.FileDescription, error) {
	fs, ok := pts.Mount.Filesystem().Impl().(*Filesystem)
	if !ok || pts != pts.Mount.Root() {
		return nil, fmt.Errorf("host bridge: not the root of a devpts mount: %w", unix.ENODEV)
	}
	tio, err := unix.IoctlGetTermios(hostFD, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("host bridge: host FD %d is not a terminal: %w", hostFD, err)
	}
	makeRaw(tio)
	if err := unix.IoctlSetTermios(hostFD, unix.TCSETS, tio); err != nil {
		return nil, fmt.Errorf("host bridge: raw mode: %w", err)
	}
	if err := unix.SetNonblock(hostFD, true); err != nil {
		return nil, fmt.Errorf("host bridge: %w", err)
	}
	t, err := fs.newTerminal(ctx)
	if err != nil {
		return nil, err
	}
	master := vfs.NewFileDescription(t.openMaster(), unix.O_RDWR, vfs.VirtualDentry{})
	t.mu.Lock()
	t.locked = false
	t.mu.Unlock()
	replica, err := v.OpenAt(ctx, &vfs.PathOperation{Root: pts, Start: pts, Path: strconv.FormatUint(uint64(t.index), 10)},
		vfs.OpenOptions{Flags: unix.O_RDWR | unix.O_NOCTTY})
	if err != nil {
		master.DecRef(ctx)
		return nil, fmt.Errorf("host bridge: opening the replica: %w", err)
	}
	b := &bridge{ctx: ctx, t: t, master: master, host: os.NewFile(uintptr(hostFD), "host terminal"), done: make(chan struct{})}
	b.copyWindowSize()
	b.wg.Add(3)
	go b.toSandbox()
	go b.toHost()
	go b.watchWindowSize()
	go func() {
		b.wg.Wait()
		master.DecRef(ctx)
	}()
	return replica, nil
}

// makeRaw is cfmakeraw(3).
func makeRaw(t *unix.Termios) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
}

// bridge pumps bytes between a host terminal and an in-sandbox master.
type bridge struct {
	ctx    context.Context
	t      *Terminal
	master *vfs.FileDescription
	host   *os.File
	// done is closed when the bridge ends; wg counts its goroutines, the
	// last of which releases the master.
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// stop ends the bridge: the host FD closes (which unblocks its reader)
// and the goroutines return.
func (b *bridge) stop() {
	b.stopOnce.Do(func() {
		close(b.done)
		b.host.Close()
	})
}

// wait blocks until the master has one of events, or the bridge ends
// (false).
func (b *bridge) wait(ch chan struct{}, events waiter.EventMask) bool {
	if b.master.Readiness(events|waiter.EventHUp) != 0 {
		return true
	}
	select {
	case <-ch:
		return true
	case <-b.done:
		return false
	}
}

// toSandbox copies the host terminal's input into the master.
func (b *bridge) toSandbox() {
	defer b.wg.Done()
	defer b.stop()
	e, ch := waiter.NewChannelEntry(waiter.EventOut)
	b.master.EventRegister(e)
	defer b.master.EventUnregister(e)
	buf := make([]byte, 4096)
	for {
		n, err := b.host.Read(buf)
		b.copyWindowSize()
		for data := buf[:n]; len(data) > 0; {
			w, werr := b.master.Write(b.ctx, usermem.BytesSequence(data))
			data = data[w:]
			if werr == unix.EAGAIN {
				if !b.wait(ch, waiter.EventOut) {
					return
				}
				continue
			}
			if werr != nil {
				return
			}
		}
		if err != nil {
			// End of file or EIO: the client's master is gone.
			return
		}
	}
}

// toHost copies the master's output to the host terminal until every
// replica has closed.
func (b *bridge) toHost() {
	defer b.wg.Done()
	defer b.stop()
	e, ch := waiter.NewChannelEntry(waiter.EventIn)
	b.master.EventRegister(e)
	defer b.master.EventUnregister(e)
	buf := make([]byte, 4096)
	for {
		n, err := b.master.Read(b.ctx, usermem.BytesSequence(buf))
		if err == unix.EAGAIN {
			if !b.wait(ch, waiter.EventIn) {
				return
			}
			continue
		}
		if err != nil {
			return // EIO: no replica is left
		}
		if _, err := b.host.Write(buf[:n]); err != nil {
			return
		}
	}
}

// watchWindowSize copies the host's window size into the pair when it
// changes.
func (b *bridge) watchWindowSize() {
	defer b.wg.Done()
	tick := time.NewTicker(winsizePoll)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			b.copyWindowSize()
		case <-b.done:
			return
		}
	}
}

// copyWindowSize reads the host terminal's window size and sets it in
// the pair (which sends SIGWINCH on a change).
func (b *bridge) copyWindowSize() {
	var ws [winsizeSize]byte
	rc, err := b.host.SyscallConn()
	if err != nil {
		return
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, unix.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws[0])))
		if e != 0 {
			ioErr = linuxerr.FromHost(e)
		}
	}); err != nil || ioErr != nil {
		return
	}
	b.t.SetWindowSize(ws)
}
