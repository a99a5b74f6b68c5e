//! `refs` on the real kernels: the KVM subset of Debian's 6.1, and the
//! whole 6.1 tree (`full-6.1`, from `scripts/fetch-kernels.sh --full`) when
//! present; under `CI` both must exist.

#[path = "source_common/mod.rs"]
mod source_common;

use std::path::PathBuf;

use analyzer::refs::{find_refs, NoProgress, RefKind, RefsOptions, RefsReport, Scope};

fn run(dir: &std::path::Path, scope: Scope, symbols: &[&str]) -> RefsReport {
    let opts = RefsOptions { scope, symbols: symbols.iter().map(|s| s.to_string()).collect() };
    find_refs(dir, &opts, &NoProgress).expect("refs runs on the real tree")
}

/// The whole 6.1 tree, or `None` (after a notice); a failure under `CI`.
fn full_kernel() -> Option<PathBuf> {
    let dir = source_common::kernel_cache().join("full-6.1");
    if dir.join(".complete").is_file() && dir.join("virt/kvm/kvm_main.c").is_file() {
        return Some(dir);
    }
    let msg = format!("full kernel tree {} not found; run scripts/fetch-kernels.sh --full", dir.display());
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("notice: skipping test: {msg}");
    None
}

const HOOK_DEFINERS: [&str; 6] = [
    "arch/arm64/kvm/arm.c",
    "arch/mips/kvm/mips.c",
    "arch/powerpc/kvm/powerpc.c",
    "arch/riscv/kvm/main.c",
    "arch/s390/kvm/kvm-s390.c",
    "arch/x86/kvm/x86.c",
];

/// What both scopes must find in 6.1.
fn assert_6_1_enable_path(r: &RefsReport) {
    let hook = r.symbol("kvm_arch_hardware_enable").expect("the enable hook is selected");
    assert!(hook.roles.iter().any(|x| x == "enable hook"));
    assert_eq!(hook.arches, ["arm64", "mips", "powerpc", "riscv", "s390", "x86"]);
    // Defined by each arch, declared in kvm_host.h, called from the common
    // primitive only.
    for path in HOOK_DEFINERS {
        assert!(
            r.references_to("kvm_arch_hardware_enable")
                .any(|x| x.path == path && x.kind == RefKind::Declaration && x.detail == "definition"),
            "no definition in {path}"
        );
    }
    assert!(r
        .references_to("kvm_arch_hardware_enable")
        .any(|x| x.path == "include/linux/kvm_host.h" && x.line == 1460 && x.detail == "prototype"));
    let calls: Vec<_> = r
        .references_to("kvm_arch_hardware_enable")
        .filter(|x| x.kind == RefKind::Call)
        .map(|x| (x.path.as_str(), x.line, x.col, x.function.as_deref()))
        .collect();
    assert_eq!(calls, [("virt/kvm/kvm_main.c", 5106, 6, Some("hardware_enable_nolock"))]);
    // kvm_rebooting: set by the reboot notifier, read by x86's spurious
    // fault handler, exported, declared extern.
    let reb: Vec<_> = r
        .references_to("kvm_rebooting")
        .map(|x| (x.path.as_str(), x.line, x.kind, x.function.as_deref(), x.detail.as_str()))
        .collect();
    assert_eq!(
        reb,
        [
            ("arch/x86/kvm/x86.c", 511, RefKind::Use, Some("kvm_spurious_fault"), "read as argument of BUG_ON"),
            ("include/linux/kvm_host.h", 2101, RefKind::Declaration, None, "extern declaration"),
            ("virt/kvm/kvm_main.c", 151, RefKind::Declaration, None, "definition"),
            ("virt/kvm/kvm_main.c", 152, RefKind::Use, None, "exported by EXPORT_SYMBOL_GPL"),
            ("virt/kvm/kvm_main.c", 5191, RefKind::Use, Some("kvm_reboot"), "write"),
        ]
    );
    // The hotplug callbacks are registered (address taken) in kvm_init.
    for cb in ["kvm_starting_cpu", "kvm_dying_cpu"] {
        assert!(r.references_to(cb).any(|x| x.kind == RefKind::AddressTaken
            && x.function.as_deref() == Some("kvm_init")
            && x.detail == "function passed to cpuhp_setup_state_nocalls"));
    }
    // The usage count is static in kvm_main.c and used nowhere else.
    let usage = r.symbol("kvm_usage_count").expect("kvm_usage_count is selected");
    assert!(usage.file_local);
    assert!(r.references_to("kvm_usage_count").all(|x| x.path == "virt/kvm/kvm_main.c"));
    assert!(r.references_to("kvm_usage_count").any(|x| x.detail == "write"));
}

#[test]
fn linux_6_1_kvm_subset() {
    let Some(dir) = source_common::real_kernel("6.1") else { return };
    let r = run(&dir, Scope::Kvm, &[]);
    assert_6_1_enable_path(&r);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert!(r.stats.files > 200, "{:?}", r.stats);
    assert!(r.stats.files_parsed < 20, "the pre-filter keeps parsing to a few files: {:?}", r.stats);
}

#[test]
fn linux_6_1_whole_tree() {
    let Some(dir) = full_kernel() else { return };
    let all = run(&dir, Scope::All, &[]);
    assert!(all.stats.files > 30_000, "{:?}", all.stats);
    assert_6_1_enable_path(&all);
    // Outside KVM: the paravirt guest's own (static) kvm_suspend and
    // kvm_resume, homonyms of KVM's syscore callbacks.
    let guest: Vec<_> = all
        .references
        .iter()
        .filter(|x| x.path == "arch/x86/kernel/kvm.c")
        .map(|x| (x.symbol.as_str(), x.kind, x.homonym))
        .collect();
    assert_eq!(
        guest,
        [
            ("kvm_suspend", RefKind::Declaration, true),
            ("kvm_resume", RefKind::Declaration, true),
            ("kvm_suspend", RefKind::AddressTaken, true),
            ("kvm_resume", RefKind::AddressTaken, true),
        ]
    );
    // The KVM scope's references are all found by the whole-tree scan.
    let kvm = run(&dir, Scope::Kvm, &[]);
    for x in &kvm.references {
        assert!(all.references.contains(x), "{x:?} missing from --scope all");
    }
    // Named symbols: every caller of the hotplug registration the enable
    // path uses, across the tree.
    let named = run(&dir, Scope::All, &["cpuhp_setup_state_nocalls"]);
    let callers: Vec<_> =
        named.references_to("cpuhp_setup_state_nocalls").filter(|x| x.kind == RefKind::Call).collect();
    assert!(callers.len() > 20, "{}", callers.len());
    assert!(callers.iter().any(|x| x.path == "virt/kvm/kvm_main.c" && x.function.as_deref() == Some("kvm_init")));
    assert!(named
        .references_to("cpuhp_setup_state_nocalls")
        .any(|x| x.path == "include/linux/cpuhotplug.h" && x.kind == RefKind::Declaration));
}
