package gofer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// Readdir with attrs gives each entry its own lstat (a symlink's, not its
// target's) and marks the last page, so a client needs no empty page.
func TestReaddirAttrsAndEnd(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, true)
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: tc.root, Attrs: true}}})
	if resp.Errno != 0 {
		t.Fatalf("readdir: %d", resp.Errno)
	}
	rd := resp.GetReaddir()
	if !rd.End {
		t.Errorf("a five-entry directory did not end in one page")
	}
	for _, e := range rd.Entries {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, string(e.Name)), &st); err != nil {
			t.Fatal(err)
		}
		if e.Attr == nil {
			t.Errorf("%s: no attributes", e.Name)
			continue
		}
		if e.Attr.Ino != st.Ino || e.Attr.Mode != st.Mode || e.Attr.Size != st.Size {
			t.Errorf("%s: attr ino %d mode %o size %d, lstat says %d %o %d", e.Name, e.Attr.Ino, e.Attr.Mode, e.Attr.Size, st.Ino, st.Mode, st.Size)
		}
	}
}

// Pages with attributes stay under the message size however long the
// names, and together list every entry once.
func TestReaddirAttrsPaging(t *testing.T) {
	dir := t.TempDir()
	const n = 1500
	for i := range n {
		name := fmt.Sprintf("%0250d", i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tc := startServer(t, dir, true)
	seen := map[string]bool{}
	var cookie int64
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("readdir never ended")
		}
		resp, _ := tc.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: tc.root, Cookie: cookie, Attrs: true}}})
		if resp.Errno != 0 {
			t.Fatalf("readdir: %d", resp.Errno)
		}
		rd := resp.GetReaddir()
		for _, e := range rd.Entries {
			if seen[string(e.Name)] {
				t.Fatalf("%s listed twice", e.Name)
			}
			seen[string(e.Name)] = true
			cookie = e.Cookie
		}
		if rd.End || len(rd.Entries) == 0 {
			break
		}
	}
	if len(seen) != n {
		t.Errorf("listed %d entries, want %d", len(seen), n)
	}
}

// Readdir of a child by name lists that directory, one component only and
// never through a symlink.
func TestReaddirByName(t *testing.T) {
	tc := startServer(t, tree(t), true)
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: tc.root, Name: []byte("sub"), Attrs: true}}})
	if resp.Errno != 0 {
		t.Fatalf("readdir sub by name: %d", resp.Errno)
	}
	if ents := resp.GetReaddir().Entries; len(ents) != 1 || string(ents[0].Name) != "inner" {
		t.Errorf("sub lists %v", ents)
	}
	for name, want := range map[string]unix.Errno{
		"up":     unix.ENOTDIR, // a symlink to a directory
		"escape": unix.ENOTDIR,
		"file":   unix.ENOTDIR,
		"..":     unix.EINVAL,
		".":      unix.EINVAL,
		"a/b":    unix.EINVAL,
		"none":   unix.ENOENT,
	} {
		if e := tc.errno(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: tc.root, Name: []byte(name)}}}); e != want {
			t.Errorf("readdir by name %q: %v, want %v", name, e, want)
		}
	}
}
