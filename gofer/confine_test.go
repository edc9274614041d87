package gofer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// The confined gofer runs in a child process (this test binary re-run):
// Confine changes the whole process for good.
const (
	childRootEnv = "VEIL_GOFER_TEST_CONFINE_ROOT"
	childModeEnv = "VEIL_GOFER_TEST_CONFINE_MODE"
)

func TestMain(m *testing.M) {
	if root := os.Getenv(childRootEnv); root != "" {
		os.Exit(confinedChild(root, os.Getenv(childModeEnv)))
	}
	os.Exit(m.Run())
}

// confinedChild confines itself to root and then serves FD 3, or makes a
// forbidden syscall.
func confinedChild(root, mode string) int {
	if err := Confine(root); err != nil {
		if errors.Is(err, ErrNeedsNoCgo) {
			return exitNoCgo
		}
		fmt.Fprintln(os.Stderr, "Confine:", err)
		return 2
	}
	switch mode {
	case "forbidden":
		// socket(2) is on no allowlist of the gofer: this must kill us.
		unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		return 0
	case "outside":
		// After pivot_root the host's files are gone from view.
		if _, err := unix.Open(filepath.Join(root, "file"), unix.O_RDONLY, 0); err == nil {
			return 3
		}
		fd, err := unix.Open("/file", unix.O_RDONLY, 0)
		if err != nil {
			return 4
		}
		unix.Close(fd)
		return 0
	}
	if err := Serve(3, "/", false); err != nil {
		fmt.Fprintln(os.Stderr, "Serve:", err)
		return 1
	}
	return 0
}

// exitNoCgo tells the parent that this test binary cannot confine itself.
const exitNoCgo = 77

// skipIfNoCgo skips when the child could not confine a cgo (or -race)
// binary.
func skipIfNoCgo(t *testing.T, cmd *exec.Cmd) {
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == exitNoCgo {
		t.Skip("test binary uses cgo (e.g. -race): Confine needs CGO_ENABLED=0")
	}
}

func needRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("Confine needs root: it creates a mount namespace, pivots and drops capabilities")
	}
}

