package devpts

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// Sizes of the ioctl ABI (asm-generic/termbits.h on x86-64).
const (
	termiosSize  = 36 // struct termios: TCGETS, TCSETS*
	termios2Size = 44 // struct termios2: TCGETS2, TCSETS2*
	winsizeSize  = 8
)

// Buffer sizes. inputSize is N_TTY_BUF_SIZE, the replica's read buffer;
// outputSize bounds what the replica may write before the master reads.
const (
	inputSize  = 4096
	outputSize = 65536
)

// termios is struct termios2 without its padding.
type termios struct {
	iflag, oflag, cflag, lflag uint32
	line                       uint8
	cc                         [19]uint8
	ispeed, ospeed             uint32
}

// defaultTermios is what a new pseudo-terminal starts with (Linux's
// tty_std_termios with the pty driver's c_cflag).
func defaultTermios() termios {
	t := termios{
		iflag:  unix.ICRNL | unix.IXON,
		oflag:  unix.OPOST | unix.ONLCR,
		cflag:  unix.B38400 | unix.CS8 | unix.CREAD,
		lflag:  unix.ISIG | unix.ICANON | unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHOCTL | unix.ECHOKE | unix.IEXTEN,
		ispeed: 38400,
		ospeed: 38400,
	}
	copy(t.cc[:], []uint8{
		unix.VINTR: 003, unix.VQUIT: 034, unix.VERASE: 0177, unix.VKILL: 025, unix.VEOF: 004,
		unix.VTIME: 0, unix.VMIN: 1, unix.VSTART: 021, unix.VSTOP: 023, unix.VSUSP: 032,
		unix.VREPRINT: 022, unix.VDISCARD: 017, unix.VWERASE: 027, unix.VLNEXT: 026,
	})
	return t
}

// encode writes t as struct termios (36 bytes) or termios2 (44).
func (t *termios) encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], t.iflag)
	binary.LittleEndian.PutUint32(b[4:], t.oflag)
	binary.LittleEndian.PutUint32(b[8:], t.cflag)
	binary.LittleEndian.PutUint32(b[12:], t.lflag)
	b[16] = t.line
	copy(b[17:36], t.cc[:])
	if len(b) >= termios2Size {
		binary.LittleEndian.PutUint32(b[36:], t.ispeed)
		binary.LittleEndian.PutUint32(b[40:], t.ospeed)
	}
}

// decode reads struct termios or termios2; the speeds of a plain termios
// come from its CBAUD bits.
func (t *termios) decode(b []byte) {
	t.iflag = binary.LittleEndian.Uint32(b[0:])
	t.oflag = binary.LittleEndian.Uint32(b[4:])
	t.cflag = binary.LittleEndian.Uint32(b[8:])
	t.lflag = binary.LittleEndian.Uint32(b[12:])
	t.line = b[16]
	copy(t.cc[:], b[17:36])
	if len(b) >= termios2Size && t.cflag&unix.CBAUD == unix.BOTHER {
		t.ospeed = binary.LittleEndian.Uint32(b[40:])
	} else {
		t.ospeed = baudRate(t.cflag & unix.CBAUD)
	}
	in := (t.cflag >> 16) & unix.CBAUD // CIBAUD
	switch {
	case len(b) >= termios2Size && in == unix.BOTHER:
		t.ispeed = binary.LittleEndian.Uint32(b[36:])
	case in == 0:
		t.ispeed = t.ospeed
	default:
		t.ispeed = baudRate(in)
	}
}

