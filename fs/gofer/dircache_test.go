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
