package gofer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// On a read-only mount, lookups after the first in a directory are
// answered from one listing: found names and ENOENT alike cost no round
// trip, and a listed file still opens and reads.
func TestListingAnswersLookups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f3", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	e := newVFSEnv(t, dir, true, 1000)
	c := e.fs.Impl().(*Filesystem).client
	stat := func(name string) error {
		_, err := e.vfs.StatAt(ctx, e.pop(e.root, name))
		return err
	}
	if err := stat("f0"); err != nil {
		t.Fatal(err)
	}
	if err := stat("f1"); err != nil { // fetches the listing
		t.Fatal(err)
	}
	before := roundTrips(c)
	for i := 2; i < 20; i++ {
		if err := stat(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := stat(fmt.Sprintf("missing%d", i)); err != unix.ENOENT {
			t.Fatalf("missing name: %v, want ENOENT", err)
		}
	}
	if n := roundTrips(c) - before; n != 0 {
		t.Errorf("28 lookups after the listing made %d round trips, want 0", n)
	}
	// A listed file has no handle yet; opening it walks, then reads.
	if got := e.readFile(e.root, "f7"); got != "7" {
		t.Errorf("f7 holds %q", got)
	}
	// A listed symlink is followed (its target is read through a walk).
	if got := e.readFile(e.root, "link"); got != "3" {
		t.Errorf("link reads %q", got)
	}
}

// Listing a directory that was only found in its parent's listing takes
// one round trip and no walk.
func TestListingByName(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for d := range 3 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newVFSEnv(t, dir, true, 1000)
	c := e.fs.Impl().(*Filesystem).client
	root, err := e.open(e.root, ".")
	if err != nil {
		t.Fatal(err)
	}
	defer root.DecRef(ctx)
	if _, err := e.root.Inode().ReadDir(ctx); err != nil { // the root's listing
		t.Fatal(err)
	}
	for d := range 3 {
		vd, err := e.vfs.GetDentryAt(ctx, e.pop(e.root, fmt.Sprintf("d%d", d)))
		if err != nil {
			t.Fatal(err)
		}
		before := roundTrips(c)
		ents, err := vd.Inode().ReadDir(ctx)
		if err != nil || len(ents) != 1 || ents[0].Name != "f" {
			t.Fatalf("d%d lists %v, %v", d, ents, err)
		}
		if n := roundTrips(c) - before; n != 1 {
			t.Errorf("listing d%d took %d round trips, want 1", d, n)
		}
	}
}

// Listing a directory by name also gives it a handle, so that listing
// its own subdirectories in turn (find, ls -R) costs one round trip each
// and never a walk.
func TestListingByNameNests(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := dir
	for _, d := range []string{"a", "b", "c", "d"} {
		path = filepath.Join(path, d)
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newVFSEnv(t, dir, true, 1000)
	c := e.fs.Impl().(*Filesystem).client
	p := "."
	for _, d := range []string{"a", "b", "c", "d"} {
		vd, err := e.vfs.GetDentryAt(ctx, e.pop(e.root, p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := vd.Inode().ReadDir(ctx); err != nil {
			t.Fatal(err)
		}
		p += "/" + d
		vd, err = e.vfs.GetDentryAt(ctx, e.pop(e.root, p))
		if err != nil {
			t.Fatal(err)
		}
		before := c.RoundTrips()
		ents, err := vd.Inode().ReadDir(ctx)
		if err != nil || len(ents) == 0 {
			t.Fatalf("%s lists %v, %v", p, ents, err)
		}
		if n := c.RoundTrips() - before; n != 1 {
			t.Errorf("listing %s took %d round trips, want 1", p, n)
		}
	}
	if got := e.readFile(e.root, "a/b/c/d/f"); got != "" {
		t.Errorf("a/b/c/d/f holds %q", got)
	}
}

// A tree walked as find walks it (list a directory, then each of its
// subdirectories, depth first) costs well under a round trip per
// directory once the walk is under way, and every listing is right.
func TestTreeWalkPrefetches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var dirs int
	var mk func(path string, depth int)
	mk = func(path string, depth int) {
		dirs++
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, "f"), []byte(path), 0o644); err != nil {
			t.Fatal(err)
		}
		if depth == 0 {
			return
		}
		for k := range 3 {
			mk(filepath.Join(path, fmt.Sprintf("d%d", k)), depth-1)
		}
	}
	mk(filepath.Join(dir, "top"), 4) // 121 directories
	e := newVFSEnv(t, dir, true, 1000)
	c := e.fs.Impl().(*Filesystem).client
	before := c.RoundTrips()
	var walk func(path string, depth int)
	seen := 0
	walk = func(path string, depth int) {
		vd, err := e.vfs.GetDentryAt(ctx, e.pop(e.root, path))
		if err != nil {
			t.Fatal(err)
		}
		ents, err := vd.Inode().ReadDir(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen++
		want := 1
		if depth > 0 {
			want = 4
		}
		if len(ents) != want {
			t.Fatalf("%s lists %v", path, ents)
		}
		for _, d := range ents {
			if d.Type == unix.DT_DIR {
				walk(path+"/"+d.Name, depth-1)
			}
		}
	}
	walk("top", 4)
	n := c.RoundTrips() - before
	if seen != dirs || n > uint64(dirs)/2 {
		t.Errorf("listed %d of %d directories in %d round trips, want at most %d", seen, dirs, n, dirs/2)
	}
	if got := e.readFile(e.root, "top/d2/d1/d0/d2/f"); got != filepath.Join(dir, "top/d2/d1/d0/d2") {
		t.Errorf("a file deep down reads %q", got)
	}
}

// A small directory found in a listing is listed at its first lookup, in
// one round trip through its parent, rather than walked to and then
// walked in: stat'ing every file of a tree costs one round trip per
// directory.
func TestSmallDirectoryListedAtOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for d := range 10 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 10 {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", f)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := newVFSEnv(t, dir, true, 1000)
	c := e.fs.Impl().(*Filesystem).client
	if _, err := e.root.Inode().ReadDir(ctx); err != nil {
		t.Fatal(err)
	}
	before := c.RoundTrips()
	for d := range 10 {
		for f := range 10 {
			if _, err := e.vfs.StatAt(ctx, e.pop(e.root, fmt.Sprintf("d%d/f%d", d, f))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.vfs.StatAt(ctx, e.pop(e.root, fmt.Sprintf("d%d/none", d))); err != unix.ENOENT {
			t.Fatalf("missing file: %v", err)
		}
	}
	if n := c.RoundTrips() - before; n != 10 {
		t.Errorf("110 stats in 10 directories took %d round trips, want 10", n)
	}
}