// baudRate maps a CBAUD value to bits per second.
func baudRate(c uint32) uint32 {
	rates := map[uint32]uint32{
		unix.B0: 0, unix.B50: 50, unix.B75: 75, unix.B110: 110, unix.B134: 134, unix.B150: 150,
		unix.B200: 200, unix.B300: 300, unix.B600: 600, unix.B1200: 1200, unix.B1800: 1800,
		unix.B2400: 2400, unix.B4800: 4800, unix.B9600: 9600, unix.B19200: 19200, unix.B38400: 38400,
		unix.B57600: 57600, unix.B115200: 115200, unix.B230400: 230400, unix.B460800: 460800,
		unix.B500000: 500000, unix.B576000: 576000, unix.B921600: 921600, unix.B1000000: 1000000,
		unix.B1152000: 1152000, unix.B1500000: 1500000, unix.B2000000: 2000000,
		unix.B2500000: 2500000, unix.B3000000: 3000000, unix.B3500000: 3500000, unix.B4000000: 4000000,
	}
	return rates[c]
}

func (t *termios) i(f uint32) bool { return t.iflag&f != 0 }
func (t *termios) o(f uint32) bool { return t.oflag&f != 0 }
func (t *termios) l(f uint32) bool { return t.lflag&f != 0 }

// is reports whether c is the (enabled) control character cc[idx]; a
// control character set to 0 is disabled (_POSIX_VDISABLE).
func (t *termios) is(c byte, idx int) bool { return c != 0 && t.cc[idx] == c }

// Kinds of bytes in the input buffer.
const (
	kData    = iota
	kLineEnd // a byte that ends a canonical line ('\n', VEOL, VEOL2) and is read
	kEOF     // VEOF: ends a line, read as nothing
)

// ldisc is the line discipline of one pair, as Linux's n_tty: input
// written to the master is edited and echoed here before the replica
// reads it; the replica's output is post-processed on its way to the
// master. Its owner's mutex protects it; it never blocks and sends no
// signals itself (it returns them).
type ldisc struct {
	t termios

	// in is the replica's read buffer, kind the kind of each byte.
	// In canonical mode in[:canonHead] are complete lines and the rest
	// the line being edited; otherwise everything is readable.
	in        []byte
	kind      []uint8
	canonHead int
	// lastInput is when input last arrived (VTIME's inter-byte timer).
	lastInput time.Time
	// lnext: the next byte is literal (VLNEXT); erasing: inside an
	// ECHOPRT "\...\/" erase.
	lnext, erasing bool
	// column is the output column; canonColumn where the line being
	// edited started (for erasing tabs).
	column, canonColumn int

	// out is what the master reads.
	out []byte
	// stopped: output suspended (VSTOP, TCOOFF); tcoStopped: by TCOOFF,
	// which VSTART does not undo.
	stopped, tcoStopped bool
}

func newLdisc() *ldisc { return &ldisc{t: defaultTermios()} }

func (l *ldisc) canonical() bool { return l.t.l(unix.ICANON) }

// raw reports whether input needs no processing at all.
func (l *ldisc) raw() bool {
	return !l.t.i(unix.ISTRIP|unix.IUCLC|unix.IGNCR|unix.ICRNL|unix.INLCR|unix.IXON|unix.PARMRK) &&
		!l.t.l(unix.ICANON|unix.ISIG|unix.ECHO)
}

// special reports whether c needs more than queueing and echoing
// (n_tty's char_map).
func (l *ldisc) special(c byte) bool {
	t := &l.t
	if c == 0 {
		return false
	}
	if c == '\r' && t.i(unix.IGNCR|unix.ICRNL) || c == '\n' && t.i(unix.INLCR) {
		return true
	}
	if t.l(unix.ICANON) {
		if t.is(c, unix.VERASE) || t.is(c, unix.VKILL) || t.is(c, unix.VEOF) || c == '\n' || t.is(c, unix.VEOL) {
			return true
		}
		if t.l(unix.IEXTEN) && (t.is(c, unix.VWERASE) || t.is(c, unix.VLNEXT) || t.is(c, unix.VEOL2) ||
			t.l(unix.ECHO) && t.is(c, unix.VREPRINT)) {
			return true
		}
	}
	if t.i(unix.IXON) && (t.is(c, unix.VSTART) || t.is(c, unix.VSTOP)) {
		return true
	}
	return t.l(unix.ISIG) && (t.is(c, unix.VINTR) || t.is(c, unix.VQUIT) || t.is(c, unix.VSUSP))
}

