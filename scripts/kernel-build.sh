#!/usr/bin/env bash
# Build x86 KVM in a kernel tree, the proof that a patch compiles:
#   scripts/kernel-build.sh prepare TREE   configure (x86_64_defconfig + KVM, KVM_INTEL, KVM_AMD) and `make prepare`
#   scripts/kernel-build.sh build TREE     make arch/x86/kvm/ (includes virt/kvm/kvm_main.c), warnings are errors
# Installs the build dependencies (Debian) when missing.
set -euo pipefail
cmd=${1:?usage: kernel-build.sh prepare|build TREE}
tree=${2:?usage: kernel-build.sh prepare|build TREE}
jobs=$(nproc)

need=()
for tool in flex:flex bison:bison bc:bc make:make gcc:gcc perl:perl; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
[ -e /usr/include/libelf.h ] || need+=(libelf-dev)
[ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cd "$tree"
case "$cmd" in
prepare)
	make -s x86_64_defconfig >/dev/null
	scripts/config --enable KVM --enable KVM_INTEL --enable KVM_AMD --disable WERROR
	make -s olddefconfig >/dev/null
	make -s -j"$jobs" prepare >/dev/null
	;;
build)
	# KCFLAGS=-Werror: a patch may not add warnings.
	make -s -j"$jobs" KCFLAGS=-Werror arch/x86/kvm/
	;;
*)
	echo "kernel-build.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
