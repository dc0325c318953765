#!/usr/bin/env bash
# setup-nix.sh - idempotent setup of Debian's Nix (nix-bin 2.8) with a
# multi-user nix-daemon on a machine WITHOUT systemd/init (the daemon is
# started directly in the background with setsid).
#
# Safe to re-run: installs only if missing, rewrites /etc/nix/nix.conf only if
# its content differs (then restarts the daemon it manages), starts the daemon
# only if it does not answer on its socket.
#
# Tunables (environment):
#   NIXBLD_USERS=10          number of nixbld build users (nixbld1..N)
#   SOCKET_DIR_MODE=0755     mode of /nix/var/nix/daemon-socket. 0755 lets ANY
#                            uid (e.g. sandbox uids 60000+N with no passwd
#                            entry and no groups) connect. Use 0770 to restrict
#                            to members of group nix-users (then the sandboxed
#                            process needs nix-users as a supplementary gid).
#   SELFTEST=1               build a trivial derivation as SELFTEST_UID via the
#   SELFTEST_UID=60000       daemon to prove sandboxed builds work.
#   NIX_DAEMON_LOG=/var/log/nix-daemon.log
#   NIX_DAEMON_PIDFILE=/run/nix-daemon.pid
#   NIX_SUBSTITUTERS=        binary caches of the daemon; empty (the default)
#                            for an offline machine such as CI, e.g.
#                            https://cache.nixos.org/ in production.
set -euo pipefail

NIXBLD_USERS=${NIXBLD_USERS:-10}
SOCKET_DIR_MODE=${SOCKET_DIR_MODE:-0755}
SELFTEST=${SELFTEST:-1}
SELFTEST_UID=${SELFTEST_UID:-60000}
SUBSTITUTERS=${NIX_SUBSTITUTERS:-}
LOG=${NIX_DAEMON_LOG:-/var/log/nix-daemon.log}
PIDFILE=${NIX_DAEMON_PIDFILE:-/run/nix-daemon.pid}
SOCK_DIR=/nix/var/nix/daemon-socket
SOCK=$SOCK_DIR/socket
CONF=/etc/nix/nix.conf
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive

log() { echo "setup-nix: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- 1. package
if ! dpkg-query -W -f='${Status}' nix-bin 2>/dev/null | grep -q 'install ok installed'; then
    log "installing nix-bin"
    # --no-install-recommends: the recommended nix-setup-systemd only adds
    # systemd units/tmpfiles (+libpam-systemd); everything it does is done below.
    apt_install() {
        apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            nix-bin util-linux
    }
    apt_install || { apt-get update -q && apt_install; } || die "apt-get install nix-bin failed"
fi
[ -x /usr/bin/nix-daemon ] || die "/usr/bin/nix-daemon missing after install"

# ------------------------------------------------------- 2. groups and users
getent group nixbld    >/dev/null || groupadd --system nixbld
getent group nix-users >/dev/null || groupadd --system nix-users
NOLOGIN=$(command -v nologin || echo /usr/sbin/nologin)
for n in $(seq 1 "$NIXBLD_USERS"); do
    u=nixbld$n
    if ! id "$u" >/dev/null 2>&1; then
        useradd --system --comment "Nix build user $n" --home-dir /var/empty \
            --no-create-home --gid nixbld --groups nixbld --no-user-group \
            --shell "$NOLOGIN" "$u"
    fi
    # Nix enumerates build users from the group's *member list* (gr_mem).
    id -nG "$u" | tr ' ' '\n' | grep -qx nixbld || usermod -a -G nixbld "$u"
done

# ------------------------------------------------------------- 3. nix.conf
SANDBOX_PATHS=""
for p in /bin /usr /lib /lib64; do [ -e "$p" ] && SANDBOX_PATHS="$SANDBOX_PATHS $p"; done
mkdir -p /etc/nix
NEWCONF=$(mktemp)
trap 'rm -f "$NEWCONF"' EXIT
cat >"$NEWCONF" <<EOF
# Managed by setup-nix.sh - local edits will be overwritten.
build-users-group = nixbld
sandbox = true
# fail instead of silently building unsandboxed if namespaces are unavailable
sandbox-fallback = false
sandbox-paths =${SANDBOX_PATHS}
# empty on an offline machine: never try binary caches
substituters =${SUBSTITUTERS:+ $SUBSTITUTERS}
trusted-substituters =
# GC: a rooted .drv keeps its build inputs' outputs (roots for nix-shell envs)
keep-outputs = true
keep-derivations = true
max-jobs = auto
allowed-users = *
trusted-users = root
# enables 'nix store ping' (health check)
experimental-features = nix-command
EOF
CONF_CHANGED=0
if ! cmp -s "$NEWCONF" "$CONF" 2>/dev/null; then
    install -m 0644 -o root -g root "$NEWCONF" "$CONF"
    CONF_CHANGED=1
    log "wrote $CONF"
fi

# ------------------------------------------------------------- 4. /nix tree
# (nix-daemon/LocalStore creates the rest, e.g. /nix/store 1775 root:nixbld,
#  and the per-user profile/gcroot dirs for each connecting uid.)
mkdir -p /nix/var/nix/gcroots /nix/var/nix/profiles "$SOCK_DIR"
chown root:nix-users "$SOCK_DIR"
chmod "$SOCKET_DIR_MODE" "$SOCK_DIR"

# ------------------------------------------------------------ 5. the daemon
daemon_ok() {
    [ -S "$SOCK" ] || return 1
    timeout 10 /usr/bin/nix --extra-experimental-features nix-command \
        store ping --store "unix://$SOCK" >/dev/null 2>&1
}
is_nix_daemon_pid() {  # pid -> true if it is a live nix-daemon process
    local pid=$1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/bin/nix ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1 | grep -q 'nix-daemon$'
}
daemon_pid() {  # master daemon pid: pidfile, else a nix-daemon whose parent is not one
    local pid ppid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if is_nix_daemon_pid "$pid"; then echo "$pid"; return 0; fi
    for pid in $(pgrep -x nix-daemon || true); do
        is_nix_daemon_pid "$pid" || continue      # skips zombies
        ppid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        is_nix_daemon_pid "$ppid" && continue     # per-connection worker
        echo "$pid"; return 0
    done
    return 1
}
stop_daemon() {
    local pid
    pid=$(daemon_pid) || return 0
    log "stopping nix-daemon (pid $pid) to apply new config"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do is_nix_daemon_pid "$pid" || break; sleep 0.1; done
    is_nix_daemon_pid "$pid" && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}
start_daemon() {
    log "starting nix-daemon (log: $LOG)"
    mkdir -p "$(dirname "$LOG")" "$(dirname "$PIDFILE")"
    # setsid: own session, no controlling tty; clean env; cwd /.
    # (a background job is not a process-group leader, so setsid execs in
    #  place and $! is the daemon's pid)
    (cd / && exec setsid nohup env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        /usr/bin/nix-daemon --daemon </dev/null >>"$LOG" 2>&1) &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 300); do
        daemon_ok && return 0
        is_nix_daemon_pid "$(cat "$PIDFILE")" || { tail -n 20 "$LOG" >&2; die "nix-daemon exited"; }
        sleep 0.1
    done
    tail -n 20 "$LOG" >&2
    die "nix-daemon did not answer on $SOCK within 30s"
}

