package container

import (
	"bufio"
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

// Cgroup is the sandbox's host cgroup: one directory per v1 controller,
// or one directory in the v2 hierarchy. linux.resources are applied to it
// and the sentry and gofer join it, so the host's limits hold for the
// whole sandbox (application memory lives in the sentry's memory file,
// charged to the sentry).
type Cgroup struct {
	// V2 is set on a unified (cgroup v2) host.
	V2 bool `json:"v2"`
	// Dirs maps a v1 controller (or "" on v2) to its directory.
	Dirs map[string]string `json:"dirs"`
	// Made lists the directories this container created, to remove.
	Made []string `json:"made"`
}

// cgroupRoot is where the hierarchies are mounted (tests change it).
var cgroupRoot = "/sys/fs/cgroup"

// v1Controllers are the v1 controllers the sandbox joins.
var v1Controllers = []string{"memory", "cpu", "cpuacct", "pids", "freezer"}

// v1Mounts maps each v1 controller to its mount point, from mountinfo.
func v1Mounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint ... - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || fields[sep+1] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(fields[sep+3], ",") {
			out[o] = fields[4]
		}
	}
	return out, sc.Err()
}

// ownCgroup returns this process's cgroup path for a v1 controller (or
// "" for v2).
func ownCgroup(controller string) string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "/"
	}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2]
			}
		}
	}
	return "/"
}

func isV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// cgroupRel turns cgroupsPath into a path within a hierarchy: absolute
// paths are from the hierarchy's root, relative ones from the runtime's
// own cgroup, and systemd's "slice:prefix:name" (with --systemd-cgroup)
// becomes slice/prefix-name.scope, as systemd would lay it out.
func cgroupRel(cgroupsPath, own string) string {
	if parts := strings.Split(cgroupsPath, ":"); len(parts) == 3 && !strings.HasPrefix(cgroupsPath, "/") {
		slice := parts[0]
		if slice == "" {
			slice = "system.slice"
		}
		return filepath.Join("/", slice, parts[1]+"-"+parts[2]+".scope")
	}
	if filepath.IsAbs(cgroupsPath) {
		return filepath.Clean(cgroupsPath)
	}
	return filepath.Join(own, cgroupsPath)
}

// NewCgroup creates the cgroup for cgroupsPath and applies res. On error,
// whatever it created is removed again.
func NewCgroup(cgroupsPath string, res *specs.LinuxResources) (_ *Cgroup, err error) {
	if err := checkResources(res); err != nil {
		return nil, err
	}
	cg := &Cgroup{V2: isV2(), Dirs: map[string]string{}}
	defer func() {
		if err != nil {
			cg.Destroy()
		}
	}()
	if cg.V2 {
		rel := cgroupRel(cgroupsPath, ownCgroup(""))
		dir := filepath.Join(cgroupRoot, rel)
		if err := cg.mkdirAll(dir); err != nil {
			return nil, err
		}
		cg.Dirs[""] = dir
		// Controllers must be enabled in every ancestor below the root.
		for p := filepath.Dir(dir); len(p) >= len(cgroupRoot); p = filepath.Dir(p) {
			_ = os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0)
			if p == cgroupRoot {
				break
			}
		}
	} else {
		mounts, err := v1Mounts()
		if err != nil {
			return nil, fmt.Errorf("cgroups: %w", err)
		}
		for _, ctl := range v1Controllers {
			mnt, ok := mounts[ctl]
			if !ok {
				continue
			}
			dir := filepath.Join(mnt, cgroupRel(cgroupsPath, ownCgroup(ctl)))
			if err := cg.mkdirAll(dir); err != nil {
				return nil, err
			}
			cg.Dirs[ctl] = dir
		}
	}
	if err := cg.apply(res); err != nil {
		return nil, err
	}
	return cg, nil
}

// mkdirAll makes dir and records the directories it created.
func (cg *Cgroup) mkdirAll(dir string) error {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroups: %w", err)
		}
		cg.Made = append(cg.Made, missing[i])
	}
	return nil
}

