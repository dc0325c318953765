#!/bin/sh
# Sets up the isolate build that suits this host's cgroups for the isolate
# backend's tests, and prints its path: isolate 1.10.1 on cgroup v1, 2.6 on
# cgroup v2 (../shared/tools/isolate, or $ISOLATE_TOOLS; see its README). Each
# build reads its configuration from the path it was built with, under /run
# (a tmpfs, so written afresh after every boot). Idempotent; run as root.
# On cgroup v2, isolate 2.x needs a cgroup of its own with the memory and pids
# controllers (under systemd, isolate.service and isolate-cg-keeper make one):
# here it is /sys/fs/cgroup/isolate-test, beside the cgroup this script runs in,
# which must be the root (the cgroup v2 guest's) so that it may enable them.
set -eu
tools=${ISOLATE_TOOLS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/tools/isolate}
conf=/run/isolate-test
mkdir -p "$conf"
if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
	version=1.10.1
	mkdir -p /var/local/lib/isolate
	cat >"$conf/isolate-$version.cf" <<EOF
box_root = /var/local/lib/isolate
cg_root = /sys/fs/cgroup
first_uid = 60000
first_gid = 60000
num_boxes = 1000
EOF
else
	version=2.6
	own=$(sed -n 's/^0:://p' /proc/self/cgroup)
	if [ "$own" != / ]; then
		echo "setup-isolate: this script runs in cgroup $own, not the root: it cannot give isolate a cgroup of its own here" >&2
		exit 1
	fi
	cg=/sys/fs/cgroup/isolate-test
	mkdir -p "$cg" /run/isolate-test/locks /tmp/isolate-boxes
	echo "+memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
	echo "+memory +pids" >"$cg/cgroup.subtree_control"
	cat >"$conf/isolate-$version.cf" <<EOF
box_root = /tmp/isolate-boxes
lock_root = /run/isolate-test/locks
cg_root = $cg
first_uid = 60000
first_gid = 60000
num_boxes = 1000
EOF
fi
bin=$tools/$version/isolate
if [ ! -x "$bin" ]; then
	echo "setup-isolate: $bin is missing (shared/ must stand beside the repository, or set ISOLATE_TOOLS)" >&2
	exit 1
fi
"$bin" --version >/dev/null
echo "$bin"
