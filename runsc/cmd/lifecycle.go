package cmd

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/config"
	"github.com/veil-sandbox/veil/runsc/container"
)

// oneContainer loads the container named by the only positional argument.
func oneContainer(conf *config.Config, f *flag.FlagSet, cmd string) (*container.Container, error) {
	if f.NArg() != 1 {
		return nil, fmt.Errorf("%s: want exactly one container ID, got %d arguments", cmd, f.NArg())
	}
	return loadContainer(conf, f.Arg(0))
}

func loadContainer(conf *config.Config, id string) (*container.Container, error) {
	if err := container.ValidateID(id); err != nil {
		return nil, err
	}
	return container.Load(conf.RootDir, id)
}

// signalNames maps names (without SIG) to numbers, as kill(1) knows them.
var signalNames = map[string]unix.Signal{
	"HUP": unix.SIGHUP, "INT": unix.SIGINT, "QUIT": unix.SIGQUIT, "ILL": unix.SIGILL,
	"TRAP": unix.SIGTRAP, "ABRT": unix.SIGABRT, "IOT": unix.SIGIOT, "BUS": unix.SIGBUS,
	"FPE": unix.SIGFPE, "KILL": unix.SIGKILL, "USR1": unix.SIGUSR1, "SEGV": unix.SIGSEGV,
	"USR2": unix.SIGUSR2, "PIPE": unix.SIGPIPE, "ALRM": unix.SIGALRM, "TERM": unix.SIGTERM,
	"STKFLT": unix.SIGSTKFLT, "CHLD": unix.SIGCHLD, "CONT": unix.SIGCONT, "STOP": unix.SIGSTOP,
	"TSTP": unix.SIGTSTP, "TTIN": unix.SIGTTIN, "TTOU": unix.SIGTTOU, "URG": unix.SIGURG,
	"XCPU": unix.SIGXCPU, "XFSZ": unix.SIGXFSZ, "VTALRM": unix.SIGVTALRM, "PROF": unix.SIGPROF,
	"WINCH": unix.SIGWINCH, "IO": unix.SIGIO, "POLL": unix.SIGPOLL, "PWR": unix.SIGPWR, "SYS": unix.SIGSYS,
}

// ParseSignal accepts a number (1-64), a name (TERM, SIGTERM, any case),
// or RTMIN+N / RTMAX-N.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signalNames[name]; ok {
		return sig, nil
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"RTMIN+", 34, 1}, {"RTMAX-", 64, -1}} {
		if rest, ok := strings.CutPrefix(name, rt.prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 && n <= 30 {
				return unix.Signal(rt.base + rt.sign*n), nil
			}
		}
	}
	switch name {
	case "RTMIN":
		return 34, nil
	case "RTMAX":
		return 64, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
