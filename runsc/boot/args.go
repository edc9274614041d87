// Package boot owns `runsc boot`: turning a confined process into the
// sentry. It wires the memory file, the platform, the kernel, the mount
// namespace (gofer-served root, tmpfs /tmp, /proc, /dev), the init
// process and its stdio (host FDs, or a terminal of the sandbox's devpts
// bridged to a host one: terminal.go), then waits for the sandbox to end.
package boot

// Args is everything the CLI hands the sentry. The CLI starts `runsc boot`
// in its new namespaces with these as flags and inherited FDs.
type Args struct {
	// Argv, Envv and Cwd of the init process.
	Argv []string
	Envv []string
	Cwd  string
	// UID, GID and extra groups of the init process.
	UID, GID  uint32
	ExtraGIDs []uint32
	// Hostname is the sandbox's UTS name.
	Hostname string
	// GoferFDs are connected gofer sockets, one per mount; GoferFDs[0]
	// serves the root.
	GoferFDs []int
	// Mounts lists the container mounts beyond the root, in order; each
	// gofer-served one names its index in GoferFDs.
	Mounts []Mount
	// MaskedPaths are hidden (linux.maskedPaths) and ReadonlyPaths made
	// read-only (linux.readonlyPaths) once everything is mounted.
	MaskedPaths, ReadonlyPaths []string
	// RootReadOnly makes the root filesystem read-only.
	RootReadOnly bool
	// Overlay is "memory", "none" or "self" (root overlay medium).
	Overlay string
	// StdioFDs are the host FDs that become the init process's 0, 1, 2.
	StdioFDs [3]int
	// PreservedFDs become the init process's FDs 3, 4, ...
	PreservedFDs []int
	// Terminal: the StdioFDs are one host terminal, which the init
	// process reaches through a sandbox pseudo-terminal (installTerminal)
	// that is its controlling terminal and /dev/console.
	Terminal bool
	// Platform is "ptrace", "systrap" or "kvm".
	Platform string
	// Strace logs every syscall with arguments and result.
	Strace bool
	// Debug turns on debug logging (to the log the CLI set up).
	Debug bool
	// Umask, Rlimits, Caps (nil: root's all, others none) and NoNewPrivs
	// of the init process.
	Umask      *uint32
	Rlimits    []Rlimit
	Caps       *ProcessCaps
	NoNewPrivs bool
	// Container is set for a sandbox made by runsc create (control.go).
	Container *ContainerArgs
}

// Mount is one mount of the container.
type Mount struct {
	Destination string
	Type        string // "bind" (gofer), "tmpfs", "proc", "sysfs", "devpts", ...
	Source      string
	Options     []string
	GoferIndex  int // for bind mounts: index into Args.GoferFDs
	ReadOnly    bool
}
