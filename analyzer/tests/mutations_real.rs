//! Mutation test on the real 6.1 tree: realistic edits of a copy (renames,
//! helper extractions, added locks, moved callbacks, new counters, removed
//! unwinds, equivalent spellings), each with the finding delta a reviewer
//! expects, computed by `kvmtk lint`'s own step (a finding is introduced
//! when its fingerprint is not among the parent's, or only at a lower
//! severity; fixed when the parent's is gone). A refactor that only renames or extracts must show no delta:
//! fingerprints name what a finding is about, not where it sits.

#[path = "source_common/mod.rs"]
mod source_common;

#[path = "../../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::path::Path;

use analyzer::api::ApiModel;
use analyzer::cache::{FactsCache, ResultCache};
use analyzer::check::{CheckReport, Checker};
use analyzer::lint::{LintBuilder, TreeCheck};
use analyzer::rules::RuleSelection;
use analyzer::source::{SourceOptions, SourceSpec, SourceTree};

/// One edit of one file.
enum Edit {
    /// Replace the one occurrence of `from` (it must occur exactly once).
    Once { path: &'static str, from: &'static str, to: &'static str },
    /// Rename an identifier (whole words) in each file; it must occur.
    Rename { paths: &'static [&'static str], from: &'static str, to: &'static str },
}

struct Mutation {
    name: &'static str,
    edits: Vec<Edit>,
    /// (rule, file) of each finding the edit introduces / fixes.
    introduced: &'static [(&'static str, &'static str)],
    fixed: &'static [(&'static str, &'static str)],
}

const KVM_MAIN: &str = "virt/kvm/kvm_main.c";
const X86: &str = "arch/x86/kvm/x86.c";
const ARM: &str = "arch/arm64/kvm/arm.c";
const VZ: &str = "arch/mips/kvm/vz.c";
const HV_BUILTIN: &str = "arch/powerpc/kvm/book3s_hv_builtin.c";
const HV: &str = "arch/powerpc/kvm/book3s_hv.c";
const CPUHP: &str = "include/linux/cpuhotplug.h";

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `text` with every whole-word `from` replaced by `to`, and the count.
fn rename_word(text: &str, from: &str, to: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut i = 0;
    while let Some(at) = text[i..].find(from).map(|k| k + i) {
        let before_ok = at == 0 || !is_word_byte(bytes[at - 1]);
        let end = at + from.len();
        let after_ok = end >= bytes.len() || !is_word_byte(bytes[end]);
        out.push_str(&text[i..at]);
        if before_ok && after_ok {
            out.push_str(to);
            n += 1;
        } else {
            out.push_str(from);
        }
        i = end;
    }
    out.push_str(&text[i..]);
    (out, n)
}

/// Apply the edits under `root`; the original contents, to restore.
fn apply(root: &Path, m: &Mutation) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut saved: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
    let mut save = |p: &Path| {
        if !saved.iter().any(|(q, _)| q == p) {
            saved.push((p.to_path_buf(), std::fs::read(p).unwrap()));
        }
    };
    for e in &m.edits {
        match e {
            Edit::Once { path, from, to } => {
                let p = root.join(path);
                save(&p);
                let text = std::fs::read_to_string(&p).unwrap();
                assert_eq!(text.matches(from).count(), 1, "{}: `{from}` must occur once in {path}", m.name);
                std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
            }
            Edit::Rename { paths, from, to } => {
                for path in *paths {
                    let p = root.join(path);
                    save(&p);
                    let text = std::fs::read_to_string(&p).unwrap();
                    let (new, n) = rename_word(&text, from, to);
                    assert!(n > 0, "{}: `{from}` does not occur in {path}", m.name);
                    std::fs::write(&p, new).unwrap();
                }
            }
        }
    }
    saved
}

/// A finding as the expectations name it: (rule, file).
type RuleFile = (String, String);

