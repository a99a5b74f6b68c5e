#!/usr/bin/env bash
# Install what kvmtk's tests need on a fresh Debian machine (idempotent):
# Debian packages (universal-ctags for the coverage test, graphviz for SVG
# output, the arm64 cross compiler for the build proof of the series) and
# the real kernel trees (scripts/fetch-kernels.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

need=()
command -v ctags >/dev/null 2>&1 || need+=(universal-ctags)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "setup: need root to install ${need[*]} (apt-get)" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --full: the whole 6.1 tree is needed for the build proof of the series.
bash "$root/scripts/fetch-kernels.sh" --full "$@"
