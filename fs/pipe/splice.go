package pipe

import (
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/vfs"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// Splicing (splice, tee, vmsplice) moves bytes between a pipe's buffer
// and another file, or between two pipes, without a trip through the
// application. Like Read and Write these never block: an empty or full
// pipe is EAGAIN and the syscall layer waits.

// End returns the pipe behind fd and which ends fd holds, or nil.
func End(fd *vfs.FileDescription) (p *Pipe, reader, writer bool) {
	if pf, ok := fd.Impl().(*pipeFD); ok {
		return pf.p, pf.reader, pf.writer
	}
	return nil, false, false
}

// ReadInto hands fn up to n buffered bytes; fn returns how many it
// consumed, which leave the pipe. With nothing buffered it is (0, nil)
// when no writer is left (end of file), else EAGAIN. fn runs under the
// pipe's lock and must not touch the pipe.
func (p *Pipe) ReadInto(n int64, fn func([]byte) (int64, error)) (int64, error) {
	p.mu.Lock()
	if len(p.buf) == 0 {
		w := p.writers
		p.mu.Unlock()
		if w == 0 {
			return 0, nil
		}
		return 0, unix.EAGAIN
	}
	took, err := fn(p.buf[:min(int64(len(p.buf)), n)])
	p.buf = p.buf[took:]
	if len(p.buf) == 0 {
		p.buf = nil
	}
	p.mu.Unlock()
	if took > 0 {
		p.q.Notify(waiter.EventOut)
	}
	return took, err
}

// WriteFrom offers fn up to n bytes of the pipe's free space to fill; fn
// returns how many it filled. EPIPE without readers (the caller raises
// SIGPIPE), EAGAIN when full. fn runs under the pipe's lock and must not
// touch the pipe.
func (p *Pipe) WriteFrom(n int64, fn func([]byte) (int64, error)) (int64, error) {
	p.mu.Lock()
	if p.readers == 0 {
		p.mu.Unlock()
		return 0, unix.EPIPE
	}
	avail := int64(p.max - len(p.buf))
	if avail == 0 {
		p.mu.Unlock()
		return 0, unix.EAGAIN
	}
	k := min(avail, n)
	old := len(p.buf)
	p.buf = append(p.buf, make([]byte, k)...)
	filled, err := fn(p.buf[old:])
	p.buf = p.buf[:old+int(filled)]
	p.mu.Unlock()
	if filled > 0 {
		p.q.Notify(waiter.EventIn)
	}
	return filled, err
}

// lockPair locks two distinct pipes in a fixed order (by inode number),
// so that transfers in opposite directions cannot deadlock.
func lockPair(a, b *Pipe) {
	if a.ino < b.ino {
		a.mu.Lock()
		b.mu.Lock()
	} else {
		b.mu.Lock()
		a.mu.Lock()
	}
}

// Transfer moves up to n bytes from src to dst (splice between pipes);
// with consume false the bytes stay in src (tee). EINVAL if src is dst.
func Transfer(src, dst *Pipe, n int64, consume bool) (int64, error) {
	if src == dst {
		return 0, unix.EINVAL
	}
	lockPair(src, dst)
	var k int64
	var err error
	switch {
	case dst.readers == 0:
		err = unix.EPIPE
	case len(src.buf) == 0:
		if src.writers > 0 {
			err = unix.EAGAIN
		}
	case dst.max-len(dst.buf) == 0:
		err = unix.EAGAIN
	default:
		k = min(n, int64(len(src.buf)), int64(dst.max-len(dst.buf)))
		dst.buf = append(dst.buf, src.buf[:k]...)
		if consume {
			src.buf = src.buf[k:]
			if len(src.buf) == 0 {
				src.buf = nil
			}
		}
	}
	src.mu.Unlock()
	dst.mu.Unlock()
	if k > 0 {
		dst.q.Notify(waiter.EventIn)
		if consume {
			src.q.Notify(waiter.EventOut)
		}
	}
	return k, err
}
