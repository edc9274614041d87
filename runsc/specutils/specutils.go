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

// sentryMountTypes are the mount types the sentry provides; bind mounts
// are served by the gofer; cgroup mounts show sysfs's read-only view of
// the sandbox's limits. Others are refused with an error naming them
// rather than left out, which would give the container an empty
// directory where it expects a filesystem.
var sentryMountTypes = map[string]bool{"tmpfs": true, "proc": true, "sysfs": true, "devpts": true, "mqueue": true, "cgroup": true, "cgroup2": true}

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
	if h := spec.Hooks; h != nil {
		for name, hs := range map[string][]specs.Hook{"prestart": h.Prestart, "createRuntime": h.CreateRuntime,
			"createContainer": h.CreateContainer, "startContainer": h.StartContainer,
			"poststart": h.Poststart, "poststop": h.Poststop} {
			for i, hk := range hs {
				if !filepath.IsAbs(hk.Path) {
					return fmt.Errorf("hooks.%s[%d].path %q is not absolute", name, i, hk.Path)
				}
				if hk.Timeout != nil && *hk.Timeout <= 0 {
					return fmt.Errorf("hooks.%s[%d].timeout %d is not positive", name, i, *hk.Timeout)
				}
			}
		}
	}
	if spec.Linux != nil {
		// The sandbox always gets namespaces of its own; joining a
		// host's existing one would need the sentry to run inside it.
		for name, ps := range map[string][]string{"maskedPaths": spec.Linux.MaskedPaths, "readonlyPaths": spec.Linux.ReadonlyPaths} {
			for i, p := range ps {
				if !filepath.IsAbs(p) {
					return fmt.Errorf("linux.%s[%d] %q is not absolute", name, i, p)
				}
			}
		}
		for _, ns := range spec.Linux.Namespaces {
			// A network namespace is joined by the sentry (runsc
			// create starts it there).
			if ns.Path != "" && ns.Type != specs.NetworkNamespace {
				return fmt.Errorf("linux.namespaces: joining an existing %s namespace (%s) is not supported yet", ns.Type, ns.Path)
			}
		}
	}
	for i, m := range spec.Mounts {
		if m.Destination == "" || !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mounts[%d]: destination %q is not an absolute path", i, m.Destination)
		}
		if isBind(m) {
			if m.Source == "" || !filepath.IsAbs(m.Source) {
				return fmt.Errorf("mounts[%d] (%s): bind mount source %q is not an absolute path", i, m.Destination, m.Source)
			}
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("mounts[%d] (%s): bind mount source: %w", i, m.Destination, err)
			}
			if !fi.IsDir() && !fi.Mode().IsRegular() {
				return fmt.Errorf("mounts[%d] (%s): bind mount source %q is neither a directory nor a regular file", i, m.Destination, m.Source)
			}
			continue
		}
		if !sentryMountTypes[m.Type] {
			return fmt.Errorf("mounts[%d] (%s): mount type %q is not supported yet", i, m.Destination, m.Type)
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

// Mounts returns the spec's mounts as the sentry takes them. Bind mounts
// come out with Type "bind" and GoferIndex unset: runsc/sandbox gives each
// a gofer connection.
func Mounts(spec *specs.Spec) []boot.Mount {
	var out []boot.Mount
	for _, m := range spec.Mounts {
		bm := boot.Mount{
			Destination: filepath.Clean(m.Destination),
			Type:        m.Type,
			Source:      m.Source,
		}
		if isBind(m) {
			bm.Type = "bind"
		}
		for _, o := range m.Options {
			switch o {
			case "ro":
				bm.ReadOnly = true
			case "rw":
				bm.ReadOnly = false
			}
			bm.Options = append(bm.Options, o)
		}
		out = append(out, bm)
	}
	return out
}

// MaskedPaths and ReadonlyPaths return linux.maskedPaths and
// linux.readonlyPaths.
func MaskedPaths(spec *specs.Spec) []string {
	if spec.Linux == nil {
		return nil
	}
	return cleanPaths(spec.Linux.MaskedPaths)
}

func ReadonlyPaths(spec *specs.Spec) []string {
	if spec.Linux == nil {
		return nil
	}
	return cleanPaths(spec.Linux.ReadonlyPaths)
}

func cleanPaths(ps []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, filepath.Clean("/"+p))
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
