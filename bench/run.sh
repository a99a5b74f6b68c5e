#!/usr/bin/env bash
# kvmtk benchmark with fixed inputs: Debian's 6.1 and 6.12 KVM trees (from
# scripts/fetch-kernels.sh). Release build, median of N runs (default 5) of
# wall time, and peak resident memory, for each command. Also: `refs` over
# the whole 6.1 tree when it was extracted (fetch-kernels.sh --full), and
# Coccinelle's spatch (installed when missing) running bench/vm_list_walk.cocci
# side by side with `kvmtk check` on the 6.1 KVM tree.
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
	last_median=$med
}

echo "kvmtk $(git describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores"
for v in 6.1 6.12; do
	tree=.cache/kernels/linux-$v
	measure "graph --format json, all arches, linux-$v" "$bin" graph "$tree" --format json -o "$out/g.json"
	measure "check (all rules, all arches), linux-$v" "$bin" check "$tree" --format json -o "$out/c.json"
	measure "check --arch x86, linux-$v" "$bin" check "$tree" --arch x86 --format json -o "$out/c.json"
done

tree=.cache/kernels/linux-6.1
measure "refs (enable path, --scope kvm), linux-6.1" "$bin" refs "$tree" --format json -o "$out/r.json"
full=.cache/kernels/full-6.1
if [ -f "$full/.complete" ]; then
	measure "refs --scope all (enable path), full-6.1" "$bin" refs "$full" --scope all --format json -o "$out/r.json"
fi

# Coccinelle side by side: the intra-procedural vm_list walk check against
# kvmtk's whole analysis (all rules, all arches) on the same 6.1 KVM tree.
if ! command -v spatch >/dev/null 2>&1; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coccinelle >/dev/null
fi
echo "spatch: $(spatch --version 2>/dev/null | head -n1)"
measure "spatch vm_list_walk.cocci -j 2, linux-6.1" \
	spatch --sp-file bench/vm_list_walk.cocci --dir "$tree" -j 2 --no-includes --very-quiet
spatch_s=$last_median
measure "check (all rules, all arches), linux-6.1" "$bin" check "$tree" --format json -o "$out/c.json"
check_s=$last_median
awk -v s="$spatch_s" -v k="$check_s" 'BEGIN {
	printf "spatch %.3f s vs kvmtk check %.3f s: ratio spatch/kvmtk %.2f\n", s, k, (k > 0 ? s / k : 0) }'
