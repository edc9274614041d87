package linux

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel"
)

// Dispatch is the kernel's syscall entry: look nr up and run its handler.
// A missing handler is ENOSYS, logged once with its number and name.
func Dispatch(t *kernel.Task, nr uintptr, args arch.SyscallArguments) (uintptr, error) {
	e := Lookup(nr)
	if e == nil || e.Fn == nil {
		if ReportMissing(nr) {
			t.Kernel().Log.Printf("unimplemented syscall %d (%s)", nr, Name(nr))
		}
		return 0, unix.ENOSYS
	}
	return e.Fn(t, args)
}

func init() {
	kernel.SyscallName = Name
}

// Small marshalling helpers shared by handlers.

func copyOutU32(t *kernel.Task, addr hostarch.Addr, v uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	_, err := t.CopyOutBytes(addr, b[:])
	return err
}

func copyOutU64(t *kernel.Task, addr hostarch.Addr, v uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	_, err := t.CopyOutBytes(addr, b[:])
	return err
}

func copyInU32(t *kernel.Task, addr hostarch.Addr) (uint32, error) {
	var b [4]byte
	if _, err := t.CopyInBytes(addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

func copyInU64(t *kernel.Task, addr hostarch.Addr) (uint64, error) {
	var b [8]byte
	if _, err := t.CopyInBytes(addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// copyOutLE writes a sequence of little-endian fields.
func copyOutLE(t *kernel.Task, addr hostarch.Addr, fields ...any) error {
	var b []byte
	for _, f := range fields {
		switch v := f.(type) {
		case uint64:
			b = binary.LittleEndian.AppendUint64(b, v)
		case int64:
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case int32:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case uint16:
			b = binary.LittleEndian.AppendUint16(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic("copyOutLE: unsupported field type")
		}
	}
	_, err := t.CopyOutBytes(addr, b)
	return err
}
