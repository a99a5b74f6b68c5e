#!/usr/bin/env bash
# kvmtk benchmark with fixed inputs: Debian's 6.1 and 6.12 KVM trees (from
# scripts/fetch-kernels.sh). Release build, median of N runs (default 5) of
# wall time, and peak resident memory, for each command. `check` is measured
# cold (--no-cache: parse and analyze everything), with the facts cache warm
# and the result cache empty (every arch analyzed, nothing parsed), after an
# edit of one x86 file (that file parsed, x86 analyzed), and warm (nothing
# changed). `lint` of one commit touching one x86 file, with the caches warm
# from its parent. Also: `refs` over the whole 6.1 tree when it was
# extracted (fetch-kernels.sh --full), and Coccinelle's spatch (installed
# when missing) running bench/vm_list_walk.cocci side by side with
# `kvmtk check` on the 6.1 KVM tree. And the series row: upstream's
# 45-patch hardware-enabling rework ported to 6.1.192
# (../shared/data/upstream-v2/ported-6.1.192) applied with `git am -C1` on
# a repository of the 6.1 KVM tree plus the five headers it touches (from
# full-6.1), linted commit by commit with the base tree's facts and results
# cached by one `check` of the base, beside a cold `check --no-cache` of
# linux-6.1 in the same run, and their ratio; then the same lint with
# every rule off, the floor of the design (parsing the changed files,
# linking and the contexts, per commit and arch).
#
#   bench/run.sh [N]          everything
#   bench/run.sh N series     the series row only
#
# Figures are reported in notes, never asserted in tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-5}
only=${2:-}
kernels=${KVMTK_KERNEL_CACHE:-$root/.cache/kernels}
if [ "$only" = series ]; then
	bash scripts/fetch-kernels.sh --full >/dev/null
else
	bash scripts/fetch-kernels.sh >/dev/null
fi
cargo build --release --quiet
bin=target/release/kvmtk
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Print a row: the median of the caller's `times` and the peak of its
# `mems` (kB), and keep the median in last_median.
report() {
	local med peak
	med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	peak=$(printf '%s\n' "${mems[@]}" | sort -n | tail -n1)
	printf '%-58s median %6.3f s   peak %6.1f MiB   (n=%d)\n' "$1" "$med" "$(awk -v k="$peak" 'BEGIN {print k / 1024}')" "$runs"
	last_median=$med
}

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
	report "$label"
}

echo "kvmtk $(git describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores"

# The series row (see the head of this file). Needs full-6.1 (for the five
# headers: fetch-kernels.sh --full) and the shared series.
series_row() {
	local series=$root/../shared/data/upstream-v2/ported-6.1.192 full=$kernels/full-6.1
	if [ ! -d "$series" ] || [ ! -f "$full/.complete" ]; then
		echo "series row skipped: needs $series and $full (scripts/fetch-kernels.sh --full)"
		return
	fi
	local repo=$out/series-repo gitc=(-c user.name=bench -c user.email=bench@localhost)
	rm -rf "$repo"
	cp -r "$kernels/linux-6.1" "$repo"
	for h in arch/arm64/include/asm/kvm_mmu.h arch/powerpc/include/asm/kvm_ppc.h \
		arch/x86/include/asm/kvm-x86-ops.h include/kvm/arm_arch_timer.h include/kvm/arm_vgic.h; do
		mkdir -p "$repo/$(dirname "$h")"
		cp "$full/$h" "$repo/$h"
	done
	git -C "$repo" init -q
	git -C "$repo" add -A
	git -C "$repo" "${gitc[@]}" commit -qm base
	git -C "$repo" tag base
	git -C "$repo" "${gitc[@]}" am -q -C1 "$series"/0*.patch
	local n
	n=$(git -C "$repo" rev-list --count base..HEAD)
	measure "check --no-cache (all rules, all arches), linux-6.1" "$bin" check "$kernels/linux-6.1" --no-cache --format json -o "$out/c.json"
	local cold_s=$last_median
	series_lint "lint $n-commit ported series, base cached, linux-6.1" "$repo"
	local lint_s=$last_median
	# The floor of the design: the same lint with every rule off is what
	# parsing the changed files, linking and the contexts cost alone.
	local all
	all=$("$bin" explain | awk '/^HW[0-9]+ / {print $1}' | paste -sd, -)
	series_lint "lint $n-commit ported series, no rules (floor), linux-6.1" "$repo" --ignore "$all"
	awk -v l="$lint_s" -v f="$last_median" -v c="$cold_s" -v n="$n" 'BEGIN {
		printf "series lint %.3f s vs check --no-cache %.3f s: ratio %.2f (%d commits)\n", l, c, (c > 0 ? l / c : 0), n
		printf "series lint without rules %.3f s: ratio %.2f\n", f, (c > 0 ? f / c : 0) }'
}

