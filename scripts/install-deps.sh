#!/usr/bin/env bash
# Installs the Debian packages sandboxd's build and tests need; quick when
# they are already there.
set -euo pipefail
need=()
for pkg in gcc libc6-dev python3 make; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
command -v go >/dev/null || { echo "install-deps: Go is needed (https://go.dev/doc/install)" >&2; exit 1; }
# Nix (Debian's nix-bin) and its daemon, for install_package and its tests.
# SKIP_NIX=1 leaves nix alone (the runtime tests then skip, saying why).
if [ "${SKIP_NIX:-0}" != 1 ]; then
	"$(dirname "$0")/setup-nix.sh"
fi
