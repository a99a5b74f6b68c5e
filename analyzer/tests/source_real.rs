//! SourceTree over the real extracted 6.1 and 6.12 trees.

mod source_common;

use analyzer::source::{SourceOptions, SourceSpec, SourceTree};

fn load(version: &str, opts: &SourceOptions) -> Option<SourceTree> {
    let dir = source_common::real_kernel(version)?;
    Some(SourceTree::load(&SourceSpec::Dir(dir), opts).unwrap())
}

fn check_common(tree: &SourceTree) {
    assert_eq!(tree.warnings, [], "{}", tree.root_label);
    for path in [
        "virt/kvm/kvm_main.c",
        "include/linux/kvm_host.h",
        "include/linux/cpuhotplug.h",
        "Documentation/virt/kvm/locking.rst",
        "arch/x86/kvm/x86.c",
        "arch/x86/kvm/vmx/vmx.c",
        "arch/x86/kvm/svm/svm.c",
        "arch/x86/include/asm/kvm_host.h",
        "arch/x86/include/asm/kvm-x86-ops.h",
        "arch/powerpc/include/asm/kvm_ppc.h",
        "arch/arm64/kvm/arm.c",
    ] {
        assert!(tree.file(path).is_some(), "{}: {path} missing", tree.root_label);
    }
    // Only the KVM file set: no other Makefiles, no other documentation;
    // the KVM Kconfig files and each arch's KVM Makefile (read as data:
    // which `#ifdef`'d common code each arch builds, which files under
    // which option).
    assert!(tree.files.iter().all(|f| f.path.ends_with(".c")
        || f.path.ends_with(".h")
        || f.path == "Documentation/virt/kvm/locking.rst"
        || f.path == analyzer::kconfig::COMMON_KCONFIG
        || f.arch.as_deref().is_some_and(|a| {
            f.path == analyzer::kconfig::arch_kconfig(a) || f.path == analyzer::kbuild::arch_makefile(a)
        })));
    assert!(tree.file(analyzer::kconfig::COMMON_KCONFIG).is_some());
    assert!(tree.file(&analyzer::kbuild::arch_makefile("x86")).is_some());
    assert!(tree.file("virt/kvm/Makefile.kvm").is_none());
    assert!(tree.file("Documentation/virt/kvm/api.rst").is_none());
    // Sorted, unique, each with its arch and blob id.
    assert!(tree.files.windows(2).all(|w| w[0].path < w[1].path));
    for f in &tree.files {
        assert_eq!(f.arch, analyzer::source::arch_of(&f.path));
        assert_eq!(f.blob_id.as_ref().map(String::len), Some(40));
    }
}

/// (C files and headers, Kconfig files, Makefiles) of a tree.
fn kinds(tree: &SourceTree) -> (usize, usize, usize) {
    let count = |p: &dyn Fn(&str) -> bool| tree.files.iter().filter(|f| p(&f.path)).count();
    (
        count(&|p| p.ends_with(".c") || p.ends_with(".h")),
        count(&|p| p.ends_with("/Kconfig")),
        count(&|p| p.ends_with("/Makefile")),
    )
}

#[test]
fn linux_6_1() {
    let Some(tree) = load("6.1", &SourceOptions::default()) else {
        return;
    };
    check_common(&tree);
    assert_eq!(tree.arches, ["arm64", "mips", "powerpc", "riscv", "s390", "x86"]);
    assert_eq!(kinds(&tree), (280, 7, 6), "C files and headers, KVM Kconfig files, arch KVM Makefiles");
    assert_eq!(tree.files.len(), 280 + 7 + 6 + 1, "and locking.rst");
    let main = String::from_utf8_lossy(&tree.file("virt/kvm/kvm_main.c").unwrap().bytes).into_owned();
    assert!(main.contains("kvm_count_lock"));
    assert!(main.contains("CPUHP_AP_KVM_STARTING"));
}

#[test]
fn linux_6_12() {
    let Some(tree) = load("6.12", &SourceOptions::default()) else {
        return;
    };
    check_common(&tree);
    assert_eq!(tree.arches, ["arm64", "loongarch", "mips", "powerpc", "riscv", "s390", "x86"]);
    assert_eq!(kinds(&tree), (321, 8, 7), "C files and headers, KVM Kconfig files, arch KVM Makefiles");
    assert_eq!(tree.files.len(), 321 + 8 + 7 + 1, "and locking.rst");
    let main = String::from_utf8_lossy(&tree.file("virt/kvm/kvm_main.c").unwrap().bytes).into_owned();
    assert!(main.contains("kvm_usage_lock"));
    assert!(main.contains("CPUHP_AP_KVM_ONLINE"));
}

#[test]
fn narrowed_to_x86() {
    let opts = SourceOptions { arches: Some(vec!["x86".into()]), ..Default::default() };
    for version in ["6.1", "6.12"] {
        let Some(full) = load(version, &SourceOptions::default()) else {
            return;
        };
        let x86 = load(version, &opts).unwrap();
        assert_eq!(x86.arches, ["x86"]);
        assert!(x86.files.iter().all(|f| f.arch.as_deref().map(|a| a == "x86") != Some(false)));
        // Exactly the common files plus x86's, byte for byte.
        let expected: Vec<_> = full.files_for_arch("x86").cloned().collect();
        assert_eq!(x86.files, expected);
        assert!(x86.file("virt/kvm/kvm_main.c").is_some());
    }
}