// checkResources refuses the linux.resources fields Veil cannot honour.
// Devices need nothing: the sandbox never opens a host device (its /dev
// is the sentry's own).
func checkResources(res *specs.LinuxResources) error {
	if res == nil {
		return nil
	}
	switch {
	case res.BlockIO != nil && (res.BlockIO.Weight != nil || res.BlockIO.LeafWeight != nil || len(res.BlockIO.WeightDevice) > 0 ||
		len(res.BlockIO.ThrottleReadBpsDevice)+len(res.BlockIO.ThrottleWriteBpsDevice)+len(res.BlockIO.ThrottleReadIOPSDevice)+len(res.BlockIO.ThrottleWriteIOPSDevice) > 0):
		return errors.New("linux.resources.blockIO is not supported")
	case len(res.HugepageLimits) > 0:
		return errors.New("linux.resources.hugepageLimits is not supported")
	case res.Network != nil:
		return errors.New("linux.resources.network is not supported")
	case len(res.Rdma) > 0:
		return errors.New("linux.resources.rdma is not supported")
	case len(res.Unified) > 0:
		return errors.New("linux.resources.unified is not supported")
	}
	if c := res.CPU; c != nil {
		if c.Cpus != "" || c.Mems != "" {
			return errors.New("linux.resources.cpu.cpus/mems (cpusets) are not supported")
		}
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			return errors.New("linux.resources.cpu.realtimeRuntime/realtimePeriod are not supported")
		}
	}
	if m := res.Memory; m != nil && m.Kernel != nil && *m.Kernel != 0 {
		return errors.New("linux.resources.memory.kernel is not supported")
	}
	return nil
}

func writeCg(dir, file, val string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil {
		return fmt.Errorf("cgroups: writing %s to %s: %w", val, filepath.Join(dir, file), err)
	}
	return nil
}

func (cg *Cgroup) apply(res *specs.LinuxResources) error {
	if res == nil {
		return nil
	}
	if cg.V2 {
		return cg.applyV2(res)
	}
	if m := res.Memory; m != nil {
		if d, ok := cg.Dirs["memory"]; ok {
			if m.Limit != nil && *m.Limit > 0 {
				if err := writeCg(d, "memory.limit_in_bytes", strconv.FormatInt(*m.Limit, 10)); err != nil {
					return err
				}
			}
			// memsw exists only with swap accounting; without it a swap
			// limit cannot be set, as runc also lets pass.
			if m.Swap != nil && *m.Swap > 0 {
				if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err == nil {
					if err := writeCg(d, "memory.memsw.limit_in_bytes", strconv.FormatInt(*m.Swap, 10)); err != nil {
						return err
					}
				}
			}
			if m.Reservation != nil && *m.Reservation > 0 {
				if err := writeCg(d, "memory.soft_limit_in_bytes", strconv.FormatInt(*m.Reservation, 10)); err != nil {
					return err
				}
			}
			if m.Swappiness != nil && *m.Swappiness <= 100 {
				if err := writeCg(d, "memory.swappiness", strconv.FormatUint(*m.Swappiness, 10)); err != nil {
					return err
				}
			}
			if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
				if err := writeCg(d, "memory.oom_control", "1"); err != nil {
					return err
				}
			}
		} else if m.Limit != nil && *m.Limit > 0 {
			return errors.New("linux.resources.memory: no memory cgroup controller on this host")
		}
	}
	if c := res.CPU; c != nil {
		d, ok := cg.Dirs["cpu"]
		if !ok && (c.Shares != nil || c.Quota != nil) {
			return errors.New("linux.resources.cpu: no cpu cgroup controller on this host")
		}
		if c.Shares != nil && *c.Shares > 0 {
			if err := writeCg(d, "cpu.shares", strconv.FormatUint(*c.Shares, 10)); err != nil {
				return err
			}
		}
		if c.Period != nil && *c.Period > 0 {
			if err := writeCg(d, "cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10)); err != nil {
				return err
			}
		}
		if c.Quota != nil && *c.Quota != 0 {
			if err := writeCg(d, "cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10)); err != nil {
				return err
			}
		}
	}
	if p := res.Pids; p != nil {
		d, ok := cg.Dirs["pids"]
		if !ok {
			return errors.New("linux.resources.pids: no pids cgroup controller on this host")
		}
		v := "max"
		if p.Limit != nil && *p.Limit > 0 {
			v = strconv.FormatInt(*p.Limit, 10)
		}
		if err := writeCg(d, "pids.max", v); err != nil {
			return err
		}
	}
	return nil
}

