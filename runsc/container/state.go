// Package container owns the OCI lifecycle of a container as the runsc CLI
// sees it: the state directory <root>/<id>/ (state.json, written
// atomically; the control socket; the exit status file), the state
// machine creating → created → running ⇄ paused → stopped, and every
// lifecycle operation (create, start, kill, delete, exec, pause, resume,
// ps, stats), hooks, the sandbox's host cgroup, and the host side of a
// process's terminal (console.go).
//
// The CLI keeps no process: a container's sandbox (the sentry, `runsc
// boot`, whose host PID is the container's PID) is found again from
// state.json, and asked things over its control socket. A state-changing
// command holds an flock on the state directory, so two such commands on
// one container run one after the other.
package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Status is an OCI container status.
type Status string

const (
	Creating Status = "creating"
	Created  Status = "created"
	Running  Status = "running"
	Paused   Status = "paused"
	Stopped  Status = "stopped"
)

// File names inside a container's state directory.
const (
	stateFile   = "state.json"
	controlSock = "control.sock"
	exitFile    = "exit"
)

// Proc names a host process robustly: a PID and its start time (field 22
// of /proc/PID/stat), so that a PID reused by another process is never
// mistaken for ours.
type Proc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// State is what state.json holds.
type State struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Status is the last status a command recorded; Container.Status
	// refines it with what is alive.
	Status  Status    `json:"status"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
	// Creator is the runsc create process while the status is creating.
	Creator Proc `json:"creator"`
	Sandbox Proc `json:"sandbox"`
	Gofer   Proc `json:"gofer"`
	// Cgroup is the sandbox's host cgroup, if any.
	Cgroup *Cgroup `json:"cgroup,omitempty"`
	// Hooks are kept for the ones run after the bundle may be gone
	// (poststop at delete).
	Hooks *specs.Hooks `json:"hooks,omitempty"`
	// Spec's process, for exec's defaults.
	Process *specs.Process `json:"process,omitempty"`
}

// Container is a loaded state directory.
type Container struct {
	State
	dir string
	// lock is the flock'ed state directory, when held.
	lock *os.File
	// console relays the terminal of a foreground runsc run.
	console *Console
}

// Dir returns the state directory of id under root.
func Dir(root, id string) string { return filepath.Join(root, id) }

// ErrNotExist is returned for a container ID with no state directory.
var ErrNotExist = errors.New("container does not exist")

// Load reads the state of id under root.
func Load(root, id string) (*Container, error) {
	dir := Dir(root, id)
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Stat(dir); derr == nil {
				// A runsc create killed before it wrote anything.
				return &Container{State: State{ID: id, Status: Creating}, dir: dir}, nil
			}
			return nil, fmt.Errorf("container %q does not exist: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	c := &Container{dir: dir}
	if err := json.Unmarshal(data, &c.State); err != nil {
		return nil, fmt.Errorf("container %q: corrupt %s: %w", id, stateFile, err)
	}
	return c, nil
}

// save writes state.json atomically (temp file, fsync, rename).
func (c *Container) save() error {
	data, err := json.Marshal(&c.State)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.dir, stateFile), data, 0o600)
}

// writeFileAtomic writes data to path so that a reader sees the old or
// the new contents, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Lock takes the container's lock (an flock on its state directory) and
// re-reads its state, which another command may have changed meanwhile.
func (c *Container) Lock() error {
	f, err := os.Open(c.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("container %q does not exist: %w", c.ID, ErrNotExist)
		}
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return fmt.Errorf("locking container %q: %w", c.ID, err)
	}
	c.lock = f
	if data, err := os.ReadFile(filepath.Join(c.dir, stateFile)); err == nil {
		var st State
		if json.Unmarshal(data, &st) == nil {
			c.State = st
		}
	}
	return nil
}

// Unlock releases Lock.
func (c *Container) Unlock() {
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
}

// procStart returns the start time of pid and whether it is alive (a
// zombie is not).
func procStart(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return st, true
}

// newProc names a running process.
func newProc(pid int) Proc {
	st, _ := procStart(pid)
	return Proc{PID: pid, Start: st}
}

// Alive reports whether p is still the process it was.
func (p Proc) Alive() bool {
	st, ok := procStart(p.PID)
	return ok && st == p.Start
}

// Status returns the container's status now: the recorded one, except
// that a container whose sandbox is gone or has recorded init's exit
// status (it does so before answering `runsc wait`, while it may still be
// tearing down) is stopped, and one whose creator died before finishing
// is stopped too (delete cleans it up).
func (c *Container) Status() Status {
	switch c.State.Status {
	case Creating:
		if c.Creator.PID != 0 && c.Creator.Alive() {
			return Creating
		}
		return Stopped
	case Created, Running, Paused:
		if !c.Sandbox.Alive() {
			return Stopped
		}
		if _, exited := c.ExitStatus(); exited {
			return Stopped
		}
		return c.State.Status
	}
	return Stopped
}

// PID is the container's PID as OCI state shows it: the sandbox's, or 0
// once it is gone.
func (c *Container) PID() int {
	if c.Status() == Stopped || c.Status() == Creating {
		return 0
	}
	return c.Sandbox.PID
}

// ExitStatus reads the exit status the sandbox wrote when it ended.
func (c *Container) ExitStatus() (int, bool) {
	data, err := os.ReadFile(filepath.Join(c.dir, exitFile))
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return n, err == nil
}

// OCIState is the state JSON of the OCI runtime spec, with runc's extra
// fields (rootfs, created, owner).
type OCIState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      Status            `json:"status"`
	PID         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs,omitempty"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// OCI returns the container's OCI state.
func (c *Container) OCI() OCIState {
	return OCIState{
		OCIVersion:  specs.Version,
		ID:          c.ID,
		Status:      c.Status(),
		PID:         c.PID(),
		Bundle:      c.Bundle,
		Rootfs:      c.Rootfs,
		Created:     c.Created,
		Owner:       c.Owner,
		Annotations: c.Annotations,
	}
}

// List returns the containers under root, by ID.
func List(root string) ([]*Container, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, err := Load(root, e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

func (c *Container) controlPath() string { return filepath.Join(c.dir, controlSock) }
