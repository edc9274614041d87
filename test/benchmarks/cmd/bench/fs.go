package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/veil-sandbox/veil/test/testutil"
)

// Filesystem rows (issue 4): metadata round trips through the gofer, bulk
// reads of donated FDs, writes to tmpfs and to the root, and two real
// tools. Fixtures live in a directory the sandbox sees at the same path
// (its root is the host's /, served by the gofer).

const (
	treeDirs, treeFiles = 100, 100 // the stat tree: 10,000 files
	bigFileMiB          = 256
	tarFiles, tarFileKB = 1000, 50 // the archive: 50 MB of text
)

type fsFixtures struct {
	dir     string // holds everything below
	tree    string
	bigFile string
	archive string
	err     error
}

var (
	fixOnce sync.Once
	fix     fsFixtures
)

func fixtures(e *benchEnv) *fsFixtures {
	fixOnce.Do(func() {
		dir, err := testutil.VisibleDir(filepath.Join(filepath.Dir(e.prog("x")), "fsdata"), "bench")
		if err != nil {
			fix.err = err
			return
		}
		fix = fsFixtures{dir: dir, tree: filepath.Join(dir, "tree"),
			bigFile: filepath.Join(dir, "big"), archive: filepath.Join(dir, "archive.tar.gz")}
		fix.err = makeFixtures(&fix)
	})
	return &fix
}

func makeFixtures(f *fsFixtures) error {
	if _, err := os.Stat(filepath.Join(f.tree, fmt.Sprintf("d%d/f%d", treeDirs-1, treeFiles-1))); err != nil {
		for d := range treeDirs {
			sub := filepath.Join(f.tree, fmt.Sprintf("d%d", d))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
			for i := range treeFiles {
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
					return err
				}
			}
		}
	}
	if st, err := os.Stat(f.bigFile); err != nil || st.Size() != bigFileMiB<<20 {
		if err := writeBigFile(f.bigFile); err != nil {
			return err
		}
	}
	if _, err := os.Stat(f.archive); err != nil {
		if err := writeArchive(f.archive); err != nil {
			return err
		}
	}
	return nil
}

