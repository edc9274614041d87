package cmd

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"time"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/container"
)

// Events implements `runsc events`: runc-style stats events, once with
// --stats, else every --interval until the container stops. The numbers
// come from inside the sandbox (CPU time of its processes, memory of its
// memory file, its task count); the limits from its host cgroup.
type Events struct {
	stats    bool
	interval time.Duration
}

func (*Events) Name() string     { return "events" }
func (*Events) Synopsis() string { return "print a container's resource usage as runc-style events" }
func (*Events) Usage() string {
	return "events [--stats] [--interval DURATION] <container-id>\n"
}

func (e *Events) SetFlags(f *flag.FlagSet) {
	f.BoolVar(&e.stats, "stats", false, "print the stats once and exit")
	f.DurationVar(&e.interval, "interval", 5*time.Second, "time between stats events")
}

// runc's event format (types.Event in runc's libcontainer).
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

type cpuUsage struct {
	Total  uint64   `json:"total"`
	Percpu []uint64 `json:"percpu,omitempty"`
	Kernel uint64   `json:"kernel"`
	User   uint64   `json:"user"`
}

type memoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

type stats struct {
	CPU struct {
		Usage      cpuUsage `json:"usage"`
		Throttling struct{} `json:"throttling"`
	} `json:"cpu"`
	Memory struct {
		Cache uint64      `json:"cache,omitempty"`
		Usage memoryEntry `json:"usage"`
	} `json:"memory"`
	Pids struct {
		Current uint64 `json:"current"`
		Limit   uint64 `json:"limit,omitempty"`
	} `json:"pids"`
}

func containerStats(c *container.Container) (*stats, error) {
	st, err := c.Stats()
	if err != nil {
		return nil, err
	}
	var s stats
	s.CPU.Usage = cpuUsage{
		Total:  st.CpuUserNanos + st.CpuSystemNanos,
		Kernel: st.CpuSystemNanos,
		User:   st.CpuUserNanos,
	}
	s.Memory.Usage.Usage = st.MemoryUsageBytes
	s.Memory.Usage.Limit = st.MemoryTotalBytes
	s.Pids.Current = st.PidsCurrent
	if cg := c.Cgroup; cg != nil {
		if _, limit := cg.MemoryUsage(); limit > 0 && limit < s.Memory.Usage.Limit {
			s.Memory.Usage.Limit = limit
		}
		s.Pids.Limit = cg.PidsLimit()
	}
	return &s, nil
}

func (e *Events) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if e.interval <= 0 {
		return usagef("events: --interval must be positive")
	}
	c, err := oneContainer(confFrom(args), f, "events")
	if err != nil {
		return failf("events: %v", err)
	}
	enc := json.NewEncoder(os.Stdout)
	for {
		s, err := containerStats(c)
		if err != nil {
			if !e.stats && c.Status() == container.Stopped {
				return subcommands.ExitSuccess
			}
			return failf("events: %v", err)
		}
		if err := enc.Encode(event{Type: "stats", ID: c.ID, Data: s}); err != nil {
			return failf("events: %v", err)
		}
		if e.stats {
			return subcommands.ExitSuccess
		}
		time.Sleep(e.interval)
	}
}
