# Run by TestBusyboxScript as `/bin/busybox sh script.sh TAG`, once natively
# and once in a sandbox; the two outputs must match line by line and both
# runs must exit 3. Nothing printed may depend on where it runs (no PIDs,
# no times), except what the test filters out of `ls -la /`.
set -u
# Start from a directory that exists alike inside and out: runsc do's
# default working directory is "/" when the caller's is under /tmp.
cd /usr/share
dir=/tmp/veil-e2e-script-$1
rm -rf "$dir"
mkdir -p "$dir"

echo "== pipes"
echo "alpha beta gamma delta" | tr ' ' '\n' | sort -r | head -n 3
echo "== subshells"
(cd /usr && pwd; inner=yes; echo "inner=$inner")
echo "outer=${inner:-unset} pwd=$(pwd)"
echo "nested: $(echo "$(echo deep)" | tr a-z A-Z)"
echo "== redirection into /tmp"
printf 'one\ntwo\n' > "$dir/f"
echo three >> "$dir/f"
cat < "$dir/f"
wc -l < "$dir/f"
ls /nonexistent-veil-e2e 2> "$dir/err"
echo "ls status $?"
cat "$dir/err"
{ echo to-stderr >&2; echo to-stdout; } 2>&1 | sort
echo "== ls -la /"
ls -la /
echo "== os-release"
cat /etc/os-release
echo "== sort | uniq -c"
printf 'b\na\nb\nc\nb\na\n' | sort | uniq -c
echo "== find"
find /usr/lib -name "*.so*" | wc -l
echo "find status $?"
echo "== sleep"
sleep 0.2
echo "slept status $?"
echo "== background jobs"
(sleep 0.3; echo job1 > "$dir/j1") &
(sleep 0.1; echo job2 > "$dir/j2") &
(echo job3 > "$dir/j3") &
wait
echo "wait status $?"
cat "$dir/j1" "$dir/j2" "$dir/j3"
rm -rf "$dir"
echo "== exit"
exit 3