/// The (rule, file) of the findings the step `base` -> `head` introduces
/// and fixes, as `kvmtk lint` reports them.
fn delta(base: &CheckReport, head: &CheckReport) -> (Vec<RuleFile>, Vec<RuleFile>) {
    let side = |r: &CheckReport| TreeCheck { report: r.clone(), unanalyzed: Vec::new() };
    let mut b = LintBuilder::new("range", "mutation", &side(base));
    b.push("head", "mutation", &side(base), side(head), None);
    let report = b.finish(None);
    let step = &report.steps[0];
    let list = |fs: &[analyzer::lint::FindingSummary]| {
        let mut v: Vec<(String, String)> = fs.iter().map(|f| (f.rule.clone(), f.file.clone())).collect();
        v.sort();
        v
    };
    (list(&step.introduced), list(&step.fixed))
}

fn expected(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list.iter().map(|(r, f)| (r.to_string(), f.to_string())).collect();
    v.sort();
    v
}

fn mutations() -> Vec<Mutation> {
    use Edit::*;
    vec![
        // --- pure refactors: no delta ---
        Mutation {
            name: "rename the per-CPU enable callback",
            edits: vec![Rename { paths: &[KVM_MAIN], from: "hardware_enable_nolock", to: "kvm_enable_this_cpu" }],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename the disable-all helper",
            edits: vec![Rename {
                paths: &[KVM_MAIN],
                from: "hardware_disable_all_nolock",
                to: "kvm_put_hardware_locked",
            }],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "extract the enable broadcast into a helper",
            edits: vec![
                Once {
                    path: KVM_MAIN,
                    from: "\t\ton_each_cpu(hardware_enable_nolock, NULL, 1);\n\n\t\tif (atomic_read(&hardware_enable_failed)) {",
                    to: "\t\tkvm_enable_on_all_cpus();\n\n\t\tif (atomic_read(&hardware_enable_failed)) {",
                },
                Once {
                    path: KVM_MAIN,
                    from: "static int hardware_enable_all(void)\n{",
                    to: "static void kvm_enable_on_all_cpus(void)\n{\n\ton_each_cpu(hardware_enable_nolock, NULL, 1);\n}\n\nstatic int hardware_enable_all(void)\n{",
                },
            ],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename the user-return MSR snapshot",
            edits: vec![Rename {
                paths: &[X86],
                from: "kvm_user_return_msr_cpu_online",
                to: "kvm_snapshot_user_return_msrs",
            }],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename kvm_init's unwind labels",
            edits: vec![
                Rename { paths: &[KVM_MAIN], from: "err_vfio", to: "out_async_pf" },
                Rename { paths: &[KVM_MAIN], from: "err_register", to: "out_vfio" },
            ],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename the PPC HV init function",
            edits: vec![Rename { paths: &[HV], from: "kvmppc_book3s_init_hv", to: "kvmppc_hv_module_init" }],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename PPC's VM activation hooks",
            edits: vec![
                Rename { paths: &[HV_BUILTIN, HV], from: "kvm_hv_vm_activated", to: "kvmppc_hv_vm_get" },
                Rename { paths: &[HV_BUILTIN, HV], from: "kvm_hv_vm_deactivated", to: "kvmppc_hv_vm_put" },
            ],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename arm64's init_subsystems",
            edits: vec![Rename { paths: &[ARM], from: "init_subsystems", to: "kvm_arm_init_subsystems" }],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename MIPS VZ's enable hook",
            edits: vec![Rename { paths: &[VZ], from: "kvm_vz_hardware_enable", to: "kvm_vz_cpu_enable" }],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "rename the reboot notifier",
            edits: vec![Rename { paths: &[KVM_MAIN], from: "kvm_reboot", to: "kvm_reboot_notify" }],
            introduced: &[],
            fixed: &[],
        },
        // --- equivalent spellings: no delta ---
        Mutation {
            name: "broadcast through on_each_cpu_mask(cpu_online_mask)",
            edits: vec![Once {
                path: KVM_MAIN,
                from: "\t\ton_each_cpu(hardware_enable_nolock, NULL, 1);\n",
                to: "\t\ton_each_cpu_mask(cpu_online_mask, hardware_enable_nolock, NULL, 1);\n",
            }],
            introduced: &[],
            fixed: &[],
        },
        Mutation {
            name: "spell the hotplug lock with guard()",
            edits: vec![Once {
                path: KVM_MAIN,
                from: "\tkvm_rebooting = true;\n\ton_each_cpu(hardware_disable_nolock, NULL, 1);\n",
                to: "\tkvm_rebooting = true;\n\tguard(cpus_read_lock)();\n\ton_each_cpu(hardware_disable_nolock, NULL, 1);\n",
            }],
            introduced: &[],
            fixed: &[("HW004", KVM_MAIN)],
        },
        // --- fixes ---
        Mutation {
            name: "hold the hotplug lock around the enable broadcast",
            edits: vec![
                Once {
                    path: KVM_MAIN,
                    from: "\tint r = 0;\n\n\traw_spin_lock(&kvm_count_lock);\n\n\tkvm_usage_count++;",
                    to: "\tint r = 0;\n\n\tcpus_read_lock();\n\traw_spin_lock(&kvm_count_lock);\n\n\tkvm_usage_count++;",
                },
                Once {
                    path: KVM_MAIN,
                    from: "\traw_spin_unlock(&kvm_count_lock);\n\n\treturn r;",
                    to: "\traw_spin_unlock(&kvm_count_lock);\n\tcpus_read_unlock();\n\n\treturn r;",
                },
            ],
            // Taken outside the count's lock, as the hotplug callbacks have
            // it: no lock-order cycle.
            introduced: &[],
            fixed: &[("HW004", KVM_MAIN)],
        },
        Mutation {
            name: "hold the hotplug lock in the reboot notifier",
            edits: vec![Once {
                path: KVM_MAIN,
                from: "\tkvm_rebooting = true;\n\ton_each_cpu(hardware_disable_nolock, NULL, 1);\n",
                to: "\tkvm_rebooting = true;\n\tcpus_read_lock();\n\ton_each_cpu(hardware_disable_nolock, NULL, 1);\n\tcpus_read_unlock();\n",
            }],
            introduced: &[],
            fixed: &[("HW004", KVM_MAIN)],
        },
        Mutation {
            name: "unwind the syscore registration in kvm_init",
            edits: vec![Once {
                path: KVM_MAIN,
                from: "err_vfio:\n\tkvm_async_pf_deinit();\n",
                to: "err_vfio:\n\tunregister_syscore_ops(&kvm_syscore_ops);\n\tkvm_async_pf_deinit();\n",
            }],
            introduced: &[],
            fixed: &[("HW011", KVM_MAIN)],
        },
        Mutation {
            name: "drop PPC HV's private VM counter",
            edits: vec![
                Once { path: HV_BUILTIN, from: "\tatomic_inc(&hv_vm_count);\n", to: "" },
                Once { path: HV_BUILTIN, from: "\tatomic_dec(&hv_vm_count);\n", to: "" },
            ],
            introduced: &[],
            fixed: &[("HW010", HV_BUILTIN)],
        },
        // --- regressions ---
        Mutation {
            name: "remove the cpumask unwind from kvm_init",
            edits: vec![Once {
                path: KVM_MAIN,
                from: "out_free_1:\n\tfree_cpumask_var(cpus_hardware_enabled);\n",
                to: "out_free_1:\n",
            }],
            introduced: &[("HW011", KVM_MAIN)],
            fixed: &[],
        },
        Mutation {
            name: "take a mutex in the STARTING-section callback",
            edits: vec![Once {
                path: KVM_MAIN,
                from: "static int kvm_starting_cpu(unsigned int cpu)\n{\n\traw_spin_lock(&kvm_count_lock);",
                to: "static int kvm_starting_cpu(unsigned int cpu)\n{\n\tmutex_lock(&kvm_lock);\n\tmutex_unlock(&kvm_lock);\n\traw_spin_lock(&kvm_count_lock);",
            }],
            // Sleeping with interrupts off, and kvm_lock taken under the
            // hotplug lock on every path: upstream's 44d17459 cycle (kvm_lock
            // -> kvm->slots_lock -> kvm->srcu -> cpu_hotplug_lock) and a
            // longer one through x86's Xen code, both warnings before (the
            // cpufreq notifier closes them on some paths only), now errors.
            introduced: &[("HW007", KVM_MAIN), ("HW014", KVM_MAIN), ("HW014", KVM_MAIN)],
            fixed: &[],
        },
        Mutation {
            name: "a new private VM counter on arm64",
            edits: vec![
                Once {
                    path: ARM,
                    from: "int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)\n{\n\tint ret;\n",
                    to: "static atomic_t kvm_arm_nr_vms;\n\nint kvm_arch_init_vm(struct kvm *kvm, unsigned long type)\n{\n\tint ret;\n\n\tatomic_inc(&kvm_arm_nr_vms);\n",
                },
                Once {
                    path: ARM,
                    from: "void kvm_arch_destroy_vm(struct kvm *kvm)\n{\n",
                    to: "void kvm_arch_destroy_vm(struct kvm *kvm)\n{\n\tatomic_dec(&kvm_arm_nr_vms);\n",
                },
            ],
            introduced: &[("HW010", ARM)],
            fixed: &[],
        },
        Mutation {
            name: "rename the enabled-CPUs mask (the object changes)",
            edits: vec![Rename { paths: &[KVM_MAIN], from: "cpus_hardware_enabled", to: "kvm_enabled_cpus" }],
            // HW005 is about the mask: a new object, a new identity. HW004 is
            // about the broadcasts, which keep theirs.
            introduced: &[("HW005", KVM_MAIN)],
            fixed: &[("HW005", KVM_MAIN)],
        },
        Mutation {
            name: "move the hotplug callbacks to the ONLINE section",
            edits: vec![
                Rename { paths: &[KVM_MAIN], from: "CPUHP_AP_KVM_STARTING", to: "CPUHP_AP_KVM_ONLINE" },
                Once {
                    path: CPUHP,
                    from: "\tCPUHP_AP_ONLINE_DYN,\n",
                    to: "\tCPUHP_AP_KVM_ONLINE,\n\tCPUHP_AP_ONLINE_DYN,\n",
                },
            ],
            // The broadcasts still race with the (moved) callbacks: same
            // HW004s. HW006 stays on `kvm_count_lock` (now "nothing needs it
            // atomic"): one lock, one identity, whatever the message says.
            introduced: &[],
            fixed: &[],
        },
    ]
}