// startConfined runs the child in a new mount namespace; conn, if not -1,
// becomes its FD 3.
func startConfined(t *testing.T, root, mode string, conn *os.File) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRootEnv+"="+root, childModeEnv+"="+mode)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: CloneFlags}
	if conn != nil {
		cmd.ExtraFiles = []*os.File{conn}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestConfineServes(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "gofer")
	cmd := startConfined(t, dir, "serve", child)
	child.Close()

	tc := &testClient{t: t, c: proto.NewConn(fds[0])}
	if err := tc.c.Send(&proto.Request{Id: 1, Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: 1}}}, nil); err != nil {
		t.Fatal(err)
	}
	tc.id = 1
	b, _, err := tc.c.RecvRaw()
	if err != nil {
		cmd.Wait()
		skipIfNoCgo(t, cmd)
		t.Fatalf("confined gofer did not answer: %v", err)
	}
	resp, err := proto.DecodeResponse(b)
	if err != nil || resp.Errno != 0 {
		t.Fatalf("handshake: %v %v", err, resp)
	}
	tc.root = resp.GetVersion().Root
	// Exercise every operation, so a syscall missing from the allowlist
	// kills the child and fails the test.
	f := tc.mustWalk(tc.root, "file")
	fd, e := tc.open(f, unix.O_RDWR)
	if e != 0 {
		t.Fatal(e)
	}
	buf := make([]byte, 5)
	if n, _ := unix.Pread(fd, buf, 0); string(buf[:n]) != "hello" {
		t.Errorf("read %q", buf[:n])
	}
	esc, attr, e := tc.walk(tc.root, "escape")
	if e != 0 || attr.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("escape symlink: %v %v", e, attr)
	}
	if _, e := tc.open(esc, unix.O_RDONLY); e != unix.ELOOP {
		t.Errorf("open escape: %v", e)
	}
	uid, gid := uint32(1000), uint32(1000)
	reqs := []*proto.Request{
		{Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: tc.root}}},
		{Op: &proto.Request_Readlink{Readlink: &proto.ReadlinkReq{Handle: esc}}},
		{Op: &proto.Request_Stat{Stat: &proto.StatReq{Handle: f}}},
		{Op: &proto.Request_StatFs{StatFs: &proto.StatFSReq{Handle: tc.root}}},
		{Op: &proto.Request_Create{Create: &proto.CreateReq{Dir: tc.root, Name: []byte("c"), Flags: unix.O_RDWR, Mode: 0o4755, Uid: uid, Gid: gid}}},
		{Op: &proto.Request_Mkdir{Mkdir: &proto.MkdirReq{Dir: tc.root, Name: []byte("d"), Mode: 0o755, Uid: uid, Gid: gid}}},
		{Op: &proto.Request_Mknod{Mknod: &proto.MknodReq{Dir: tc.root, Name: []byte("p"), Mode: unix.S_IFIFO | 0o600, Uid: uid, Gid: gid}}},
		{Op: &proto.Request_Symlink{Symlink: &proto.SymlinkReq{Dir: tc.root, Name: []byte("s"), Target: []byte("c"), Uid: uid, Gid: gid}}},
		{Op: &proto.Request_Link{Link: &proto.LinkReq{Target: f, Dir: tc.root, Name: []byte("h")}}},
		{Op: &proto.Request_Rename{Rename: &proto.RenameReq{OldDir: tc.root, OldName: []byte("h"), NewDir: tc.root, NewName: []byte("h2")}}},
		{Op: &proto.Request_Unlink{Unlink: &proto.UnlinkReq{Dir: tc.root, Name: []byte("h2")}}},
		{Op: &proto.Request_Rmdir{Rmdir: &proto.RmdirReq{Dir: tc.root, Name: []byte("d")}}},
		{Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: f, Mask: 0x3f, Mode: 0o600, Uid: uid, Gid: gid, Size: 3,
			Atime: &proto.Timespec{Nsec: unix.UTIME_NOW}, Mtime: &proto.Timespec{Sec: 7}}}},
		{Op: &proto.Request_Close{Close: &proto.CloseReq{Handles: []uint32{esc}}}},
	}
	for _, r := range reqs {
		if resp, _ := tc.call(r); resp.Errno != 0 {
			t.Errorf("%T: errno %d", r.Op, resp.Errno)
		}
	}
	// xattrs depend on the host filesystem; only a crash matters here.
	tc.call(&proto.Request{Op: &proto.Request_Setxattr{Setxattr: &proto.SetxattrReq{Handle: f, Name: []byte("user.a"), Value: []byte("b")}}})
	tc.call(&proto.Request{Op: &proto.Request_Getxattr{Getxattr: &proto.GetxattrReq{Handle: f, Name: []byte("user.a")}}})
	tc.call(&proto.Request{Op: &proto.Request_Listxattr{Listxattr: &proto.ListxattrReq{Handle: f}}})
	tc.call(&proto.Request{Op: &proto.Request_Removexattr{Removexattr: &proto.RemovexattrReq{Handle: f, Name: []byte("user.a")}}})

	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "c"), &st); err != nil || st.Uid != uid || st.Mode != unix.S_IFREG|0o4755 {
		t.Errorf("created file: %v uid %d mode %o", err, st.Uid, st.Mode)
	}
	tc.c.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("confined gofer: %v (a signal here means a syscall missing from the seccomp allowlist)", err)
	}
}

func TestConfineHidesHost(t *testing.T) {
	needRoot(t)
	cmd := startConfined(t, tree(t), "outside", nil)
	err := cmd.Wait()
	skipIfNoCgo(t, cmd)
	if err != nil {
		t.Fatalf("confined child saw the host's tree or not its root: %v", err)
	}
}

func TestConfineSeccompKills(t *testing.T) {
	needRoot(t)
	cmd := startConfined(t, tree(t), "forbidden", nil)
	err := cmd.Wait()
	skipIfNoCgo(t, cmd)
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Fatalf("forbidden syscall: %v, want death by SIGSYS", err)
	}
}

func TestConfineRefusesHostNamespace(t *testing.T) {
	// Without a mount namespace of its own Confine must not touch mounts.
	// The check runs before anything changes, so calling it here is safe.
	err := checkOwnMountNS()
	if err == nil {
		t.Skip("test process already runs in a mount namespace of its own")
	}
	if !strings.Contains(err.Error(), "CLONE_NEWNS") {
		t.Errorf("refusal does not say what to do: %v", err)
	}
}
