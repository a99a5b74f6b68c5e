#!/bin/sh
# Build a small seed corpus for the fuzz targets from the kernel cache
# (nothing of the kernel is committed: fuzz/corpus is git-ignored).
#   fuzz/seed.sh [KERNEL_DIR]   (default: .cache/kernels/linux-6.1)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kernel=${1:-${KVMTK_KERNEL_CACHE:-$root/.cache/kernels}/linux-6.1}
[ -d "$kernel/virt/kvm" ] || { echo "seed.sh: no KVM tree at $kernel (run scripts/fetch-kernels.sh)" >&2; exit 2; }
c="$here/corpus"
mkdir -p "$c/c_facts" "$c/mbox" "$c/diff_apply" "$c/locking_rst" "$c/cpuhotplug_h"

# C facts: real KVM files cut into 4 KiB pieces (the targets run with
# -max_len=4096), plus the fixtures' small files whole.
n=0
for f in "$kernel"/virt/kvm/*.c "$kernel"/arch/x86/kvm/*.c "$kernel"/arch/arm64/kvm/*.c \
         "$kernel"/include/linux/kvm_host.h "$root"/kvm-fixtures/*/virt/kvm/*.c; do
    [ -f "$f" ] || continue
    size=$(wc -c <"$f")
    off=0
    while [ "$off" -lt "$size" ] && [ "$off" -lt 65536 ]; do
        dd if="$f" of="$c/c_facts/$(basename "$f").$off" bs=4096 skip=$((off / 4096)) count=1 2>/dev/null
        off=$((off + 4096)); n=$((n + 1))
    done
done

# Kernel docs: the real files (whole) and their first kilobytes.
for d in "$kernel/Documentation/virt/kvm/locking.rst:locking_rst" "$kernel/include/linux/cpuhotplug.h:cpuhotplug_h"; do
    f=${d%%:*}; t=${d##*:}
    [ -f "$f" ] || continue
    cp "$f" "$c/$t/whole"
    head -c 4096 "$f" >"$c/$t/head"
done

# Patches: a generated series of the default fixture (mbox and diff seeds).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmtk-seed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if (cd "$root" && cargo run -q --release -- series generate kvm-fixtures/default --out "$tmp/s" \
        --date 'Thu, 7 Apr 2005 15:13:13 -0700' >/dev/null 2>&1); then
    cat "$tmp"/s/*.patch >"$c/mbox/series.mbox"
    for p in "$tmp"/s/*.patch; do
        cp "$p" "$c/mbox/"
        # diff_apply input: old contents, NUL, diff. Seed without contents.
        { printf '\0'; sed -n '/^diff --git/,$p' "$p"; } >"$c/diff_apply/$(basename "$p")"
    done
fi
# Mail as the lists deliver it: the heads of upstream's posted series
# (beside the project, read-only; the targets run with -max_len=4096).
mkdir -p "$c/cache_entry"
shared="$root/../shared/data/upstream-v2/original"
if [ -d "$shared" ]; then
    for p in "$shared"/*; do
        [ -f "$p" ] && head -c 4096 "$p" >"$c/mbox/upstream-$(basename "$p")"
    done
fi

# Cache entries: those a check of the default fixture writes (facts and
# results), each at most 64 KiB (the cache_entry target's -max_len).
# (exit 1: findings.)
status=0
(cd "$root" && cargo run -q --release -- check kvm-fixtures/default --cache-dir "$tmp/cache") >/dev/null 2>&1 || status=$?
if [ "$status" -le 1 ]; then
    find "$tmp/cache" -type f | while read -r e; do
        head -c 65536 "$e" >"$c/cache_entry/$(basename "$(dirname "$e")")-$(basename "$e")"
    done
fi
echo "seed.sh: $n C pieces, $(ls "$c/mbox" | wc -l) mails, $(ls "$c/cache_entry" | wc -l) cache entries, corpus in $c"