// inputRoom reports whether another input byte can be taken now. In
// canonical mode a line that fills the buffer keeps taking bytes (those
// that do not fit are dropped) so that it can still be ended or erased.
func (l *ldisc) inputRoom() bool {
	if !l.canonical() {
		return len(l.in) < inputSize
	}
	return len(l.in) < inputSize-1 || l.canonHead == 0
}

// put queues one input byte. The last slot is kept for a line end.
func (l *ldisc) put(c byte, kind uint8) {
	limit := inputSize
	if kind == kData && l.canonical() {
		limit = inputSize - 1
	}
	if len(l.in) < limit {
		l.in = append(l.in, c)
		l.kind = append(l.kind, kind)
	}
}

// receive runs bytes written to the master through the line discipline
// and returns how many it took (it stops when the replica's buffer is
// full) and the signals the foreground group must get.
func (l *ldisc) receive(b []byte) (n int, sigs []unix.Signal) {
	for n < len(b) && l.inputRoom() {
		c := b[n]
		n++
		if l.raw() {
			l.put(c, kData)
			continue
		}
		if l.t.i(unix.ISTRIP) {
			c &= 0x7f
		}
		if l.t.i(unix.IUCLC) && l.t.l(unix.IEXTEN) && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if l.lnext {
			l.lnext = false
			l.receiveOrdinary(c)
			continue
		}
		if l.special(c) {
			if sig, ok := l.receiveSpecial(c); ok {
				sigs = append(sigs, sig)
			}
		} else {
			l.receiveOrdinary(c)
		}
	}
	if n > 0 {
		l.lastInput = time.Now()
	}
	return n, sigs
}

func (l *ldisc) receiveOrdinary(c byte) {
	if l.stopped && !l.tcoStopped && l.t.i(unix.IXON) && l.t.i(unix.IXANY) {
		l.stopped = false
	}
	if l.t.l(unix.ECHO) {
		l.finishErasing()
		if l.canonHead == len(l.in) {
			l.canonColumn = l.column
		}
		l.echoChar(c)
	}
	if c == 0377 && l.t.i(unix.PARMRK) {
		l.put(c, kData)
	}
	l.put(c, kData)
}

// receiveSpecial handles a byte special() picked out; it returns the
// signal to send for an ISIG character.
func (l *ldisc) receiveSpecial(c byte) (unix.Signal, bool) {
	t := &l.t
	if t.i(unix.IXON) {
		if t.is(c, unix.VSTART) {
			if !l.tcoStopped {
				l.stopped = false
			}
			return 0, false
		}
		if t.is(c, unix.VSTOP) {
			l.stopped = true
			return 0, false
		}
	}
	if t.l(unix.ISIG) {
		for _, s := range []struct {
			idx int
			sig unix.Signal
		}{{unix.VINTR, unix.SIGINT}, {unix.VQUIT, unix.SIGQUIT}, {unix.VSUSP, unix.SIGTSTP}} {
			if t.is(c, s.idx) {
				l.signalChar(c)
				return s.sig, true
			}
		}
	}
	if l.stopped && !l.tcoStopped && t.i(unix.IXON) && t.i(unix.IXANY) {
		l.stopped = false
	}
	if c == '\r' {
		if t.i(unix.IGNCR) {
			return 0, false
		}
		if t.i(unix.ICRNL) {
			c = '\n'
		}
	} else if c == '\n' && t.i(unix.INLCR) {
		c = '\r'
	}
	if t.l(unix.ICANON) && l.receiveCanon(c) {
		return 0, false
	}
	if t.l(unix.ECHO) {
		l.finishErasing()
		if c == '\n' {
			l.echoRaw('\n')
		} else {
			if l.canonHead == len(l.in) {
				l.canonColumn = l.column
			}
			l.echoChar(c)
		}
	}
	if c == 0377 && t.i(unix.PARMRK) {
		l.put(c, kData)
	}
	l.put(c, kData)
	return 0, false
}

