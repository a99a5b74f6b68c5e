#!/usr/bin/env bash
# kvmtk benchmark with fixed inputs: Debian's 6.1 and 6.12 KVM trees (from
# scripts/fetch-kernels.sh). Release build, median of N runs (default 5) of
# wall time, and peak resident memory, for each command.
#
#   bench/run.sh [N]
#
# Figures are reported in notes, never asserted in tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-5}
bash scripts/fetch-kernels.sh >/dev/null
cargo build --release --quiet
bin=target/release/kvmtk
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

measure() {
	local label=$1
	shift
	local times=() mems=()
	for _ in $(seq "$runs"); do
		/usr/bin/time -f "%e %M" -o "$out/t" "$@" >/dev/null 2>"$out/err" || [ $? -eq 1 ]
		read -r t m < <(tail -n1 "$out/t")
		times+=("$t")
		mems+=("$m")
	done
	local med peak
	med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	peak=$(printf '%s\n' "${mems[@]}" | sort -n | tail -n1)
	printf '%-58s median %6.3f s   peak %6.1f MiB   (n=%d)\n' "$label" "$med" "$(awk -v k="$peak" 'BEGIN {print k / 1024}')" "$runs"
}

echo "kvmtk $(git describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores"
for v in 6.1 6.12; do
	tree=.cache/kernels/linux-$v
	measure "graph --format json, all arches, linux-$v" "$bin" graph "$tree" --format json -o "$out/g.json"
	measure "check (all rules, all arches), linux-$v" "$bin" check "$tree" --format json -o "$out/c.json"
	measure "check --arch x86, linux-$v" "$bin" check "$tree" --arch x86 --format json -o "$out/c.json"
done
