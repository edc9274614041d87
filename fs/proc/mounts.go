package proc

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// mountView is one mount as a process sees it from its root.
type mountView struct {
	info  vfs.MountInfo
	point string
	fs    string
	opts  string
}

// mountViews lists the mounts reachable from t's root, parents first.
func (fs *Filesystem) mountViews(t *kernel.Task) ([]mountView, error) {
	if t.Exited() || t.FSContext() == nil {
		return nil, unix.ENOENT
	}
	root := t.FSContext().Root()
	v := fs.k.VFS()
	var out []mountView
	for _, mi := range v.MountInfos() {
		p, ok := v.PathnameWithin(root, mi.Mount.Root())
		if !ok {
			continue
		}
		fl := mi.Mount.Flags()
		opts := "rw"
		if fl&vfs.MountReadOnly != 0 {
			opts = "ro"
		}
		for _, o := range []struct {
			bit  uint32
			name string
		}{{vfs.MountNoSUID, "nosuid"}, {vfs.MountNoDev, "nodev"}, {vfs.MountNoExec, "noexec"}} {
			if fl&o.bit != 0 {
				opts += "," + o.name
			}
		}
		out = append(out, mountView{info: mi, point: p, fs: mi.Mount.Filesystem().Impl().Name(), opts: opts})
	}
	return out, nil
}

// mangle escapes what would break the space-separated format, as Linux's
// seq_escape does.
func mangle(s string) string {
	if !strings.ContainsAny(s, " \t\n\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (fs *Filesystem) mounts(_ context.Context, t *kernel.Task) (string, error) {
	ms, err := fs.mountViews(t)
	if err != nil {
		return "", nil
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s %s %s %s 0 0\n", m.fs, mangle(m.point), m.fs, m.opts)
	}
	return b.String(), nil
}

func (fs *Filesystem) mountinfo(_ context.Context, t *kernel.Task) (string, error) {
	ms, err := fs.mountViews(t)
	if err != nil {
		return "", nil
	}
	var b strings.Builder
	for _, m := range ms {
		dev := m.info.Mount.Filesystem().Dev()
		fmt.Fprintf(&b, "%d %d %d:%d %s %s %s - %s %s %s\n",
			m.info.Mount.ID(), m.info.ParentID, 0, dev, mangle(m.info.Root), mangle(m.point), m.opts,
			m.fs, m.fs, strings.SplitN(m.opts, ",", 2)[0])
	}
	return b.String(), nil
}
