package container

import (
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-sandbox/veil/runsc/boot"
	"github.com/veil-sandbox/veil/runsc/control"
	"github.com/veil-sandbox/veil/runsc/sandbox"
	"github.com/veil-sandbox/veil/runsc/specutils"
)

// validID is the container ID syntax other runtimes accept.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// ValidateID checks a container ID; it becomes a directory name under
// --root, so it must not be able to name anything else.
func ValidateID(id string) error {
	if len(id) > 1024 || !validID.MatchString(id) {
		return fmt.Errorf("invalid container ID %q (want letters, digits and _.+-, not starting with a symbol)", id)
	}
	return nil
}

// capNames are the capability names of include/uapi/linux/capability.h,
// by number.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapNames lists every capability name Veil knows (for runsc features).
func CapNames() []string { return append([]string(nil), capNames...) }

func capSet(field string, names []string) (uint64, error) {
	var set uint64
	for _, n := range names {
		found := false
		for i, c := range capNames {
			if strings.EqualFold(n, c) || strings.EqualFold("CAP_"+n, c) {
				set |= 1 << uint(i)
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("process.capabilities.%s: unknown capability %q", field, n)
		}
	}
	return set, nil
}

// rlimitNumbers are the RLIMIT_* numbers (asm-generic/resource.h).
var rlimitNumbers = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
	"RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
	"RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

// Credentials etc. of a process, as both boot.Args and control.Process
// carry them.
type procCreds struct {
	caps    *boot.ProcessCaps
	rlimits []boot.Rlimit
}

func convertProcess(p *specs.Process) (*procCreds, error) {
	out := &procCreds{}
	if c := p.Capabilities; c != nil {
		var pc boot.ProcessCaps
		var err error
		for _, f := range []struct {
			name string
			src  []string
			dst  *uint64
		}{
			{"bounding", c.Bounding, &pc.Bounding}, {"effective", c.Effective, &pc.Effective},
			{"permitted", c.Permitted, &pc.Permitted}, {"inheritable", c.Inheritable, &pc.Inheritable},
			{"ambient", c.Ambient, &pc.Ambient},
		} {
			if *f.dst, err = capSet(f.name, f.src); err != nil {
				return nil, err
			}
		}
		out.caps = &pc
	}
	for i, r := range p.Rlimits {
		n, ok := rlimitNumbers[r.Type]
		if !ok {
			return nil, fmt.Errorf("process.rlimits[%d]: unknown type %q", i, r.Type)
		}
		if r.Soft > r.Hard {
			return nil, fmt.Errorf("process.rlimits[%d] (%s): soft limit %d above hard limit %d", i, r.Type, r.Soft, r.Hard)
		}
		out.rlimits = append(out.rlimits, boot.Rlimit{Resource: n, Soft: r.Soft, Hard: r.Hard})
	}
	if p.IOPriority != nil {
		return nil, fmt.Errorf("process.ioPriority is not supported")
	}
	if p.Scheduler != nil {
		return nil, fmt.Errorf("process.scheduler is not supported")
	}
	if p.ExecCPUAffinity != nil {
		return nil, fmt.Errorf("process.execCPUAffinity is not supported")
	}
	return out, nil
}

// checkLinux refuses linux fields Veil cannot honour. Host security
// modules (linux.seccomp, process.apparmorProfile, selinuxLabel) and
// sysctls do not apply: the application's system calls never reach the
// host kernel, whose filters and profiles would guard nothing; the sentry
// runs under its own seccomp allowlist.
func checkLinux(spec *specs.Spec) error {
	l := spec.Linux
	if l == nil {
		return nil
	}
	if len(l.UIDMappings)+len(l.GIDMappings) > 0 {
		return fmt.Errorf("linux.uidMappings/gidMappings (user namespaces) are not supported")
	}
	if l.IntelRdt != nil {
		return fmt.Errorf("linux.intelRdt is not supported")
	}
	if l.Personality != nil {
		return fmt.Errorf("linux.personality is not supported")
	}
	if l.Seccomp != nil {
		slog.Debug("linux.seccomp: the application's syscalls never reach the host; its filter is not installed")
	}
	return nil
}

// netNSPath is the network namespace the spec asks to join, if any.
func netNSPath(spec *specs.Spec) string {
	if spec.Linux == nil {
		return ""
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return ns.Path
		}
	}
	return ""
}

// SandboxOptions turns a validated spec into the sandbox's options, with
// stdio as the init process's.
func SandboxOptions(spec *specs.Spec, id string, stdio [3]*os.File) (*sandbox.Options, error) {
	if err := checkLinux(spec); err != nil {
		return nil, err
	}
	p := spec.Process
	exe, err := specutils.LookPath(spec.Root.Path, p.Args[0], p.Env, p.Cwd)
	if err != nil {
		return nil, fmt.Errorf("process.args[0]: %w", err)
	}
	pc, err := convertProcess(p)
	if err != nil {
		return nil, err
	}
	return &sandbox.Options{
		ID:      id,
		RootDir: spec.Root.Path,
		Stdio:   stdio,
		Args: boot.Args{
			Argv:          append([]string{exe}, p.Args[1:]...),
			Envv:          p.Env,
			Cwd:           p.Cwd,
			UID:           p.User.UID,
			GID:           p.User.GID,
			ExtraGIDs:     p.User.AdditionalGids,
			Umask:         p.User.Umask,
			Rlimits:       pc.rlimits,
			Caps:          pc.caps,
			NoNewPrivs:    p.NoNewPrivileges,
			Hostname:      spec.Hostname,
			RootReadOnly:  spec.Root.Readonly,
			Mounts:        specutils.Mounts(spec),
			MaskedPaths:   specutils.MaskedPaths(spec),
			ReadonlyPaths: specutils.ReadonlyPaths(spec),
		},
	}, nil
}

// ControlProcess turns a process spec into an exec request's process,
// resolving args[0] in rootfs.
func ControlProcess(p *specs.Process, rootfs string) (*control.Process, error) {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return nil, fmt.Errorf("process.args is empty")
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	exe, err := specutils.LookPath(rootfs, p.Args[0], p.Env, p.Cwd)
	if err != nil {
		return nil, err
	}
	pc, err := convertProcess(p)
	if err != nil {
		return nil, err
	}
	cp := &control.Process{
		Argv:       append([]string{exe}, p.Args[1:]...),
		Envv:       p.Env,
		Cwd:        p.Cwd,
		Uid:        p.User.UID,
		Gid:        p.User.GID,
		ExtraGids:  p.User.AdditionalGids,
		NoNewPrivs: p.NoNewPrivileges,
	}
	if p.User.Umask != nil {
		cp.HasUmask, cp.Umask = true, *p.User.Umask
	}
	if c := pc.caps; c != nil {
		cp.HasCaps = true
		cp.CapBounding, cp.CapEffective, cp.CapPermitted, cp.CapInheritable, cp.CapAmbient = c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient
	}
	for _, r := range pc.rlimits {
		cp.Rlimits = append(cp.Rlimits, &control.Rlimit{Resource: int32(r.Resource), Soft: r.Soft, Hard: r.Hard})
	}
	return cp, nil
}