// signalChar is the rest of an ISIG character: pending input is
// discarded (unless NOFLSH), output restarts, and the character echoes.
func (l *ldisc) signalChar(c byte) {
	if !l.t.l(unix.NOFLSH) {
		l.flushInput()
	}
	if l.t.i(unix.IXON) && !l.tcoStopped {
		l.stopped = false
	}
	if l.t.l(unix.ECHO) {
		l.echoChar(c)
	}
}

// receiveCanon handles the editing and line-ending characters of
// canonical mode; false means c is an ordinary byte after all.
func (l *ldisc) receiveCanon(c byte) bool {
	t := &l.t
	switch {
	case t.is(c, unix.VERASE) || t.is(c, unix.VKILL) || t.is(c, unix.VWERASE) && t.l(unix.IEXTEN):
		l.erase(c)
	case t.is(c, unix.VLNEXT) && t.l(unix.IEXTEN):
		l.lnext = true
		if t.l(unix.ECHO) {
			l.finishErasing()
			if t.l(unix.ECHOCTL) {
				l.echoRaw('^')
				l.echoRaw('\b')
			}
		}
	case t.is(c, unix.VREPRINT) && t.l(unix.ECHO) && t.l(unix.IEXTEN):
		l.finishErasing()
		l.echoChar(c)
		l.echoRaw('\n')
		for _, b := range l.in[l.canonHead:] {
			l.echoChar(b)
		}
	case c == '\n':
		if t.l(unix.ECHO) || t.l(unix.ECHONL) {
			l.echoRaw('\n')
		}
		l.endLine(c, kLineEnd)
	case t.is(c, unix.VEOF):
		l.endLine(0, kEOF)
	case t.is(c, unix.VEOL) || t.is(c, unix.VEOL2) && t.l(unix.IEXTEN):
		if t.l(unix.ECHO) {
			if l.canonHead == len(l.in) {
				l.canonColumn = l.column
			}
			l.echoChar(c)
		}
		if c == 0377 && t.i(unix.PARMRK) {
			l.put(c, kData)
		}
		l.endLine(c, kLineEnd)
	default:
		return false
	}
	return true
}

// endLine completes the line being edited with its terminator.
func (l *ldisc) endLine(c byte, kind uint8) {
	if len(l.in) >= inputSize {
		// Make room: the terminator replaces the last byte.
		l.in, l.kind = l.in[:len(l.in)-1], l.kind[:len(l.kind)-1]
	}
	l.put(c, kind)
	l.canonHead = len(l.in)
}

func isCntrl(c byte) bool { return c < 0x20 || c == 0x7f }

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// continuation reports a UTF-8 continuation byte under IUTF8, which
// erasing treats as part of the character before it.
func (l *ldisc) continuation(c byte) bool { return l.t.i(unix.IUTF8) && c&0xc0 == 0x80 }

// erase carries out VERASE, VWERASE and VKILL on the line being edited,
// echoing as ECHOE, ECHOK, ECHOKE, ECHOPRT and ECHOCTL say.
func (l *ldisc) erase(c byte) {
	t := &l.t
	if len(l.in) == l.canonHead {
		return
	}
	const (
		eraseChar = iota
		eraseWord
		eraseLine
	)
	var kill int
	switch {
	case t.is(c, unix.VERASE):
		kill = eraseChar
	case t.is(c, unix.VWERASE):
		kill = eraseWord
	default:
		if !t.l(unix.ECHO) {
			l.truncate(l.canonHead)
			return
		}
		if !t.l(unix.ECHOK) || !t.l(unix.ECHOKE) || !t.l(unix.ECHOE) {
			l.truncate(l.canonHead)
			l.finishErasing()
			l.echoChar(c)
			if t.l(unix.ECHOK) {
				l.echoRaw('\n')
			}
			return
		}
		kill = eraseLine
	}
	alnums := 0
	for len(l.in) > l.canonHead {
		head := len(l.in)
		var ch byte
		for {
			head--
			ch = l.in[head]
			if !l.continuation(ch) || head == l.canonHead {
				break
			}
		}
		if l.continuation(ch) {
			break // never erase half a character
		}
		if kill == eraseWord {
			if isAlnum(ch) || ch == '_' {
				alnums++
			} else if alnums > 0 {
				break
			}
		}
		erased := l.in[head:]
		l.truncate(head)
		if t.l(unix.ECHO) {
			switch {
			case t.l(unix.ECHOPRT):
				if !l.erasing {
					l.echoRaw('\\')
					l.erasing = true
				}
				l.echoChar(ch)
				for _, b := range erased[1:] {
					l.echoRaw(b)
					if l.column > 0 {
						l.column--
					}
				}
			case kill == eraseChar && !t.l(unix.ECHOE):
				l.echoChar(t.cc[unix.VERASE])
			case ch == '\t':
				l.eraseTab()
			default:
				if isCntrl(ch) && t.l(unix.ECHOCTL) {
					l.backspace()
				}
				if !isCntrl(ch) || t.l(unix.ECHOCTL) {
					l.backspace()
				}
			}
		}
		if kill == eraseChar {
			break
		}
	}
	if len(l.in) == l.canonHead && t.l(unix.ECHO) {
		l.finishErasing()
	}
}

