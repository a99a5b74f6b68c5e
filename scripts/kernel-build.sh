#!/usr/bin/env bash
# Build KVM in a kernel tree, the proof that a patch compiles:
#   scripts/kernel-build.sh prepare TREE [ARCH...]  configure and `make prepare`
#   scripts/kernel-build.sh build TREE [ARCH...]    make arch/ARCH/kvm/ (includes virt/kvm/kvm_main.c), warnings are errors
#
# ARCH is x86 (x86_64_defconfig + KVM, KVM_INTEL, KVM_AMD) or arm64
# (defconfig + KVM, cross-compiled with Debian's gcc-aarch64-linux-gnu);
# the default is both. Each arch builds out of tree, in TREE/.kvmtk-build/ARCH,
# so the two configurations live side by side and the sources stay clean.
# Installs the build dependencies (Debian) when missing.
set -euo pipefail
cmd=${1:?usage: kernel-build.sh prepare|build TREE [x86|arm64]...}
tree=${2:?usage: kernel-build.sh prepare|build TREE [x86|arm64]...}
shift 2
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86 arm64)
jobs=$(nproc)

need=()
for tool in flex:flex bison:bison bc:bc make:make gcc:gcc perl:perl; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
[ -e /usr/include/libelf.h ] || need+=(libelf-dev)
[ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
for a in "${arches[@]}"; do
	[ "$a" = arm64 ] && ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && need+=(gcc-aarch64-linux-gnu)
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cd "$tree"
for a in "${arches[@]}"; do
	out="$PWD/.kvmtk-build/$a"
	case "$a" in
	x86) mk=(make -s -j"$jobs" O="$out" ARCH=x86_64) defconfig=x86_64_defconfig
		kvm=(--enable KVM --enable KVM_INTEL --enable KVM_AMD) ;;
	arm64) mk=(make -s -j"$jobs" O="$out" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-) defconfig=defconfig
		kvm=(--enable VIRTUALIZATION --enable KVM) ;;
	*) echo "kernel-build.sh: unknown arch $a (x86 or arm64)" >&2; exit 2 ;;
	esac
	case "$cmd" in
	prepare)
		mkdir -p "$out"
		"${mk[@]}" "$defconfig" >/dev/null
		scripts/config --file "$out/.config" "${kvm[@]}" --disable WERROR
		"${mk[@]}" olddefconfig >/dev/null
		"${mk[@]}" prepare >/dev/null
		;;
	build)
		# KCFLAGS=-Werror: a patch may not add warnings.
		echo "kernel-build.sh: $a: arch/$a/kvm/" >&2
		"${mk[@]}" KCFLAGS=-Werror "arch/$a/kvm/"
		;;
	*)
		echo "kernel-build.sh: unknown command $cmd" >&2
		exit 2
		;;
	esac
done
