// Package specutils owns reading and validating OCI bundles for runsc: it
// loads config.json, rejects what Veil cannot honour yet with an error that
// names the field, and turns the spec's process and mounts into the pieces
// of boot.Args. It also resolves executables inside a root directory
// without ever leaving it.
package specutils

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-sandbox/veil/runsc/boot"
)

// ReadSpec loads bundle/config.json and validates it. The returned spec's
// Root.Path is absolute (relative paths are taken from the bundle).
func ReadSpec(bundle string) (*specs.Spec, error) {
	if bundle == "" {
		return nil, errors.New("bundle directory is empty")
	}
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", bundle, err)
	}
	path := filepath.Join(abs, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle %q has no config.json", bundle)
		}
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	spec, err := ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !filepath.IsAbs(spec.Root.Path) {
		spec.Root.Path = filepath.Join(abs, spec.Root.Path)
	}
	fi, err := os.Stat(spec.Root.Path)
	if err != nil {
		return nil, fmt.Errorf("root.path %q: %w", spec.Root.Path, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root.path %q is not a directory", spec.Root.Path)
	}
	return spec, nil
}

// ParseSpec decodes and validates a config.json without looking at the
// host file system.
func ParseSpec(data []byte) (*specs.Spec, error) {
	var spec specs.Spec
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("malformed config.json: %w", err)
	}
	if err := Validate(&spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

// Mount types Veil mounts itself in the sentry, and those it accepts but
// does not provide yet (runc's default spec carries them, and refusing them
// would refuse almost every bundle).
var (
	sentryMountTypes  = map[string]bool{"tmpfs": true, "proc": true, "sysfs": true, "devpts": true}
	ignoredMountTypes = map[string]bool{"mqueue": true, "cgroup": true, "cgroup2": true}
)

// Validate checks the fields runsc run uses and rejects those it cannot
// honour yet. Each error names the offending field.
func Validate(spec *specs.Spec) error {
	if spec.Version == "" {
		return errors.New("ociVersion is missing")
	}
	if !strings.HasPrefix(spec.Version, "1.") {
		return fmt.Errorf("ociVersion %q is not supported (want 1.x)", spec.Version)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return errors.New("root.path is missing")
	}
	p := spec.Process
	if p == nil {
		return errors.New("process is missing")
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return errors.New("process.args is empty")
	}
	if p.CommandLine != "" {
		return errors.New("process.commandLine is Windows-only and not supported")
	}
	if p.Cwd == "" {
		return errors.New("process.cwd is missing")
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd %q is not absolute", p.Cwd)
	}
	for _, e := range p.Env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("process.env entry %q is not KEY=VALUE", e)
		}
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return errors.New("process.consoleSize is set but process.terminal is false")
	}
	if spec.Hooks != nil && (len(spec.Hooks.Prestart)+len(spec.Hooks.CreateRuntime)+
		len(spec.Hooks.CreateContainer)+len(spec.Hooks.StartContainer)+
		len(spec.Hooks.Poststart)+len(spec.Hooks.Poststop) > 0) {
		return errors.New("hooks are not supported yet")
	}
	if spec.Linux != nil {
		// The sandbox always gets namespaces of its own; joining a
		// host's existing one would need the sentry to run inside it.
		for _, ns := range spec.Linux.Namespaces {
			if ns.Path != "" {
				return fmt.Errorf("linux.namespaces: joining an existing %s namespace (%s) is not supported yet", ns.Type, ns.Path)
			}
		}
	}
	for i, m := range spec.Mounts {
		if m.Destination == "" || !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mounts[%d]: destination %q is not an absolute path", i, m.Destination)
		}
		if isBind(m) {
			return fmt.Errorf("mounts[%d] (%s): bind mounts are not supported yet", i, m.Destination)
		}
		if !sentryMountTypes[m.Type] && !ignoredMountTypes[m.Type] {
			return fmt.Errorf("mounts[%d] (%s): mount type %q is not supported", i, m.Destination, m.Type)
		}
	}
	return nil
}

func isBind(m specs.Mount) bool {
	if m.Type == "bind" || m.Type == "rbind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// Mounts returns the spec's mounts as the sentry takes them, leaving out
// the ones Veil ignores for now (mqueue, cgroup).
func Mounts(spec *specs.Spec) []boot.Mount {
	var out []boot.Mount
	for _, m := range spec.Mounts {
		if ignoredMountTypes[m.Type] {
			continue
		}
		bm := boot.Mount{
			Destination: filepath.Clean(m.Destination),
			Type:        m.Type,
			Source:      m.Source,
		}
		for _, o := range m.Options {
			if o == "ro" {
				bm.ReadOnly = true
			}
			bm.Options = append(bm.Options, o)
		}
		out = append(out, bm)
	}
	return out
}

// IgnoredMounts lists the destinations Mounts leaves out, for a debug log.
func IgnoredMounts(spec *specs.Spec) []string {
	var out []string
	for _, m := range spec.Mounts {
		if ignoredMountTypes[m.Type] {
			out = append(out, m.Destination+" ("+m.Type+")")
		}
	}
	return out
}

// Env returns the value of key in env (KEY=VALUE entries; the last wins,
// as with getenv over a duplicated environment built by appending).
func Env(env []string, key string) (string, bool) {
	val, found := "", false
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}
