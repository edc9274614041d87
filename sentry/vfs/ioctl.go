package vfs

// ioctl request numbers of x86-64 (asm-generic/ioctls.h) that more than
// one file type answers. golang.org/x/sys/unix lacks some of them.
const (
	TCGETS     = 0x5401
	TCSETS     = 0x5402
	TCSETSW    = 0x5403
	TCSETSF    = 0x5404
	TIOCSCTTY  = 0x540E
	TIOCGPGRP  = 0x540F
	TIOCSPGRP  = 0x5410
	TIOCOUTQ   = 0x5411
	TIOCGWINSZ = 0x5413
	TIOCSWINSZ = 0x5414
	FIONREAD   = 0x541B
	FIONBIO    = 0x5421
	TIOCNOTTY  = 0x5422
	TIOCGSID   = 0x5429
	TIOCGPTN   = 0x80045430
	FIONCLEX   = 0x5450
	FIOCLEX    = 0x5451
	FIOASYNC   = 0x5452
)