func (l *ldisc) truncate(n int) { l.in, l.kind = l.in[:n], l.kind[:n] }

// backspace echoes "\b \b".
func (l *ldisc) backspace() {
	l.echoRaw('\b')
	l.echoRaw(' ')
	l.echoRaw('\b')
}

// eraseTab moves the cursor back over a tab: to the tab stop after the
// previous tab, or after where the line started.
func (l *ldisc) eraseTab() {
	cols, afterTab := 0, false
	for i := len(l.in) - 1; i >= l.canonHead; i-- {
		c := l.in[i]
		if c == '\t' {
			afterTab = true
			break
		} else if isCntrl(c) {
			if l.t.l(unix.ECHOCTL) {
				cols += 2
			}
		} else if !l.continuation(c) {
			cols++
		}
	}
	if !afterTab {
		cols += l.canonColumn
	}
	for n := 8 - cols&7; n > 0; n-- {
		l.echoRawNoPost('\b')
		if l.column > 0 {
			l.column--
		}
	}
}

func (l *ldisc) finishErasing() {
	if l.erasing {
		l.echoRaw('/')
		l.erasing = false
	}
}

// echoChar echoes c, a control character as ^X under ECHOCTL.
func (l *ldisc) echoChar(c byte) {
	if l.t.l(unix.ECHOCTL) && isCntrl(c) && c != '\t' {
		l.out = append(l.out, '^', c^0100)
		l.column += 2
		return
	}
	l.echoRaw(c)
}

// echoRaw echoes c through output processing.
func (l *ldisc) echoRaw(c byte) {
	if l.t.o(unix.OPOST) {
		l.outputChar(c)
		return
	}
	l.out = append(l.out, c)
}

func (l *ldisc) echoRawNoPost(c byte) { l.out = append(l.out, c) }

// outputChar appends c to the master's queue with OPOST processing and
// reports how many bytes that took.
func (l *ldisc) outputChar(c byte) int {
	t := &l.t
	switch c {
	case '\n':
		if t.o(unix.ONLRET) {
			l.column = 0
		}
		if t.o(unix.ONLCR) {
			l.column, l.canonColumn = 0, 0
			l.out = append(l.out, '\r', '\n')
			return 2
		}
		l.canonColumn = l.column
	case '\r':
		if t.o(unix.ONOCR) && l.column == 0 {
			return 0
		}
		if t.o(unix.OCRNL) {
			c = '\n'
			if t.o(unix.ONLRET) {
				l.column, l.canonColumn = 0, 0
			}
			break
		}
		l.column, l.canonColumn = 0, 0
	case '\t':
		spaces := 8 - l.column&7
		l.column += spaces
		if t.oflag&unix.TABDLY == unix.XTABS {
			for i := 0; i < spaces; i++ {
				l.out = append(l.out, ' ')
			}
			return spaces
		}
	case '\b':
		if l.column > 0 {
			l.column--
		}
	default:
		if !isCntrl(c) {
			if t.o(unix.OLCUC) && c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			if !l.continuation(c) {
				l.column++
			}
		}
	}
	l.out = append(l.out, c)
	return 1
}

