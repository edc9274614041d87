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

// packed runs a packed Readdir and decodes its page.
func (tc *testClient) packed(r *proto.ReaddirReq) (*proto.ReaddirResp, []proto.PackedDirent) {
	t := tc.t
	t.Helper()
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: r}})
	if resp.Errno != 0 {
		t.Fatalf("readdir: %d", resp.Errno)
	}
	rd := resp.GetReaddir()
	if len(rd.Entries) != 0 {
		t.Fatalf("packed readdir sent %d entries as messages", len(rd.Entries))
	}
	ents, err := proto.DecodePacked(string(rd.Packed), nil)
	if err != nil {
		t.Fatal(err)
	}
	return rd, ents
}

// A packed listing holds what the message form does: every entry with
// its own lstat, paged under the message size, each entry once.
func TestReaddirPacked(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, true)
	rd, ents := tc.packed(&proto.ReaddirReq{Dir: tc.root, Attrs: true, Packed: true})
	if host, _ := os.ReadDir(dir); !rd.End || len(ents) != len(host) {
		t.Errorf("end %v, %d entries, want %d", rd.End, len(ents), len(host))
	}
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Name), &st); err != nil {
			t.Fatal(err)
		}
		if !e.HasAttr || e.Attr.Ino != st.Ino || e.Attr.Mode != st.Mode || e.Attr.Size != st.Size || e.Attr.Mtime.Sec != st.Mtim.Sec || e.Ino != st.Ino {
			t.Errorf("%s: %+v, lstat says ino %d mode %o size %d", e.Name, e, st.Ino, st.Mode, st.Size)
		}
	}

	big := t.TempDir()
	const n = 1500
	for i := range n {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("%0250d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tc = startServer(t, big, true)
	seen := map[string]bool{}
	var cookie int64
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("readdir never ended")
		}
		rd, ents := tc.packed(&proto.ReaddirReq{Dir: tc.root, Cookie: cookie, Attrs: true, Packed: true})
		if len(rd.Packed) > proto.MaxMessageSize-1024 {
			t.Fatalf("page of %d bytes", len(rd.Packed))
		}
		for _, e := range ents {
			if seen[e.Name] || !e.HasAttr {
				t.Fatalf("%s listed twice or without attributes", e.Name)
			}
			seen[e.Name] = true
			cookie = e.Cookie
		}
		if rd.End || len(ents) == 0 {
			break
		}
	}
	if len(seen) != n {
		t.Errorf("listed %d entries, want %d", len(seen), n)
	}
}

// want_handle with a name gives a handle of exactly the directory listed;
// without a name, or past the first page, none.
func TestReaddirWantHandle(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, true)
	rd, ents := tc.packed(&proto.ReaddirReq{Dir: tc.root, Name: []byte("sub"), Attrs: true, Packed: true, WantHandle: true})
	if len(ents) != 1 || ents[0].Name != "inner" {
		t.Fatalf("sub lists %v", ents)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(dir, "sub"), &st)
	if rd.Dir == nil || rd.Dir.Attr.Ino != st.Ino || rd.Dir.Attr.Mode != st.Mode {
		t.Fatalf("handle of sub: %v, lstat ino %d", rd.Dir, st.Ino)
	}
	if _, a, e := tc.walk(rd.Dir.Handle, "inner"); e != 0 || a.Size != 5 {
		t.Errorf("walk inner from the handle: %v %v", a, e)
	}
	for _, r := range []*proto.ReaddirReq{
		{Dir: tc.root, WantHandle: true, Packed: true},
		{Dir: tc.root, Name: []byte("sub"), Cookie: 1, WantHandle: true, Packed: true},
	} {
		rd, _ := tc.packed(r)
		if rd.Dir != nil {
			t.Errorf("%v: got a handle", r)
		}
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: tc.root, Name: []byte("up"), WantHandle: true}}}); e != unix.ENOTDIR {
		t.Errorf("want_handle through a symlink: %v", e)
	}
}

// A version 2 session keeps version 2's listing: entries as messages and
// no handle.
func TestReaddirVersion2(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(fds[1], tree(t), true) }()
	tc := &testClient{t: t, c: proto.NewConn(fds[0]), done: done}
	t.Cleanup(func() {
		tc.c.Close()
		<-done
	})
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: 2}}})
	if v := resp.GetVersion(); v == nil || v.Version != 2 {
		t.Fatalf("handshake: %v", resp)
	}
	root := resp.GetVersion().Root
	resp, _ = tc.call(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: root, Name: []byte("sub"), Attrs: true, Packed: true, WantHandle: true}}})
	rd := resp.GetReaddir()
	if rd == nil || len(rd.Entries) != 1 || len(rd.Packed) != 0 || rd.Dir != nil {
		t.Errorf("version 2 readdir: %v", resp)
	}
}

// via reaches a directory through others, one component at a time and
// never through a symlink; prefetch brings the complete listings of
// subdirectories that fit the page.
func TestReaddirViaAndPrefetch(t *testing.T) {
	dir := tree(t)
	for _, p := range []string{"sub/a/x", "sub/a/y", "sub/b", "sub/c"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sub/a/x/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := startServer(t, dir, true)
	rd, ents := tc.packed(&proto.ReaddirReq{Dir: tc.root, Via: [][]byte{[]byte("sub")}, Name: []byte("a"), Attrs: true, Packed: true, WantHandle: true, Prefetch: 10})
	if len(ents) != 2 || rd.Dir == nil {
		t.Fatalf("sub/a: %v, handle %v", ents, rd.Dir)
	}
	subs := map[string][]proto.PackedDirent{}
	for _, s := range rd.Subs {
		e, err := proto.DecodePacked(string(s.Packed), nil)
		if err != nil {
			t.Fatal(err)
		}
		subs[string(s.Name)] = e
	}
	if len(subs) != 2 || len(subs["x"]) != 1 || subs["x"][0].Name != "f" || !subs["x"][0].HasAttr || len(subs["y"]) != 0 {
		t.Errorf("prefetched %v", subs)
	}
	// Prefetch stops at the count asked for.
	rd, _ = tc.packed(&proto.ReaddirReq{Dir: tc.root, Name: []byte("sub"), Attrs: true, Packed: true, Prefetch: 1})
	if len(rd.Subs) != 1 {
		t.Errorf("prefetch 1 gave %d", len(rd.Subs))
	}
	for _, r := range []struct {
		via  []string
		name string
		want unix.Errno
	}{
		{[]string{"up"}, "x", unix.ENOTDIR}, // a symlink to a directory
		{[]string{"file"}, "x", unix.ENOTDIR},
		{[]string{".."}, "sub", unix.EINVAL},
		{[]string{"sub/a"}, "x", unix.EINVAL},
		{[]string{"sub"}, "", unix.EINVAL}, // via needs a name
		{[]string{"none"}, "x", unix.ENOENT},
	} {
		var via [][]byte
		for _, v := range r.via {
			via = append(via, []byte(v))
		}
		if e := tc.errno(&proto.Request{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: tc.root, Via: via, Name: []byte(r.name), Packed: true}}}); e != r.want {
			t.Errorf("via %q name %q: %v, want %v", r.via, r.name, e, r.want)
		}
	}
}