# One series lint row: each run checks the base into an empty cache (its
# facts and results cached, as a CI job restoring its cache has them),
# then times the lint of base..HEAD. Extra arguments go to both commands.
series_lint() {
	local label=$1 repo=$2 times=() mems=() scache=$out/series-cache
	shift 2
	for _ in $(seq "$runs"); do
		rm -rf "$scache"
		"$bin" check --repo "$repo" --rev base --cache-dir "$scache" --format json -o "$out/c.json" "$@" 2>/dev/null || true
		/usr/bin/time -f "%e %M" -o "$out/t" "$bin" lint --repo "$repo" base..HEAD --cache-dir "$scache" "$@" >/dev/null 2>"$out/err" || [ $? -eq 1 ]
		read -r t m < <(tail -n1 "$out/t")
		times+=("$t")
		mems+=("$m")
	done
	report "$label"
}
if [ "$only" = series ]; then
	series_row
	exit 0
fi
cache="$out/cache"
for v in 6.1 6.12; do
	tree=.cache/kernels/linux-$v
	measure "graph --format json, all arches, linux-$v" "$bin" graph "$tree" --format json -o "$out/g.json"
	measure "check --no-cache (all rules, all arches), linux-$v" "$bin" check "$tree" --no-cache --format json -o "$out/c.json"
	measure "check --no-cache --arch x86, linux-$v" "$bin" check "$tree" --no-cache --arch x86 --format json -o "$out/c.json"
	rm -rf "$cache"
	"$bin" check "$tree" --cache-dir "$cache" --format json -o "$out/c.json" 2>/dev/null || true
	measure "check, facts cached, results not, linux-$v" \
		sh -c 'rm -rf "$1"/kvmtk-*-analysis-*; exec "$2" check "$3" --cache-dir "$1" --format json -o "$4"' \
		sh "$cache" "$bin" "$tree" "$out/c.json"
	measure "check warm (nothing changed), linux-$v" "$bin" check "$tree" --cache-dir "$cache" --format json -o "$out/c.json"
done

# One x86 file edited (each run appends another comment: a new blob): that
# file is parsed again and x86 analyzed again; the other arches are reused.
edited="$out/linux-6.1-edited"
cp -r .cache/kernels/linux-6.1 "$edited"
rm -rf "$cache"
"$bin" check "$edited" --cache-dir "$cache" --format json -o "$out/c.json" 2>/dev/null || true
measure "check after editing one x86 file (caches warm), linux-6.1" \
	sh -c 'echo "/* edit $$ */" >>"$1/arch/x86/kvm/kvm_onhyperv.c"; exec "$2" check "$1" --cache-dir "$3" --format json -o "$4"' \
	sh "$edited" "$bin" "$cache" "$out/c.json"

# lint of one commit touching one x86 file, the caches warm from its parent.
repo="$out/repo"
cp -r .cache/kernels/linux-6.1 "$repo"
git -C "$repo" init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -qm base
echo "/* edited */" >>"$repo/arch/x86/kvm/kvm_onhyperv.c"
git -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -qam "KVM: x86: one file"
lint_times=()
for _ in $(seq "$runs"); do
	rm -rf "$cache"
	"$bin" check --repo "$repo" --rev HEAD~1 --cache-dir "$cache" --format json -o "$out/c.json" 2>/dev/null || true
	t=$(KVMTK_TIMINGS=1 "$bin" lint --repo "$repo" HEAD~1..HEAD --cache-dir "$cache" 2>&1 >/dev/null |
		awk '/timings: [0-9a-f]+ / {print $(NF-1)}')
	lint_times+=("$t")
done
printf '%-58s median %6.1f ms (the commit step; n=%d)\n' "lint one commit, one x86 file, caches warm, linux-6.1" \
	"$(printf '%s\n' "${lint_times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" "$runs"

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
measure "check --no-cache (all rules, all arches), linux-6.1" "$bin" check "$tree" --no-cache --format json -o "$out/c.json"
check_s=$last_median
measure "check warm (all rules, all arches), linux-6.1" "$bin" check "$tree" --cache-dir "$cache" --format json -o "$out/c.json"
warm_s=$last_median
awk -v s="$spatch_s" -v k="$check_s" -v w="$warm_s" 'BEGIN {
	printf "spatch %.3f s vs kvmtk check --no-cache %.3f s: ratio spatch/kvmtk %.2f\n", s, k, (k > 0 ? s / k : 0)
	printf "spatch %.3f s vs kvmtk check warm %.3f s: ratio spatch/kvmtk %.1f\n", s, w, (w > 0 ? s / w : 0) }'

series_row