func (cg *Cgroup) applyV2(res *specs.LinuxResources) error {
	d := cg.Dirs[""]
	if m := res.Memory; m != nil {
		if m.Limit != nil && *m.Limit > 0 {
			if err := writeCg(d, "memory.max", strconv.FormatInt(*m.Limit, 10)); err != nil {
				return err
			}
			// OCI's swap is memory+swap; v2's swap.max is swap alone.
			if m.Swap != nil && *m.Swap >= *m.Limit {
				if _, err := os.Stat(filepath.Join(d, "memory.swap.max")); err == nil {
					if err := writeCg(d, "memory.swap.max", strconv.FormatInt(*m.Swap-*m.Limit, 10)); err != nil {
						return err
					}
				}
			}
		}
		if m.Reservation != nil && *m.Reservation > 0 {
			if err := writeCg(d, "memory.low", strconv.FormatInt(*m.Reservation, 10)); err != nil {
				return err
			}
		}
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil && *c.Shares > 0 {
			// runc's mapping of shares [2, 262144] onto weight [1, 10000].
			sh := *c.Shares
			if sh < 2 {
				sh = 2
			}
			if sh > 262144 {
				sh = 262144
			}
			w := 1 + ((sh-2)*9999)/262142
			if err := writeCg(d, "cpu.weight", strconv.FormatUint(w, 10)); err != nil {
				return err
			}
		}
		if (c.Quota != nil && *c.Quota != 0) || (c.Period != nil && *c.Period != 0) {
			q := "max"
			if c.Quota != nil && *c.Quota > 0 {
				q = strconv.FormatInt(*c.Quota, 10)
			}
			period := uint64(100000)
			if c.Period != nil && *c.Period > 0 {
				period = *c.Period
			}
			if err := writeCg(d, "cpu.max", fmt.Sprintf("%s %d", q, period)); err != nil {
				return err
			}
		}
	}
	if p := res.Pids; p != nil {
		v := "max"
		if p.Limit != nil && *p.Limit > 0 {
			v = strconv.FormatInt(*p.Limit, 10)
		}
		if err := writeCg(d, "pids.max", v); err != nil {
			return err
		}
	}
	return nil
}

// Add moves pid into the cgroup.
func (cg *Cgroup) Add(pid int) error {
	for _, d := range cg.Dirs {
		if err := writeCg(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Destroy removes the directories the container created, deepest first,
// retrying briefly while the sandbox's last processes leave.
func (cg *Cgroup) Destroy() error {
	var errs []error
	for i := len(cg.Made) - 1; i >= 0; i-- {
		d := cg.Made[i]
		var err error
		for try := 0; try < 100; try++ {
			err = os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				err = nil
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cgroups: removing %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// MemoryUsage reads the cgroup's memory usage and limit (0 if unknown).
func (cg *Cgroup) MemoryUsage() (usage, limit uint64) {
	read := func(dir, f string) uint64 {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		return n
	}
	if cg.V2 {
		return read(cg.Dirs[""], "memory.current"), read(cg.Dirs[""], "memory.max")
	}
	if d, ok := cg.Dirs["memory"]; ok {
		return read(d, "memory.usage_in_bytes"), read(d, "memory.limit_in_bytes")
	}
	return 0, 0
}

// PidsLimit reads pids.max (0: no limit).
func (cg *Cgroup) PidsLimit() uint64 {
	d, ok := cg.Dirs["pids"]
	if cg.V2 {
		d, ok = cg.Dirs[""], true
	}
	if !ok {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(d, "pids.max"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	return n
}