// outputRoom is how many more bytes the master's queue takes.
func (l *ldisc) outputRoom() int { return outputSize - len(l.out) }

// write takes the replica's output: as much of b as fits in the master's
// queue, processed if OPOST is set.
func (l *ldisc) write(b []byte) int {
	if !l.t.o(unix.OPOST) {
		n := min(len(b), l.outputRoom())
		l.out = append(l.out, b[:n]...)
		return n
	}
	n := 0
	for ; n < len(b); n++ {
		// A byte may expand to a tab's 8 spaces at most.
		if l.outputRoom() < 8 {
			break
		}
		l.outputChar(b[n])
	}
	return n
}

// readable is how many input bytes a read may take now: whole lines in
// canonical mode, everything otherwise.
func (l *ldisc) readable() int {
	if l.canonical() {
		return l.canonHead
	}
	return len(l.in)
}

// pollReadable reports input readiness for poll: non-canonical mode with
// VMIN>0 and no VTIME waits for VMIN bytes, as Linux does.
func (l *ldisc) pollReadable() bool {
	if l.canonical() {
		return l.canonHead > 0
	}
	amt := 1
	if vmin := int(l.t.cc[unix.VMIN]); vmin > 0 && l.t.cc[unix.VTIME] == 0 {
		amt = vmin
	}
	return len(l.in) >= amt
}

// inq is FIONREAD on the replica: complete lines (without their VEOF
// markers) in canonical mode, else everything buffered.
func (l *ldisc) inq() int {
	if !l.canonical() {
		return len(l.in)
	}
	n := l.canonHead
	for _, k := range l.kind[:l.canonHead] {
		if k == kEOF {
			n--
		}
	}
	return n
}

func (l *ldisc) consume(n int) {
	l.in, l.kind = l.in[n:], l.kind[n:]
	if len(l.in) == 0 {
		l.in, l.kind = nil, nil
	}
}

func (l *ldisc) flushInput() {
	l.in, l.kind = nil, nil
	l.canonHead = 0
	l.lnext, l.erasing = false, false
}

// setTermios installs new settings, applying the pty driver's fixed
// c_cflag bits and the mode change rules of n_tty: leaving canonical
// mode makes everything readable; entering it with input pending makes
// that input one line.
func (l *ldisc) setTermios(nt termios) {
	nt.cflag = nt.cflag&^(unix.CSIZE|unix.PARENB) | unix.CS8 | unix.CREAD
	old := l.t
	l.t = nt
	if (old.lflag^nt.lflag)&unix.ICANON != 0 {
		for i := range l.kind {
			l.kind[i] = kData
		}
		if !l.canonical() || len(l.in) == 0 {
			l.canonHead = 0
		} else {
			l.kind[len(l.kind)-1] = kLineEnd
			l.canonHead = len(l.in)
		}
		l.erasing, l.lnext = false, false
	}
	if !nt.i(unix.IXON) && old.i(unix.IXON) && !l.tcoStopped {
		l.stopped = false
	}
}

// peekLine returns the first canonical line as a read of at most max
// bytes takes it: the data (up to and including a terminator found
// within max bytes, a VEOF marker excluded) and how many buffer bytes
// taking all of it consumes.
func (l *ldisc) peekLine(max int) (data []byte, consumed int) {
	n := min(max, l.canonHead)
	for i := 0; i < n; i++ {
		switch l.kind[i] {
		case kLineEnd:
			return l.in[:i+1], i + 1
		case kEOF:
			return l.in[:i], i + 1
		}
	}
	return l.in[:n], n
}

// consumeCanon removes n bytes of complete lines.
func (l *ldisc) consumeCanon(n int) {
	l.consume(n)
	l.canonHead -= n
}
