package sys

import (
	"context"
	"testing"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func walk(t *testing.T, fs *Filesystem, path ...string) vfs.Inode {
	t.Helper()
	var ino vfs.Inode = fs.root
	for _, p := range path {
		var err error
		if ino, err = ino.Lookup(context.Background(), p); err != nil {
			t.Fatalf("lookup %v: %v", path, err)
		}
	}
	return ino
}

func read(t *testing.T, fs *Filesystem, path ...string) string {
	t.Helper()
	f := walk(t, fs, path...).(*fileInode)
	return f.gen()
}

func TestCPUs(t *testing.T) {
	fs := New(kernel.New(kernel.Config{NumCPU: 4}), Limits{MemoryMax: "1073741824"})
	for _, name := range []string{"online", "possible", "present"} {
		if got := read(t, fs, "devices", "system", "cpu", name); got != "0-3\n" {
			t.Errorf("%s = %q, want 0-3", name, got)
		}
	}
	if _, err := walk(t, fs, "devices", "system", "cpu", "cpu0").Lookup(context.Background(), "online"); err == nil {
		t.Errorf("cpu0/online exists; Linux has none")
	}
	if got := read(t, fs, "devices", "system", "cpu", "cpu3", "online"); got != "1\n" {
		t.Errorf("cpu3/online = %q", got)
	}
	if got := read(t, fs, "devices", "system", "cpu", "cpu2", "topology", "core_id"); got != "2\n" {
		t.Errorf("cpu2 core_id = %q", got)
	}
	if got := read(t, fs, "fs", "cgroup", "memory.max"); got != "1073741824\n" {
		t.Errorf("memory.max = %q", got)
	}
	if got := read(t, fs, "fs", "cgroup", "pids.max"); got != "max\n" {
		t.Errorf("pids.max = %q", got)
	}
	ents, err := fs.root.ReadDir(context.Background())
	if err != nil || len(ents) < 5 {
		t.Fatalf("ReadDir(/) = %v, %v", ents, err)
	}
	if cpuList(1) != "0" {
		t.Errorf("cpuList(1) = %q", cpuList(1))
	}
}
