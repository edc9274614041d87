// Command runsc is Veil's OCI runtime and sandbox launcher: the CLI users,
// podman and containerd run, and also (re-executed by itself) the sentry
// (`runsc boot`) and the gofer (`runsc gofer`). This file owns the global
// flags, logging setup and subcommand registration; the commands live in
// runsc/cmd.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/cmd"
	"github.com/veil-sandbox/veil/runsc/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// newCommander builds the command set on fs.
func newCommander(fs *flag.FlagSet) *subcommands.Commander {
	cdr := subcommands.NewCommander(fs, "runsc")
	cdr.Register(cdr.HelpCommand(), "")
	cdr.Register(cdr.FlagsCommand(), "")
	cdr.Register(new(cmd.Do), "")
	cdr.Register(new(cmd.Run), "")
	cdr.Register(new(cmd.Create), "")
	cdr.Register(new(cmd.Start), "")
	cdr.Register(new(cmd.State), "")
	cdr.Register(new(cmd.Kill), "")
	cdr.Register(new(cmd.Delete), "")
	cdr.Register(new(cmd.List), "")
	cdr.Register(new(cmd.Ps), "")
	cdr.Register(new(cmd.Events), "")
	cdr.Register(new(cmd.Wait), "")
	cdr.Register(new(cmd.Pause), "")
	cdr.Register(new(cmd.Resume), "")
	cdr.Register(new(cmd.Exec), "")
	cdr.Register(new(cmd.Spec), "")
	cdr.Register(new(cmd.Features), "")
	cdr.Register(new(cmd.ExecWait), "internal")
	cdr.Register(new(cmd.Syscalls), "")
	cdr.Register(new(cmd.Boot), "internal")
	cdr.Register(new(cmd.Gofer), "internal")
	return cdr
}

// run parses the global flags, sets up logging and runs the subcommand,
// returning the process exit status.
func run(argv []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("runsc", flag.ContinueOnError)
	// Parse errors are printed below as one line; help goes to stderr
	// through the commander.
	fs.SetOutput(io.Discard)
	conf := config.RegisterFlags(fs)
	cdr := newCommander(fs)
	// The commander's usage text would bury a bad flag's one-line error.
	fs.Usage = func() {}
	if err := fs.Parse(argv); err != nil {
		if err == flag.ErrHelp {
			cdr.Explain(stderr)
			return 0
		}
		fmt.Fprintf(stderr, "runsc: %v (see runsc flags)\n", err)
		return int(subcommands.ExitUsageError)
	}
	if err := conf.Validate(); err != nil {
		fmt.Fprintf(stderr, "runsc: %v\n", err)
		return int(subcommands.ExitUsageError)
	}
	closeLog, err := setupLogging(conf, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "runsc: %v\n", err)
		return int(subcommands.ExitFailure)
	}
	defer closeLog()
	if conf.SystemdCgroup {
		slog.Debug("--systemd-cgroup is accepted and ignored: Veil does not manage cgroups yet")
	}
	fs.SetOutput(stderr) // for `runsc flags`
	if fs.NArg() == 0 {
		cdr.Explain(stderr)
		return int(subcommands.ExitUsageError)
	}
	if !known(cdr, fs.Arg(0)) {
		fmt.Fprintf(stderr, "runsc: unknown command %q (see runsc help)\n", fs.Arg(0))
		return int(subcommands.ExitUsageError)
	}
	return int(cdr.Execute(context.Background(), conf))
}

// setupLogging points the default slog logger at --log (or stderr) in the
// --log-format, at debug level with --debug.
func setupLogging(conf *config.Config, stderr io.Writer) (func(), error) {
	w, closer := stderr, func() {}
	if conf.LogFile != "" {
		f, err := os.OpenFile(conf.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--log: %w", err)
		}
		w, closer = f, func() { f.Close() }
	}
	level := slog.LevelInfo
	if conf.Debug {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	if conf.LogFile != "" {
		cmd.ErrorsToLog = true
		// runc's levels are lower case, and its shim looks for "error".
		hopts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey {
				a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
			}
			return a
		}
	}
	var h slog.Handler = slog.NewTextHandler(w, hopts)
	if conf.LogFormat == "json" {
		h = slog.NewJSONHandler(w, hopts)
	}
	slog.SetDefault(slog.New(h).With("pid", os.Getpid()))
	return closer, nil
}

// known reports whether name is a registered subcommand.
func known(cdr *subcommands.Commander, name string) bool {
	found := false
	cdr.VisitCommands(func(_ *subcommands.CommandGroup, c subcommands.Command) {
		if c.Name() == name {
			found = true
		}
	})
	return found
}