// writeBigFile writes real blocks (not a sparse file), so reads copy data.
func writeBigFile(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	r := rand.New(rand.NewSource(1))
	block := make([]byte, 1<<20)
	for range bigFileMiB {
		r.Read(block)
		w.Write(block)
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeArchive makes a gzipped tar of text files that compress about as
// well as source code does.
func writeArchive(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	r := rand.New(rand.NewSource(2))
	words := strings.Fields("func return if else for range struct the a of file data error nil int string byte map chan go defer select case")
	for i := range tarFiles {
		var b strings.Builder
		for b.Len() < tarFileKB<<10 {
			b.WriteString(words[r.Intn(len(words))])
			if r.Intn(8) == 0 {
				b.WriteString("\n")
			} else {
				b.WriteString(" ")
			}
		}
		hdr := &tar.Header{Name: fmt.Sprintf("src/d%d/f%d.txt", i/50, i), Mode: 0o644, Size: int64(b.Len()),
			ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(b.String())); err != nil {
			return err
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, out} {
		if err := c.Close(); err != nil {
			return err
		}
	}
	return nil
}

// withFixtures runs fn once the fixtures exist.
func withFixtures(e *benchEnv, fn func(f *fsFixtures) result) result {
	f := fixtures(e)
	if f.err != nil {
		return result{err: fmt.Errorf("fixtures: %w", f.err)}
	}
	return fn(f)
}

// wallMS is the wall time of one run of argv, natively or sandboxed
// (including the sandbox's start), in ms; stdout must equal want when
// want is not empty.
func wallMS(runsc []string, want string, argv ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd, cleanup, err := command(ctx, runsc, argv...)
	if err != nil {
		return result{err: err}
	}
	defer cleanup()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		return result{err: fmt.Errorf("%v: %s", err, lastLine([]byte(stderr.String())))}
	}
	if want != "" && strings.TrimSpace(string(out)) != want {
		return result{err: fmt.Errorf("output %q, native gave %q", lastLine(out), want)}
	}
	return result{value: float64(d.Microseconds()) / 1000}
}

// nativeOutput is what argv prints natively, the reference a sandboxed
// run must reproduce.
func nativeOutput(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func init() {
	register(30, func(e *benchEnv) []bench {
		iters := func(n int) string { return strconv.Itoa(max(n/e.scale, 10)) }
		scratch := func(name string) string {
			return filepath.Join(os.TempDir(), fmt.Sprintf("veil-bench-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()))
		}
		findCmd := []string{"/bin/sh", "-c", "find /usr | wc -l"}
		var findWant string
		untar := func(rs []string) result {
			return withFixtures(e, func(f *fsFixtures) result {
				dst := scratch("untar")
				defer os.RemoveAll(dst)
				return wallMS(rs, strconv.Itoa(tarFiles), "/bin/sh", "-c",
					fmt.Sprintf("mkdir -p %s && tar -xzf %s -C %s && find %s -type f | wc -l", dst, f.archive, dst, dst))
			})
		}
		randWrite := func(rs []string, dir string, n int) result {
			return nsPerOp(rs, e.prog("randwrite"), iters(n), filepath.Join(dir, fmt.Sprintf("rw-%d-%d", os.Getpid(), time.Now().UnixNano())))
		}
		return []bench{
			{
				name: "open+fstat+close of a rootfs file", unit: "µs",
				native: func() result { return scaleBy(nsPerOp(nil, e.prog("ofc"), iters(200000), "/usr/bin/env"), 1e-3) },
				sandbox: func(rs []string) result {
					return scaleBy(nsPerOp(rs, e.prog("ofc"), iters(5000), "/usr/bin/env"), 1e-3)
				},
			},
			{
				name: "stat of 10,000 files in a tree (first pass)", unit: "ms",
				native: func() result {
					return withFixtures(e, func(f *fsFixtures) result {
						return metric(nil, "ms", e.prog("statmany"), f.tree, strconv.Itoa(treeDirs), strconv.Itoa(treeFiles))
					})
				},
				sandbox: func(rs []string) result {
					return withFixtures(e, func(f *fsFixtures) result {
						return metric(rs, "ms", e.prog("statmany"), f.tree, strconv.Itoa(treeDirs), strconv.Itoa(treeFiles))
					})
				},
			},
			{
				name: "find /usr, lines counted (wall, incl. start)", unit: "ms",
				native: func() result {
					findWant = nativeOutput(findCmd...)
					return wallMS(nil, findWant, findCmd...)
				},
				sandbox: func(rs []string) result { return wallMS(rs, findWant, findCmd...) },
			},
			{
				name: fmt.Sprintf("sequential read of a %d MiB rootfs file", bigFileMiB), unit: "MB/s",
				native: func() result {
					return withFixtures(e, func(f *fsFixtures) result { return metric(nil, "MB/s", e.prog("seqread"), f.bigFile) })
				},
				sandbox: func(rs []string) result {
					return withFixtures(e, func(f *fsFixtures) result { return metric(rs, "MB/s", e.prog("seqread"), f.bigFile) })
				},
			},
			{
				name: "4 KiB random write, /tmp (tmpfs in Veil)", unit: "µs",
				native:  func() result { return scaleBy(randWrite(nil, os.TempDir(), 100000), 1e-3) },
				sandbox: func(rs []string) result { return scaleBy(randWrite(rs, "/tmp", 20000), 1e-3) },
			},
			{
				name: "4 KiB random write, rootfs (Veil's root overlay)", unit: "µs",
				native: func() result {
					return withFixtures(e, func(f *fsFixtures) result { return scaleBy(randWrite(nil, f.dir, 100000), 1e-3) })
				},
				sandbox: func(rs []string) result {
					return withFixtures(e, func(f *fsFixtures) result { return scaleBy(randWrite(rs, f.dir, 20000), 1e-3) })
				},
			},
			{
				name: fmt.Sprintf("`tar -xzf` of %d MB in %d files into /tmp (wall, incl. start)", tarFiles*tarFileKB/1000, tarFiles), unit: "ms",
				native:  func() result { return untar(nil) },
				sandbox: untar,
			},
		}
	})
}
