#!/usr/bin/env bash
# Installs the Debian packages the clients' tests need (clients/); quick when
# they are already there. One package a line.
set -euo pipefail
packages=(
	cmake
	g++
	nlohmann-json3-dev
	python3
	python3-mypy
	python3-pytest
	python3-redis
	python3-venv
	redis-server
)
need=()
for pkg in "${packages[@]}"; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
