#!/bin/sh
# Regenerates the broken series of this fixture with real `git format-patch`
# from tree/ (run from this directory; needs git). The patches are
# committed; this script documents how they were made.
set -eu
here=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME="Fixture Author" GIT_AUTHOR_EMAIL="fixture@example.org"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export GIT_AUTHOR_DATE="Mon, 3 Jun 2024 10:00:00 +0000"
export GIT_COMMITTER_DATE="$GIT_AUTHOR_DATE"
g() { git -C "$work" -c core.abbrev=7 "$@"; }
msg() { printf '%s\n\n%s\n\nSigned-off-by: Fixture Author <fixture@example.org>\n' "$1" "$2"; }

cp -r tree/. "$work"
g init -q
g add .
g commit -qm base
c="$work/virt/kvm/kvm_main.c"

# sleep-in-starting/: 1 is fine, 2 takes a mutex in a STARTING callback
# (introduces HW007), 3 does not apply (written against another tree).
sed -i 's|^static int kvm_starting_cpu(unsigned int cpu)$|/* Runs on the incoming CPU, with interrupts disabled. */\n&|' "$c"
g commit -qam "$(msg 'KVM: Document the STARTING-section callback' 'Say where kvm_starting_cpu() runs.')"
awk '/^static int kvm_starting_cpu/{s=1} s&&/raw_spin_lock\(&kvm_count_lock\);/{sub(/raw_spin_lock\(&kvm_count_lock\)/,"mutex_lock(\\&kvm_lock)")} s&&/raw_spin_unlock\(&kvm_count_lock\);/{sub(/raw_spin_unlock\(&kvm_count_lock\)/,"mutex_unlock(\\&kvm_lock)");s=0} {print}' "$c" > "$c.new" && mv "$c.new" "$c"
g commit -qam "$(msg 'KVM: Take kvm_lock in the STARTING callback' 'Serialize against VM creation with kvm_lock instead of the raw lock.')"
g branch other HEAD~2
g format-patch -q -o "$work/out1" HEAD~2
g checkout -q other
sed -i 's|^static DEFINE_RAW_SPINLOCK(kvm_count_lock);$|static DEFINE_RAW_SPINLOCK(kvm_usage_lock);|' "$c"
g commit -qam 'other base'
sed -i 's|^static int kvm_usage_count;$|static int kvm_usage_count;\nstatic bool kvm_rebooting;|' "$c"
g commit -qam "$(msg 'KVM: Track reboots' 'Remember that the machine is rebooting.')"
g format-patch -q -o "$work/out3" --start-number 3 HEAD~1
rm -rf sleep-in-starting && mkdir sleep-in-starting
cp "$work"/out1/0001-*.patch "$work"/out1/0002-*.patch sleep-in-starting/
sed 's|^Subject: \[PATCH\]|Subject: [PATCH 3/3]|' "$work"/out3/0003-*.patch > sleep-in-starting/0003-KVM-Track-reboots.patch
sed -i 's|^Subject: \[PATCH 1/2\]|Subject: [PATCH 1/3]|; s|^Subject: \[PATCH 2/2\]|Subject: [PATCH 2/3]|' sleep-in-starting/000[12]-*.patch

# no-compile/: 1 uses an undeclared variable (gcc -fsyntax-only fails).
g checkout -q master
g checkout -q -b nc HEAD~2
sed -i 's|^	kvm_usage_count++;$|	kvm_usage_cnt++;|' "$c"
g commit -qam "$(msg 'KVM: Count users' 'Count the users of hardware virtualization.')"
rm -rf no-compile && mkdir no-compile
g format-patch -q -o "$here/no-compile" HEAD~1
