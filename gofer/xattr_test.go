package gofer

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// The sandbox's trusted.* and user.veil.* are stored in the host's user
// namespace under names of the gofer's own; the host's other names under
// user.veil. are invisible, and nothing reaches the host's trusted.*.
func TestXattrNameMapping(t *testing.T) {
	dir := tree(t)
	tc := startServer(t, dir, false)
	f := tc.mustWalk(tc.root, "file")
	set := func(name, val string) unix.Errno {
		return tc.errno(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: f, Name: []byte(name), Value: []byte(val)}}})
	}
	if e := set("user.plain", "p"); e == unix.EOPNOTSUPP || e == unix.ENOTSUP {
		t.Skip("host filesystem of t.TempDir() has no user xattrs")
	}
	for name, val := range map[string]string{"trusted.overlay.opaque": "y", "user.veil.mine": "m"} {
		if e := set(name, val); e != 0 {
			t.Fatalf("setxattr %s: %v", name, e)
		}
	}
	host := filepath.Join(dir, "file")
	buf := make([]byte, 64)
	for hostName, want := range map[string]string{"user.veil.t.overlay.opaque": "y", "user.veil.u.mine": "m", "user.plain": "p"} {
		if n, err := unix.Getxattr(host, hostName, buf); err != nil || string(buf[:n]) != want {
			t.Errorf("host %s: %q, %v", hostName, buf[:max(n, 0)], err)
		}
	}
	if _, err := unix.Getxattr(host, "trusted.overlay.opaque", buf); err == nil {
		t.Error("the sandbox's trusted.* reached the host's trusted.*")
	}
	// A host name under user.veil. that the gofer did not make is hidden.
	if err := unix.Setxattr(host, "user.veil.other", []byte("o"), 0); err != nil {
		t.Fatal(err)
	}
	resp, _ := tc.call(&proto.Request{Op: &proto.Request_Listxattr{Listxattr: &proto.ListxattrReq{Handle: f}}})
	var names []string
	for _, n := range resp.GetListxattr().GetNames() {
		names = append(names, string(n))
	}
	slices.Sort(names)
	if want := []string{"trusted.overlay.opaque", "user.plain", "user.veil.mine"}; !slices.Equal(names, want) {
		t.Errorf("listxattr: %q, want %q", names, want)
	}
	resp, _ = tc.call(&proto.Request{Op: &proto.Request_Getxattr{Getxattr: &proto.GetxattrReq{Handle: f, Name: []byte("trusted.overlay.opaque")}}})
	if resp.Errno != 0 || string(resp.GetGetxattr().Value) != "y" {
		t.Errorf("getxattr trusted: %d %q", resp.Errno, resp.GetGetxattr().GetValue())
	}
	if e := tc.errno(&proto.Request{Op: &proto.Request_Removexattr{Removexattr: &proto.RemovexattrReq{Handle: f, Name: []byte("trusted.overlay.opaque")}}}); e != 0 {
		t.Errorf("removexattr trusted: %v", e)
	}
	// Legal in the sandbox (253 bytes) but too long once mapped.
	if e := set("trusted."+strings.Repeat("a", 245), "x"); e != unix.ERANGE {
		t.Errorf("over-long mapped name: %v, want ERANGE", e)
	}
}

// Version 1 sessions keep version 1's xattrs: user.* only, as named.
func TestXattrVersion1(t *testing.T) {
	dir := tree(t)
	rfd, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	pfd, err := openProcSelfFD()
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(rfd, pfd, false)
	defer s.closeAll()
	if r, _ := s.handle(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: 1}}}); r.GetVersion().GetVersion() != 1 {
		t.Fatalf("handshake: %v", r)
	}
	r, _ := s.handle(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: s.root, Name: []byte("trusted.x"), Value: []byte("v")}}})
	if unix.Errno(r.Errno) != unix.EOPNOTSUPP {
		t.Errorf("trusted.* under version 1: errno %d, want EOPNOTSUPP", r.Errno)
	}
}
