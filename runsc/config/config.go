// Package config owns runsc's global flags: their names, defaults and
// validation, and the Config value every subcommand receives. A bad value
// is rejected while the command line is parsed, so no subcommand ever sees
// an unknown platform or network mode.
package config

import (
	"flag"
	"fmt"
	"strings"
)

// Config holds the global flags of runsc.
type Config struct {
	// RootDir is the state directory (one subdirectory per container).
	RootDir string
	// LogFile is where runsc's own log goes ("" is stderr).
	LogFile string
	// LogFormat is "text" or "json".
	LogFormat string
	// Debug turns on debug logging in runsc, the gofer and the sentry.
	Debug bool
	// DebugLogDir, when set, receives one log file per component and PID
	// (sentry, gofer); otherwise their debug output is discarded.
	DebugLogDir string
	// Platform is "ptrace", "systrap" or "kvm".
	Platform string
	// Strace logs every application syscall.
	Strace bool
	// Network is the network mode; only "none" works yet.
	Network string
	// Overlay is the root overlay medium: "memory", "none" or "self".
	Overlay string
	// SystemdCgroup is accepted for compatibility with callers that pass
	// it; Veil does not manage cgroups yet.
	SystemdCgroup bool
	// DebugNoSeccomp leaves the sentry without its seccomp filter, for
	// debugging while the sentry's host syscall set is still moving.
	DebugNoSeccomp bool
	// DebugSeccompLog makes seccomp violations logged instead of fatal, to
	// discover host syscalls missing from the allowlist.
	DebugSeccompLog bool
}

// Choices for the enumerated flags; the first entry is the default.
var (
	Platforms   = []string{"systrap", "ptrace", "kvm"}
	Networks    = []string{"none", "sandbox", "host"}
	Overlays    = []string{"memory", "none", "self"}
	LogFormats  = []string{"text", "json"}
	DefaultRoot = "/var/run/runsc"
)

// enumValue is a flag.Value that accepts only one of a fixed set of words,
// so flag parsing itself reports a bad value with the allowed ones.
type enumValue struct {
	p       *string
	choices []string
}

func (e *enumValue) String() string {
	if e == nil || e.p == nil {
		return ""
	}
	return *e.p
}

func (e *enumValue) Set(s string) error {
	for _, c := range e.choices {
		if s == c {
			*e.p = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(e.choices, "|"))
}

func enumVar(fs *flag.FlagSet, p *string, name string, choices []string, usage string) {
	*p = choices[0]
	fs.Var(&enumValue{p: p, choices: choices}, name, fmt.Sprintf("%s (%s)", usage, strings.Join(choices, "|")))
}

// RegisterFlags defines the global flags on fs, bound to a new Config.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.StringVar(&c.RootDir, "root", DefaultRoot, "directory holding container state")
	fs.StringVar(&c.LogFile, "log", "", "file for runsc's own log (default stderr)")
	enumVar(fs, &c.LogFormat, "log-format", LogFormats, "log format")
	fs.BoolVar(&c.Debug, "debug", false, "enable debug logging")
	fs.StringVar(&c.DebugLogDir, "debug-log", "", "directory for the sentry's and gofer's logs, one file per component and PID")
	enumVar(fs, &c.Platform, "platform", Platforms, "how application code is run")
	fs.BoolVar(&c.Strace, "strace", false, "log every application syscall")
	enumVar(fs, &c.Network, "network", Networks, "network mode")
	enumVar(fs, &c.Overlay, "overlay", Overlays, "medium of the writable overlay over the root")
	fs.BoolVar(&c.SystemdCgroup, "systemd-cgroup", false, "accepted for compatibility; ignored")
	fs.BoolVar(&c.DebugNoSeccomp, "debug-no-seccomp", false, "do not install the sentry's seccomp filter (debugging only)")
	fs.BoolVar(&c.DebugSeccompLog, "debug-seccomp-log", false, "log seccomp violations instead of killing the sentry (debugging only)")
	return c
}

// Validate checks combinations the flag parser cannot: modes that parse
// but are not implemented yet.
func (c *Config) Validate() error {
	switch c.Network {
	case "none":
	default:
		return fmt.Errorf("--network=%s: not supported yet (only none)", c.Network)
	}
	if c.RootDir == "" {
		return fmt.Errorf("--root must not be empty")
	}
	return nil
}

// Flags renders c as global flags, for re-executing runsc as the gofer or
// the sentry with the same settings.
func (c *Config) Flags() []string {
	f := []string{
		"--root=" + c.RootDir,
		"--log-format=" + c.LogFormat,
		"--platform=" + c.Platform,
		"--network=" + c.Network,
		"--overlay=" + c.Overlay,
	}
	if c.LogFile != "" {
		f = append(f, "--log="+c.LogFile)
	}
	if c.DebugLogDir != "" {
		f = append(f, "--debug-log="+c.DebugLogDir)
	}
	for _, b := range []struct {
		on   bool
		name string
	}{
		{c.Debug, "debug"},
		{c.Strace, "strace"},
		{c.SystemdCgroup, "systemd-cgroup"},
		{c.DebugNoSeccomp, "debug-no-seccomp"},
		{c.DebugSeccompLog, "debug-seccomp-log"},
	} {
		if b.on {
			f = append(f, "--"+b.name)
		}
	}
	return f
}
