#!/usr/bin/env bash
# Install Debian's linux-source-6.1 and linux-source-6.12 (when missing) and
# extract the paths kvmtk's tests read into an ignored cache:
#   .cache/kernels/linux-6.1/   .cache/kernels/linux-6.12/
# Only the KVM-relevant files are extracted (see PATHS below); pass --full to
# also extract the complete 6.1 tree under .cache/kernels/full-6.1/ (for the
# build proof of the series and the whole-kernel scan).
#
# Idempotent: a tree whose .complete stamp exists is left alone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${KVMTK_KERNEL_CACHE:-$root/.cache/kernels}"
full=0
[ "${1:-}" = "--full" ] && full=1

PATHS=(
	'*/virt/kvm'
	'*/arch/*/kvm'
	'*/arch/*/include/asm/kvm_host.h'
	'*/arch/*/include/asm/kvm_ppc.h'
	'*/arch/x86/include/asm/kvm-x86-ops.h'
	'*/include/linux/kvm_host.h'
	'*/include/linux/cpuhotplug.h'
	'*/Documentation/virt/kvm/locking.rst'
	'*/scripts/checkpatch.pl'
	'*/Makefile'
)

# The versions the snapshots were reviewed against. When Debian no longer
# serves one, the newest is installed instead (with a notice): snapshots with
# line numbers may then need review.
declare -A PINNED=([6.1]=6.1.192-2 [6.12]=6.12.117-1~deb12u1)

apt_updated=0
ensure_pkg() {
	local pkg=$1 ver=$2
	if ! dpkg -s "$pkg" >/dev/null 2>&1; then
		if [ "$apt_updated" = 0 ]; then
			apt-get update -qq
			apt_updated=1
		fi
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg=$ver" >/dev/null 2>&1; then
			echo "fetch-kernels: notice: $pkg=$ver is not available; installing the newest $pkg" >&2
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
		fi
	fi
}

mkdir -p "$cache"
for ver in 6.1 6.12; do
	dest="$cache/linux-$ver"
	want_full=0
	[ "$full" = 1 ] && [ "$ver" = 6.1 ] && want_full=1
	if [ ! -f "$dest/.complete" ] || { [ "$want_full" = 1 ] && [ ! -f "$cache/full-$ver/.complete" ]; }; then
		ensure_pkg "linux-source-$ver" "${PINNED[$ver]}"
		tarball=$(ls /usr/src/linux-source-"$ver".tar.* 2>/dev/null | head -n1)
		[ -n "$tarball" ] || { echo "fetch-kernels: no /usr/src/linux-source-$ver.tar.* after installing linux-source-$ver" >&2; exit 1; }
	fi
	if [ ! -f "$dest/.complete" ]; then
		tmp=$(mktemp -d "$cache/.tmp-$ver.XXXXXX")
		tar -xf "$tarball" -C "$tmp" --wildcards --strip-components=1 "${PATHS[@]}" 2>/dev/null || true
		[ -f "$tmp/virt/kvm/kvm_main.c" ] || { echo "fetch-kernels: $tarball has no virt/kvm/kvm_main.c" >&2; rm -rf "$tmp"; exit 1; }
		dpkg-query -W -f='${Version}\n' "linux-source-$ver" > "$tmp/.debian-version"
		touch "$tmp/.complete"
		rm -rf "$dest"
		mv "$tmp" "$dest"
		echo "fetch-kernels: linux-$ver ($(cat "$dest/.debian-version")) -> $dest"
	fi
	if [ "$want_full" = 1 ] && [ ! -f "$cache/full-$ver/.complete" ]; then
		tmp=$(mktemp -d "$cache/.tmp-full-$ver.XXXXXX")
		tar -xf "$tarball" -C "$tmp" --strip-components=1
		touch "$tmp/.complete"
		rm -rf "$cache/full-$ver"
		mv "$tmp" "$cache/full-$ver"
		echo "fetch-kernels: full linux-$ver -> $cache/full-$ver"
	fi
done
