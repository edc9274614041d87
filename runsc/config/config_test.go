package config

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func parse(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("runsc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := RegisterFlags(fs)
	return c, fs.Parse(args)
}

func TestDefaults(t *testing.T) {
	c, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.RootDir != "/var/run/runsc" || c.Platform != "systrap" || c.Network != "none" ||
		c.Overlay != "memory" || c.LogFormat != "text" || c.Debug || c.Strace {
		t.Errorf("defaults = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
}

func TestEnumFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--platform=kvm"}, ""},
		{[]string{"--platform=systrap"}, ""},
		{[]string{"--platform=foo"}, "must be one of systrap|ptrace|kvm"},
		{[]string{"--overlay=self"}, ""},
		{[]string{"--overlay=disk"}, "must be one of memory|none|self"},
		{[]string{"--log-format=json"}, ""},
		{[]string{"--log-format=xml"}, "must be one of text|json"},
		{[]string{"--network=bogus"}, "must be one of none|sandbox|host"},
		{[]string{"--no-such-flag"}, "not defined"},
	} {
		_, err := parse(t, tc.args...)
		if tc.wantErr == "" && err != nil {
			t.Errorf("%v: unexpected error %v", tc.args, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestValidateNetwork(t *testing.T) {
	for _, n := range []string{"sandbox", "host"} {
		c, err := parse(t, "--network="+n)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if err == nil || !strings.Contains(err.Error(), "not supported yet") {
			t.Errorf("--network=%s: Validate = %v, want 'not supported yet'", n, err)
		}
	}
	c, _ := parse(t, "--root=")
	if c.Validate() == nil {
		t.Error("empty --root accepted")
	}
}

// Flags must round-trip: a child parsing them gets the parent's config.
func TestFlagsRoundTrip(t *testing.T) {
	orig, err := parse(t, "--root=/r", "--debug", "--debug-log=/d", "--platform=kvm",
		"--strace", "--overlay=none", "--log-format=json", "--systemd-cgroup", "--debug-no-seccomp", "--log=/l")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parse(t, orig.Flags()...)
	if err != nil {
		t.Fatalf("parsing %v: %v", orig.Flags(), err)
	}
	if *got != *orig {
		t.Errorf("round trip: got %+v, want %+v", got, orig)
	}
	if !slices.Contains(orig.Flags(), "--debug-no-seccomp") {
		t.Error("--debug-no-seccomp not propagated")
	}
}