#[test]
fn linux_6_1_mutations_have_the_expected_finding_delta() {
    let Some(src) = source_common::real_kernel("6.1") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("linux");
    copy_tree(&src, &root);
    let api = ApiModel::default();
    let facts = FactsCache::in_memory();
    let checker = Checker::new(&api, &facts, ResultCache::in_memory(), RuleSelection::default());
    let load = || SourceTree::load(&SourceSpec::Dir(root.clone()), &SourceOptions::default()).expect("tree loads");
    let base = checker.check(load()).report;
    assert!(base.findings.len() > 10, "the base tree has its findings");
    let all = mutations();
    assert!(all.len() >= 20, "at least 20 mutations");
    let mut failures = Vec::new();
    for m in &all {
        let saved = apply(&root, m);
        let head = checker.check(load()).report;
        for (p, bytes) in saved {
            std::fs::write(p, bytes).unwrap();
        }
        let (introduced, fixed) = delta(&base, &head);
        if introduced != expected(m.introduced) || fixed != expected(m.fixed) {
            failures.push(format!(
                "{}:\n  introduced {:?} (expected {:?})\n  fixed {:?} (expected {:?})",
                m.name,
                introduced,
                expected(m.introduced),
                fixed,
                expected(m.fixed)
            ));
        }
    }
    assert!(failures.is_empty(), "mutations with an unexpected delta:\n{}", failures.join("\n"));
}
