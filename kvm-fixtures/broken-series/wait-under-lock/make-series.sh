#!/bin/sh
# Regenerates this fixture's series with real `git format-patch` from tree/
# (run from this directory; needs git). The patches are committed; this
# script documents how they were made.
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

# 1: a comment only.
sed -i 's|^	r = foo_arch_guest_added(kvm);$|	/* The guest is initialized but not yet on guest_list. */\n&|' "$c"
g commit -qam "$(msg 'foo: Say where the guest-added hook runs' 'The hook runs once the guest is set up, before it is published.')"

# 2: the hook under the usage count's lock.
awk '
/^	r = foo_arch_guest_added\(kvm\);$/ {
	print "\tmutex_lock(&virt_users_lock);"
	print
	print "\tmutex_unlock(&virt_users_lock);"
	next
}
{ print }' "$c" > "$c.new" && mv "$c.new" "$c"
g commit -qam "$(msg 'foo: Call the guest-added hook with virt_users_lock held' 'Let the architecture see a usage count that cannot change while it
decides whether the new guest needs virtualization enabled.')"

rm -f 0*.patch
g format-patch -q -o "$here" HEAD~2
