package proc

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/limits"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

func TestMangle(t *testing.T) {
	for in, want := range map[string]string{
		"/plain":     "/plain",
		"/a b":       `/a\040b`,
		"/t\tn\nb\\": `/t\011n\012b\134`,
	} {
		if got := mangle(in); got != want {
			t.Errorf("mangle(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnonName(t *testing.T) {
	for mode, want := range map[uint32]string{
		unix.S_IFIFO: "pipe:[7]", unix.S_IFSOCK: "socket:[7]", 0: "anon_inode:[7]",
	} {
		if got := anonName(vfs.Statx{Mode: uint16(mode), Ino: 7}); got != want {
			t.Errorf("anonName(%o) = %q, want %q", mode, got, want)
		}
	}
}

func TestLimitsText(t *testing.T) {
	txt := limitsText(limits.NewDefault())
	ls := strings.Split(strings.TrimSpace(txt), "\n")
	if len(ls) != 17 || !strings.HasPrefix(ls[0], "Limit ") {
		t.Fatalf("limits has %d lines:\n%s", len(ls), txt)
	}
	if !strings.Contains(txt, "Max open files            1024                 4096                 files") {
		t.Errorf("Max open files row:\n%s", txt)
	}
}

// credsCtx carries credentials as a task would.
type credsCtx struct {
	context.Context
	c *auth.Credentials
}

func (c credsCtx) Value(k any) any {
	if k == auth.CtxCredentials {
		return c.c
	}
	return c.Context.Value(k)
}

func TestHostnameNeedsSysAdmin(t *testing.T) {
	k := kernel.New(kernel.Config{Hostname: "before"})
	fs := New(k)
	user := credsCtx{context.Background(), auth.NewUser(1000, 1000, nil)}
	if err := fs.writeHostname(user, []byte("x\n")); err != unix.EPERM {
		t.Errorf("unprivileged write: %v, want EPERM", err)
	}
	root := credsCtx{context.Background(), auth.NewRoot()}
	if err := fs.writeHostname(root, []byte("after\n")); err != nil || k.Hostname() != "after" {
		t.Errorf("root write: %v, hostname %q", err, k.Hostname())
	}
	long := strings.Repeat("h", 80)
	fs.writeHostname(root, []byte(long))
	if k.Hostname() != long[:64] {
		t.Errorf("a long hostname is cut to 64 bytes: %d", len(k.Hostname()))
	}
}

func TestSysTree(t *testing.T) {
	fs := New(kernel.New(kernel.Config{}))
	ctx := context.Background()
	var ino vfs.Inode = fs.sysDir()
	for _, name := range []string{"kernel", "random", "uuid"} {
		var err error
		if ino, err = ino.Lookup(ctx, name); err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
	}
	f := ino.(*fileInode)
	a, _ := f.read(ctx)
	b, _ := f.read(ctx)
	if len(a) != 37 || string(a) == string(b) {
		t.Errorf("uuid reads %q then %q", a, b)
	}
	if _, err := f.Open(ctx, unix.O_WRONLY); err != unix.EACCES {
		t.Errorf("opening uuid for writing: %v, want EACCES", err)
	}
}
