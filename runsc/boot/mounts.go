package boot

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/veil-sandbox/veil/fs/dev"
	"github.com/veil-sandbox/veil/fs/gofer"
	"github.com/veil-sandbox/veil/fs/proc"
	"github.com/veil-sandbox/veil/fs/tmpfs"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/memory"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// buildMounts makes the sandbox's mount namespace: the gofer-served root,
// then the container's mounts, then /dev and a tmpfs /tmp if none was given.
func buildMounts(ctx context.Context, args *Args, mf *memory.File, k *kernel.Kernel) (*vfs.VirtualFilesystem, vfs.VirtualDentry, error) {
	v := vfs.New()
	if len(args.GoferFDs) == 0 {
		return nil, vfs.VirtualDentry{}, fmt.Errorf("no gofer connection for the root")
	}
	client, err := gofer.NewClient(args.GoferFDs[0])
	if err != nil {
		return nil, vfs.VirtualDentry{}, fmt.Errorf("connecting to the gofer: %w", err)
	}
	rootFS, err := v.NewFilesystem(ctx, gofer.NewFilesystem(client, mf))
	if err != nil {
		return nil, vfs.VirtualDentry{}, fmt.Errorf("root filesystem: %w", err)
	}
	var flags uint32
	if args.RootReadOnly || args.Overlay != "none" {
		flags |= vfs.MountReadOnly
	}
	root, err := v.MountRoot(ctx, rootFS, flags)
	if err != nil {
		return nil, vfs.VirtualDentry{}, err
	}
	mounted := map[string]bool{}
	mountAt := func(target string, impl vfs.FilesystemImpl, flags uint32) error {
		vd, err := v.GetDentryAt(ctx, &vfs.PathOperation{Root: root, Start: root, Path: target, FollowFinalSymlink: true})
		if err != nil {
			return fmt.Errorf("mount point %s: %w", target, err)
		}
		fs, err := v.NewFilesystem(ctx, impl)
		if err != nil {
			return err
		}
		if _, err := v.MountAt(ctx, fs, vd, flags); err != nil {
			return fmt.Errorf("mounting %s: %w", target, err)
		}
		mounted[path.Clean(target)] = true
		return nil
	}
	for _, m := range args.Mounts {
		var flags uint32
		if m.ReadOnly {
			flags |= vfs.MountReadOnly
		}
		switch m.Type {
		case "tmpfs":
			mode := uint32(01777)
			for _, o := range m.Options {
				if strings.HasPrefix(o, "mode=") {
					fmt.Sscanf(strings.TrimPrefix(o, "mode="), "%o", &mode)
				}
			}
			if err := mountAt(m.Destination, tmpfs.New(mf, tmpfs.Options{Mode: mode, OpenDevice: dev.Open}), flags); err != nil {
				return nil, vfs.VirtualDentry{}, err
			}
		case "proc":
			if err := mountAt(m.Destination, proc.New(k), flags); err != nil {
				return nil, vfs.VirtualDentry{}, err
			}
		case "sysfs", "devpts", "mqueue", "cgroup", "cgroup2":
			// Not yet provided: the filesystem issue brings them.
		default:
			return nil, vfs.VirtualDentry{}, fmt.Errorf("mount %s: type %q is not supported yet", m.Destination, m.Type)
		}
	}
	if !mounted["/proc"] {
		if err := mountAt("/proc", proc.New(k), 0); err != nil {
			return nil, vfs.VirtualDentry{}, err
		}
	}

	if !mounted["/dev"] {
		devFS, err := dev.New(ctx, mf)
		if err != nil {
			return nil, vfs.VirtualDentry{}, err
		}
		if err := mountAt("/dev", devFS, 0); err != nil {
			return nil, vfs.VirtualDentry{}, err
		}
	}
	if !mounted["/tmp"] {
		if err := mountAt("/tmp", tmpfs.New(mf, tmpfs.Options{Mode: 01777, OpenDevice: dev.Open}), 0); err != nil {
			return nil, vfs.VirtualDentry{}, err
		}
	}
	return v, root, nil
}
