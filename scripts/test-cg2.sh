#!/usr/bin/env bash
# The cgroup v2 leg: the functional conformance cases (verdicts, limits hit,
# nothing left behind; not timing precision) under a pure cgroup v2 kernel,
# in the throwaway QEMU guest of ../shared/tools/cg2vm. Test binaries are
# built here and run there; the guest sees the host's root read-only.
# The isolate backend's cases run against the real isolate 2.6 there
# (scripts/setup-isolate.sh sets it up in the guest).
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
pkgs=(tests cgroup executor executor/native executor/isolate)
mkdir -p "$share/testdata"
make --no-print-directory -s build BIN="$share/sandboxd"
for pkg in "${pkgs[@]}"; do
	mkdir -p "$share/$pkg"
	go test -c -o "$share/${pkg//\//-}.test" "./$pkg"
done
gcc -O1 -Wall -pthread -o "$share/probe" testdata/progs/probe.c
mkdir -p "$share/progs"
for src in testdata/progs/*.c; do # as the tests' installProg builds them
	prog=$(basename "$src" .c)
	[ "$prog" = probe ] || gcc -O1 -Wall -o "$share/progs/$prog" "$src"
done
cp -r testdata/sessions testdata/fake-isolate "$share/testdata/"
cp scripts/setup-isolate.sh "$share/"
# The guest sees the host's root but a fresh /tmp: a clone (and its
# ../shared) under /tmp is not there, so the isolate builds go in $share.
isolate_tools=$share/isolate-tools
cp -r "$(cd .. && pwd)/shared/tools/isolate" "$isolate_tools"

# The guest runs this with its /bin/sh; results come back in $share.
cat > "$share/run.sh" <<GUEST
export SANDBOXD_BIN=$share/sandboxd SANDBOXD_PROBE=$share/probe SANDBOXD_PROGS=$share/progs SANDBOXD_FUNCTIONAL_ONLY=1
SANDBOXD_ISOLATE=\$(ISOLATE_TOOLS=$isolate_tools sh $share/setup-isolate.sh) || exit 1
export SANDBOXD_ISOLATE
echo "cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
$share/sandboxd check || exit 1
status=0
$(for pkg in "${pkgs[@]}"; do
	n=${pkg//\//-}
	echo "cd $share/$pkg && $share/$n.test -test.count=1 -test.v -test.timeout 20m > $share/$n.log 2>&1 || status=1"
done)
sh $share/placement.sh || status=1
exit \$status
GUEST

# The legs where sandboxd's own cgroup is not the host's root: (a) a nested,
# delegated cgroup, as under a systemd unit with Delegate=yes, the judge in
# its leaf; (b) a simulated container: a private cgroup namespace rooted at
# /sys/fs/cgroup/ctr, cgroup2 mounted afresh, its root holding processes.
# Each runs the verdict and clean-up cases (short under emulation), then
# sees from outside that no group of sandboxd's is left anywhere.
cases='^(TestCgroupV2Placement|TestExitCode|TestCPUTimeLimit|TestMemoryLimit|TestForkBombIsContained|TestEndOfInputLeavesNothing|TestKill9LeavesNoProcessAndNextStartCleansUp)$'
tests="$share/tests.test -test.count=1 -test.v -test.timeout 10m -test.run '$cases'"
cat > "$share/placement.sh" <<GUEST
cg=/sys/fs/cgroup
status=0
echo "+memory +pids" > \$cg/cgroup.subtree_control
mkdir -p \$cg/judge.slice/judge.service/leaf \$cg/ctr
echo "+memory +pids" > \$cg/judge.slice/cgroup.subtree_control
cd $share/tests
sh -c "echo 0 > \$cg/judge.slice/judge.service/leaf/cgroup.procs && $share/sandboxd check && SANDBOXD_TEST_CGROUP_BASE=\$cg/judge.slice/judge.service exec $tests" > $share/tests-delegated.log 2>&1 || { status=1; echo "delegated leg failed:"; tail -n 20 $share/tests-delegated.log; }
unshare --pid --fork --mount --mount-proc sh -c "echo 0 > \$cg/ctr/cgroup.procs && exec unshare --cgroup --mount sh $share/container.sh" > $share/tests-container.log 2>&1 || { status=1; echo "container leg failed:"; tail -n 20 $share/tests-container.log; }
left=\$(find \$cg -type d -name 'sandboxd-*')
if [ -n "\$left" ]; then echo "left behind: \$left"; status=1; fi
echo "cgroups after the legs:"; find \$cg/judge.slice \$cg/ctr -type d
exit \$status
GUEST
cat > "$share/container.sh" <<GUEST
umount /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || exit 1
echo "the container's root holds: \$(cat /sys/fs/cgroup/cgroup.procs | tr '\\n' ' ')"
# Refused while the root holds other processes, saying what to do.
$share/sandboxd check --no-move-processes > refused.txt && { echo "check --no-move-processes passed"; exit 1; }
sed 's/^/(refused) /' refused.txt
grep -q '^FAIL cgroups .*holds other processes (pids 1) and --no-move-processes' refused.txt || { echo "the refusal does not name pid 1 and the flag"; exit 1; }
$share/sandboxd check || { echo "check failed in the container"; exit 1; }
SANDBOXD_TEST_CGROUP_BASE=/sys/fs/cgroup exec $tests
GUEST

status=0
CG2VM_TIMEOUT=${CG2VM_TIMEOUT:-1200} "$cg2vm" -s "$share" -m 4096 "$share/run.sh" | tr -d '\r' | grep -v '^\[' || status=$?
for log in "${pkgs[@]//\//-}" tests-delegated tests-container; do
	echo "== cgroup v2 guest: $log =="
	grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|PASS|FAIL|ok|panic)|^\s+\S+_test\.go:[0-9]+:|^(ok  |FAIL|--  |\(refused\)) ' "$share/$log.log" | grep -v '^=== RUN' || true
done
if [ "$status" -ne 0 ]; then
	echo "cgroup v2 leg FAILED" >&2
	exit 1
fi
echo "cgroup v2 leg passed"
