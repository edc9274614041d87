package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRootOverlay changes the rootfs in every way from inside a sandbox
// with the default memory overlay: the sandbox sees its changes (copy-up,
// whiteouts, opaque directories, renames (mv copies a lower directory on
// EXDEV), hard links) and the host rootfs
// is left exactly as it was. With --overlay=none the same changes land on
// the host.
func TestRootOverlay(t *testing.T) {
	script := `
cd /play
echo more >> lower && cat lower
chmod 600 lower && stat -c '%a' lower
rm gone && ls gone 2>/dev/null; echo gone=$?
mkdir -p dir/new && echo x > dir/new/f && ls dir | sort | tr '\n' ' '; echo
rm -r tree && mkdir tree && echo tree=$(ls tree | wc -l)
mv dir/a moved && cat moved
mv lowerdir otherdir && cat otherdir/x
cp -r otherdir copied && cat copied/x
ln moved hard && echo h >> hard && cat moved
ln -s lower sym && cat sym
echo new > /newfile && cat /newfile
find /play -type f | sort | tr '\n' ' '; echo
`
	b := newBundle(t, script)
	work := filepath.Join(b.rootfs, "play")
	files := map[string]string{
		"lower": "lower\n", "gone": "gone\n", "dir/a": "a\n", "tree/t1/deep": "deep\n",
		"lowerdir/x": "x\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755)
		if err := os.WriteFile(filepath.Join(work, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := func() string {
		var out []string
		filepath.Walk(b.rootfs, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !strings.HasPrefix(p, filepath.Join(b.rootfs, "bin")) {
				data := ""
				if fi.Mode().IsRegular() {
					d, _ := os.ReadFile(p)
					data = string(d)
				}
				out = append(out, p+" "+fi.Mode().String()+" "+data)
			}
			return nil
		})
		return strings.Join(out, "\n")
	}
	before := snapshot()

	r := b.run(t, 60*time.Second)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	wantLines(t, r, "lower", "more", "600", "gone=1", "a new ", "tree=0", "a", "x",
		"a", "h", "new",
		"/play/copied/x /play/dir/new/f /play/hard /play/lower /play/moved /play/otherdir/x ")
	if after := snapshot(); after != before {
		t.Errorf("the host rootfs changed under the memory overlay:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	r = b.run(t, 60*time.Second, "--overlay=none")
	if r.code != 0 {
		t.Fatalf("--overlay=none: exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	if got, _ := os.ReadFile(filepath.Join(work, "lower")); string(got) != "lower\nmore\n" {
		t.Errorf("--overlay=none: host lower reads %q", got)
	}
	if _, err := os.Stat(filepath.Join(work, "gone")); !os.IsNotExist(err) {
		t.Errorf("--overlay=none: gone still on the host (%v)", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b.rootfs, "newfile")); string(got) != "new\n" {
		t.Errorf("--overlay=none: /newfile on the host reads %q", got)
	}
}
