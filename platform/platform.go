// Package platform owns the contract for running application code: a
// Context runs one application thread until its next syscall, fault or
// signal, and an AddressSpace maps ranges of the sentry's memory file into
// the application's address space. Implementations live in subpackages
// (ptrace, systrap, kvm); nothing here knows about tasks, files or the
// meaning of a syscall.
package platform

import (
	"errors"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

var (
	// ErrContextSignal: the application got a fault or a signal; Switch
	// returns its siginfo and, for a fault, the access that faulted (as far
	// as the platform can tell).
	ErrContextSignal = errors.New("platform: application got a signal")
	// ErrContextInterrupt: Interrupt was called.
	ErrContextInterrupt = errors.New("platform: interrupted")
	// ErrContextDead: the stub running the application died (killed from
	// outside, out of memory); the sandbox must end.
	ErrContextDead = errors.New("platform: stub died")
)

// Platform is one way of running application code.
type Platform interface {
	Name() string
	// NewAddressSpace returns an empty address space.
	NewAddressSpace() (AddressSpace, error)
	// NewContext returns a context for one application thread. Its
	// methods other than Interrupt are called from one goroutine only.
	NewContext() Context
	// MaxUserAddress is the end of the range applications may map;
	// anything above belongs to the platform.
	MaxUserAddress() hostarch.Addr
}

// AddressSpace is an application address space. Its methods may be called
// from any goroutine.
type AddressSpace interface {
	// MapFile maps [fileOffset, fileOffset+length) of the memory file at
	// addr with access at, replacing whatever was there.
	MapFile(addr hostarch.Addr, fileOffset, length uint64, at hostarch.AccessType) error
	// Unmap removes any mapping in [addr, addr+length).
	Unmap(addr hostarch.Addr, length uint64)
	// Release frees the address space; it must not be used afterwards.
	Release()
}

// Context runs one application thread.
type Context interface {
	// Switch runs ac in as until a syscall (nil error; ac.Regs describe the
	// syscall stop), a signal or fault (ErrContextSignal), or an interrupt.
	Switch(as AddressSpace, ac *arch.Context) (*arch.SignalInfo, hostarch.AccessType, error)
	// PullFullState makes ac.FP valid.
	PullFullState(as AddressSpace, ac *arch.Context) error
	// Interrupt makes a current or the next Switch return
	// ErrContextInterrupt. It may be called from any goroutine.
	Interrupt()
	// Release frees the context.
	Release()
}

// CodeMemory is how a platform that rewrites application code (to make a
// hot syscall site enter it without a trap) reads and writes that code.
// The memory manager owning an address space provides it.
type CodeMemory interface {
	// ReadCode copies application memory at addr into dst, as the
	// application could read it.
	ReadCode(addr hostarch.Addr, dst []byte) error
	// PatchCode replaces the bytes at addr, which must still be old,
	// with new (as long, within one page), where addr lies in a private,
	// executable, non-writable file mapping. The page is copied first
	// where it is the file's or shared copy-on-write (the file never
	// changes), and the platform's mapping of it is dropped, so the next
	// fetch maps the new bytes.
	PatchCode(addr hostarch.Addr, old, new []byte) error
}

// CodePatcher is implemented by address spaces whose platform rewrites
// application code; the owner of the address space gives it its
// CodeMemory.
type CodePatcher interface {
	SetCodeMemory(CodeMemory)
}
