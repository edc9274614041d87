package gofer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	gofersrv "github.com/veil-sandbox/veil/gofer"
)

// serveTB serves dir with a real gofer server in a goroutine.
func serveTB(tb testing.TB, dir string, readOnly bool) *Client {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gofersrv.Serve(fds[1], dir, readOnly) }()
	c, err := NewClient(fds[0])
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Shutdown()
		<-done
	})
	return c
}

func BenchmarkRoundTrip(b *testing.B) {
	c := serveTB(b, b.TempDir(), true)
	for b.Loop() {
		if _, err := c.Stat(c.Root); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaddir100(b *testing.B) {
	dir := b.TempDir()
	for i := range 100 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), nil, 0o644)
	}
	c := serveTB(b, dir, true)
	for b.Loop() {
		if _, err := c.ReaddirAll(c.Root, "", true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWalk(b *testing.B) {
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	c := serveTB(b, dir, true)
	for b.Loop() {
		h, _, err := c.Walk(c.Root, "f")
		if err != nil {
			b.Fatal(err)
		}
		c.Close(h)
	}
}

func BenchmarkListDir100(b *testing.B) {
	dir := b.TempDir()
	for i := range 100 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), nil, 0o644)
	}
	c := serveTB(b, dir, true)
	for b.Loop() {
		if _, err := c.ListDir(c.Root, ListOpts{Attrs: true}); err != nil {
			b.Fatal(err)
		}
	}
}
