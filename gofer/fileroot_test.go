package gofer

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// A bind-mounted file is served with the file as the root handle: it can
// be opened and changed (when writable) but never walked from.
func TestFileRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- Serve(fds[1], file, ro) }()
		tc := &testClient{t: t, c: proto.NewConn(fds[0]), done: done}
		resp, _ := tc.call(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: proto.MaxVersion}}})
		v := resp.GetVersion()
		if resp.Errno != 0 || v.RootAttr.Mode&unix.S_IFMT != unix.S_IFREG || v.RootAttr.Size != 4 {
			t.Fatalf("handshake: errno %d, %v", resp.Errno, v)
		}
		tc.root = v.Root
		if _, _, e := tc.walk(tc.root, "x"); e != unix.ENOTDIR {
			t.Errorf("walk from a file root: %v, want ENOTDIR", e)
		}
		fd, e := tc.open(tc.root, unix.O_RDWR)
		if ro {
			if e != unix.EROFS {
				t.Errorf("read-only file root opened for writing: %v", e)
			}
		} else if e != 0 {
			t.Errorf("open rw: %v", e)
		} else {
			unix.Close(fd)
		}
		tc.c.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	// Only directories and regular files can be roots.
	unix.Mkfifo(filepath.Join(dir, "p"), 0o644)
	for _, name := range []string{"p"} {
		fds, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		done := make(chan error, 1)
		go func() { done <- Serve(fds[1], filepath.Join(dir, name), true) }()
		tc := &testClient{t: t, c: proto.NewConn(fds[0]), done: done}
		resp, _ := tc.call(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: proto.MaxVersion}}})
		if unix.Errno(resp.Errno) != unix.ENOTDIR {
			t.Errorf("root %s: errno %d, want ENOTDIR", name, resp.Errno)
		}
		tc.c.Close()
		<-done
	}
}
