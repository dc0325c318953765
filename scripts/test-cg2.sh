#!/usr/bin/env bash
# The cgroup v2 leg: the functional conformance cases (verdicts, limits hit,
# nothing left behind; not timing precision) under a pure cgroup v2 kernel,
# in the throwaway QEMU guest of ../shared/tools/cg2vm. Test binaries are
# built here and run there; the guest sees the host's root read-only.
# SANDBOXD_ISOLATE (an absolute path), if set, goes to the guest's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cg2vm=${CG2VM:-$(cd .. && pwd)/shared/tools/cg2vm}
if [ ! -x "$cg2vm" ]; then
	echo "test-cg2: $cg2vm is missing (shared/ must stand beside the repository)" >&2
	exit 1
fi
[ -s "${CG2VM_CACHE:-/var/cache/cg2vm}/vmlinux" ] || "$cg2vm" setup

share=$(mktemp -d /tmp/sandboxd-cg2.XXXXXX)
trap 'rm -rf "$share"' EXIT
# The packages whose tests run there: the functional cases and the executor
# with each backend. Each is built to $share/<pkg, / as ->.test and runs in
# $share/<pkg>, so that its relative paths to testdata hold.
pkgs=(tests executor executor/native executor/isolate)
mkdir -p "$share/testdata"
go build -o "$share/sandboxd" ./cmd/sandboxd
for pkg in "${pkgs[@]}"; do
	mkdir -p "$share/$pkg"
	go test -c -o "$share/${pkg//\//-}.test" "./$pkg"
done
gcc -O1 -Wall -pthread -o "$share/probe" testdata/progs/probe.c
mkdir -p "$share/progs"
for prog in guess square pingpong; do
	gcc -O1 -Wall -o "$share/progs/$prog" "testdata/progs/$prog.c"
done
cp -r testdata/sessions testdata/fake-isolate "$share/testdata/"

# The guest runs this with its /bin/sh; results come back in $share.
cat > "$share/run.sh" <<GUEST
export SANDBOXD_BIN=$share/sandboxd SANDBOXD_PROBE=$share/probe SANDBOXD_PROGS=$share/progs SANDBOXD_FUNCTIONAL_ONLY=1
${SANDBOXD_ISOLATE:+export SANDBOXD_ISOLATE=$SANDBOXD_ISOLATE}
echo "cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
$share/sandboxd check || exit 1
status=0
$(for pkg in "${pkgs[@]}"; do
	n=${pkg//\//-}
	echo "cd $share/$pkg && $share/$n.test -test.count=1 -test.v -test.timeout 20m > $share/$n.log 2>&1 || status=1"
done)
exit \$status
GUEST

status=0
"$cg2vm" -s "$share" -m 4096 "$share/run.sh" | tr -d '\r' | grep -v '^\[' || status=$?
for pkg in "${pkgs[@]}"; do
	echo "== cgroup v2 guest: $pkg =="
	grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|PASS|FAIL|ok|panic)|^\s+\S+_test\.go:[0-9]+:' "$share/${pkg//\//-}.log" | grep -v '^=== RUN' || true
done
if [ "$status" -ne 0 ]; then
	echo "cgroup v2 leg FAILED" >&2
	exit 1
fi
echo "cgroup v2 leg passed"
