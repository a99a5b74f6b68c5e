//! The kernel documentation parsers on the real 6.1 and 6.12 trees.

mod source_common;

use std::fmt::Write;

use analyzer::kernel_docs::{CpuhpEnum, CpuhpSection, LockOrdering, LockingDoc};

fn read(version: &str, rel: &str) -> Option<Vec<u8>> {
    let dir = source_common::real_kernel(version)?;
    Some(std::fs::read(dir.join(rel)).unwrap())
}

fn cpuhp(version: &str) -> Option<CpuhpEnum> {
    let path = "include/linux/cpuhotplug.h";
    Some(CpuhpEnum::parse(path, &read(version, path)?).unwrap())
}

fn locking(version: &str) -> Option<LockingDoc> {
    let path = "Documentation/virt/kvm/locking.rst";
    Some(LockingDoc::parse(path, &read(version, path)?).unwrap())
}

macro_rules! snapshot_settings {
    ($($body:tt)*) => {
        insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots")}, { $($body)* })
    };
}

/// One line per state: the table a reviewer checks section boundaries in.
fn table(e: &CpuhpEnum) -> String {
    let mut out = String::new();
    for s in &e.states {
        let section = s.section.map_or("-".to_string(), |s| s.to_string());
        writeln!(out, "{:>4} {:<8} {} (line {})", s.index, section, s.name, s.line).unwrap();
    }
    out
}

#[test]
fn cpuhp_6_1() {
    let Some(e) = cpuhp("6.1") else { return };
    assert_eq!(e.section_of("CPUHP_AP_KVM_STARTING"), Some(CpuhpSection::Starting));
    assert_eq!(e.section_of("CPUHP_AP_X86_KVM_CLK_ONLINE"), Some(CpuhpSection::Online));
    assert_eq!(e.section_of("CPUHP_KVM_PPC_BOOK3S_PREPARE"), Some(CpuhpSection::Prepare));
    // Named CPUHP_AP_* but placed before CPUHP_BRINGUP_CPU: still PREPARE.
    assert_eq!(e.section_of("CPUHP_AP_ARM_CACHE_B15_RAC_DEAD"), Some(CpuhpSection::Prepare));
    assert_eq!(e.section_of("CPUHP_AP_ONLINE_DYN"), Some(CpuhpSection::Online));
    assert_eq!(e.section_of("CPUHP_BP_PREPARE_DYN"), Some(CpuhpSection::Prepare));
    assert_eq!(e.section_of("CPUHP_AP_KVM_ONLINE"), None);
    assert_eq!(e.section_of("CPUHP_INVALID"), None);
    let dyn_end = e.get("CPUHP_BP_PREPARE_DYN_END").unwrap();
    assert_eq!(dyn_end.index, e.get("CPUHP_BP_PREPARE_DYN").unwrap().index + 20);
    assert_eq!(e.get("CPUHP_AP_KVM_STARTING").unwrap().line, 186);
    assert_eq!(e.states.len(), 190);
    assert_eq!(e.states.last().unwrap().name, "CPUHP_ONLINE");
    snapshot_settings! { insta::assert_snapshot!("kernel_docs_cpuhp_6_1", table(&e)); }
}

#[test]
fn cpuhp_6_12() {
    let Some(e) = cpuhp("6.12") else { return };
    assert_eq!(e.section_of("CPUHP_AP_KVM_ONLINE"), Some(CpuhpSection::Online));
    assert_eq!(e.section_of("CPUHP_AP_X86_KVM_CLK_ONLINE"), Some(CpuhpSection::Online));
    assert_eq!(e.section_of("CPUHP_AP_KVM_STARTING"), None);
    assert_eq!(e.section_of("CPUHP_BP_KICK_AP"), Some(CpuhpSection::Prepare));
    assert_eq!(e.section_of("CPUHP_AP_IDLE_DEAD"), Some(CpuhpSection::Starting));
    assert_eq!(e.section_of("CPUHP_AP_ARM_CACHE_B15_RAC_DYING"), Some(CpuhpSection::Starting));
    assert_eq!(e.get("CPUHP_AP_KVM_ONLINE").unwrap().line, 198);
    assert_eq!(e.states.len(), 180);
    snapshot_settings! { insta::assert_snapshot!("kernel_docs_cpuhp_6_12", table(&e)); }
}

fn has_ordering(doc: &LockingDoc, outer: &str, inner: &str) -> Option<LockOrdering> {
    doc.orderings.iter().find(|o| o.outer == outer && o.inner == inner).cloned()
}

#[test]
fn locking_6_1() {
    let Some(doc) = locking("6.1") else { return };
    let count = doc.lock("kvm_count_lock").unwrap();
    assert_eq!(count.lock_type, "raw_spinlock_t");
    assert_eq!(count.arch, None);
    assert_eq!(count.protects, ["hardware virtualization enable/disable"]);
    let kvm_lock = doc.lock("kvm_lock").unwrap();
    assert_eq!(kvm_lock.lock_type, "mutex");
    assert_eq!(kvm_lock.protects, ["vm_list"]);
    assert_eq!(doc.lock("kvm_arch::tsc_write_lock").unwrap().arch.as_deref(), Some("x86"));
    assert!(doc.lock("kvm_usage_lock").is_none());
    assert_eq!(doc.locks.len(), 8);
    assert_eq!(doc.orderings.len(), 7);
    let o = has_ordering(&doc, "kvm->lock", "vcpu->mutex").unwrap();
    assert_eq!((o.line, o.arch), (12, None));
    let o = has_ordering(&doc, "kvm->arch.mmu_lock", "kvm->arch.tdp_mmu_pages_lock").unwrap();
    assert_eq!(o.arch.as_deref(), Some("x86"));
    snapshot_settings! { insta::assert_json_snapshot!("kernel_docs_locking_6_1", doc); }
}

#[test]
fn locking_6_12() {
    let Some(doc) = locking("6.12") else { return };
    let usage = doc.lock("kvm_usage_lock").unwrap();
    assert_eq!(usage.lock_type, "mutex");
    assert_eq!(usage.protects, ["kvm_usage_count", "hardware virtualization enable/disable"]);
    assert!(doc.lock("kvm_count_lock").is_none());
    assert_eq!(doc.lock("vendor_module_lock").unwrap().arch.as_deref(), Some("x86"));
    let o = has_ordering(&doc, "cpus_read_lock", "kvm_lock").unwrap();
    assert_eq!(o.text, "cpus_read_lock() is taken outside kvm_lock");
    assert_eq!(o.line, 12);
    assert!(has_ordering(&doc, "kvm_usage_lock", "cpus_read_lock").is_some());
    assert!(has_ordering(&doc, "vcpu->mutex", "kvm->arch.xen.xen_lock").is_some());
    assert!(has_ordering(&doc, "kvm->arch.mmu_lock", "kvm->arch.mmu_unsync_pages_lock").is_some());
    assert_eq!(doc.locks.len(), 9);
    assert_eq!(doc.orderings.len(), 10);
    snapshot_settings! { insta::assert_json_snapshot!("kernel_docs_locking_6_12", doc); }
}