if daemon_ok; then
    if [ "$CONF_CHANGED" = 1 ]; then
        stop_daemon
        start_daemon
    else
        log "nix-daemon already running (pid $(daemon_pid || echo '?'))"
    fi
else
    # not answering: kill a hung daemon we know about, then (re)start
    stop_daemon
    start_daemon
fi

# socket is created 0666 by nix-daemon; access is gated by the directory mode
chmod 0666 "$SOCK"
chown root:nix-users "$SOCK_DIR"
chmod "$SOCKET_DIR_MODE" "$SOCK_DIR"

# -------------------------------------------------------------- 6. selftest
if [ "$SELFTEST" = 1 ]; then
    d=$(mktemp -d)
    cat >"$d/t.nix" <<'EOF'
{ nonce }: derivation {
  name = "setup-nix-selftest"; system = builtins.currentSystem;
  builder = "/bin/sh"; inherit nonce;
  args = [ "-c" "[ \"$NIX_BUILD_TOP\" = /build ] || { echo NOT SANDBOXED >&2; exit 1; }; echo ok > $out" ];
}
EOF
    chmod 0755 "$d"; chmod 0644 "$d/t.nix"
    # with a 07x0 socket dir the client needs nix-users as supplementary group
    grp=--clear-groups
    (( (8#$SOCKET_DIR_MODE & 1) == 0 )) && grp=--groups=$(getent group nix-users | cut -d: -f3)
    out=$(cd / && setpriv --reuid="$SELFTEST_UID" --regid="$SELFTEST_UID" "$grp" \
            env -i HOME=/nonexistent PATH=/usr/bin:/bin NIX_REMOTE=daemon \
            /usr/bin/nix-build --no-out-link --quiet "$d/t.nix" \
            --argstr nonce "$(date +%s%N)" 2>&1) \
        || { rm -rf "$d"; echo "$out" >&2; die "selftest build as uid $SELFTEST_UID failed"; }
    rm -rf "$d"
    [ "$(cat "$out" 2>/dev/null)" = ok ] || die "selftest: unexpected output '$out'"
    log "selftest ok: uid $SELFTEST_UID built $out in the sandbox via the daemon"
fi
log "done: $(/usr/bin/nix-daemon --version), socket $SOCK (dir mode $SOCKET_DIR_MODE)"
