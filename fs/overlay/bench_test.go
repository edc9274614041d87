package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/vfs"
)

// The sentry's side of the hot file-system calls on the default root (an
// overlay over a read-only gofer mount), without a platform: what each
// costs beyond the syscall round trip.

func benchTree(dir string) {
	os.MkdirAll(filepath.Join(dir, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr", "bin", "env"), []byte("#!"), 0o755)
	for i := range 100 {
		os.WriteFile(filepath.Join(dir, "usr", "bin", fmt.Sprintf("f%d", i)), nil, 0o644)
	}
}

func BenchmarkOpenStatClose(b *testing.B) {
	e := newEnv(b, benchTree)
	ctx := context.Background()
	pop := &vfs.PathOperation{Root: e.root, Start: e.root, Path: "/usr/bin/env", FollowFinalSymlink: true}
	for b.Loop() {
		fd, err := e.vfs.OpenAt(ctx, pop, vfs.OpenOptions{Flags: unix.O_RDONLY})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fd.Stat(ctx); err != nil {
			b.Fatal(err)
		}
		fd.DecRef(ctx)
	}
}

func BenchmarkStat(b *testing.B) {
	e := newEnv(b, benchTree)
	ctx := context.Background()
	pop := &vfs.PathOperation{Root: e.root, Start: e.root, Path: "/usr/bin/env", FollowFinalSymlink: true}
	for b.Loop() {
		if _, err := e.vfs.StatAt(ctx, pop); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatMissing(b *testing.B) {
	e := newEnv(b, benchTree)
	ctx := context.Background()
	pop := &vfs.PathOperation{Root: e.root, Start: e.root, Path: "/usr/bin/nothere", FollowFinalSymlink: true}
	for b.Loop() {
		if _, err := e.vfs.StatAt(ctx, pop); err != unix.ENOENT {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatTree is a first look at 10,000 files in 100 directories,
// as test/benchmarks' statmany: each iteration a fresh mount.
func BenchmarkStatTree(b *testing.B) {
	host := b.TempDir()
	for d := range 100 {
		sub := filepath.Join(host, "tree", fmt.Sprintf("d%d", d))
		os.MkdirAll(sub, 0o755)
		for f := range 100 {
			os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", f)), nil, 0o644)
		}
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		e := newEnvAt(b, host)
		b.StartTimer()
		for d := range 100 {
			for f := range 100 {
				pop := &vfs.PathOperation{Root: e.root, Start: e.root, Path: fmt.Sprintf("/tree/d%d/f%d", d, f), FollowFinalSymlink: true}
				if _, err := e.vfs.StatAt(ctx, pop); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
