//! HW014 on upstream's real series: the v2 rework ported to Debian 6.1.192
//! (`../shared/data/upstream-v2/ported-6.1.192`), applied with `git am -C1`
//! on the KVM subset of 6.1 plus the five headers it touches, and linted
//! commit by commit with only HW014. Exactly "Drop kvm_count_lock" (upstream
//! 0bf50497f03b) introduces a cycle, the one 44d17459626 later fixed:
//! cpu_hotplug_lock -> kvm_lock -> struct kvm.slots_lock -> struct kvm.srcu
//! -> cpu_hotplug_lock, each arrow with its witness from a root. The same
//! classes already close on 6.1 through x86's cpufreq notifier, which takes
//! kvm_lock and runs under the hotplug lock on some paths only (a warning);
//! the culprit closes them on every path (an error, reported as a rise).

mod lint_common;

#[path = "../../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::path::Path;
use std::time::Instant;

use analyzer::api::ApiModel;
use analyzer::cache::FactsCache;
use analyzer::lint::{lint_range, render_report, LintFormat, LintOptions, Linter};
use analyzer::rules::{RuleSelection, Severity};
use lint_common::*;

const CULPRIT: &str = "KVM: Drop kvm_count_lock";

#[test]
fn only_drop_kvm_count_lock_introduces_the_hotplug_kvm_lock_cycle() {
    let Some(kernel) = kernel_cache("linux-6.1") else { return };
    let Some(full) = kernel_cache("full-6.1") else { return };
    let Some(patches) = ported_patches() else { return };

    let t0 = Instant::now();
    let dir = ported_series_repo(&kernel, &full, &patches);
    let r = dir.path();
    let built = t0.elapsed();

    let api = ApiModel::default();
    let cache = FactsCache::in_memory();
    let selection = RuleSelection { only: vec!["HW014".into()], ..Default::default() };
    let mut linter = Linter::new(&api, &cache, LintOptions { selection, ..Default::default() });
    let t1 = Instant::now();
    let report = lint_range(&mut linter, r, "base..HEAD").unwrap().finish(None);
    let linted = t1.elapsed();
    eprintln!(
        "repo built + {} patches applied in {:.1?}; lint base..HEAD (HW014 only) in {:.1?}",
        patches.len(),
        built,
        linted
    );
    eprintln!("{}", render_report(&report, LintFormat::Text));
    assert_eq!(report.steps.len(), patches.len());

    // Only HW014 ran, and only the culprit introduces one.
    for st in &report.steps {
        assert!(st.unanalyzed.is_empty(), "{} not analyzed completely: {:?}", st.subject, st.unanalyzed);
        for f in st.introduced.iter().chain(&st.fixed) {
            assert_eq!(f.rule, "HW014", "{}: {f:?}", st.subject);
        }
        if !st.subject.starts_with(CULPRIT) {
            assert!(st.introduced.is_empty(), "{} introduces {:?}", st.subject, st.introduced);
        }
    }
    let culprit: Vec<_> = report.steps.iter().filter(|s| s.subject.starts_with(CULPRIT)).collect();
    assert_eq!(culprit.len(), 1, "one commit is {CULPRIT}");
    let culprit = culprit[0];
    assert!(!culprit.introduced.is_empty(), "{CULPRIT} introduces no HW014");

    // Among its new findings: the cycle 44d17459626 fixed.
    let wanted = ["cpu_hotplug_lock", "kvm_lock", "struct kvm.slots_lock", "struct kvm.srcu"];
    let has_all = |symbols: &[String]| wanted.iter().all(|w| symbols.iter().any(|s| s == w));
    let summary = culprit.introduced.iter().find(|f| has_all(&f.symbols));
    let summary = summary.unwrap_or_else(|| panic!("no cycle through {wanted:?}: {:?}", culprit.introduced));
    let finding = report.new.findings.iter().find(|f| f.rule == "HW014" && f.fingerprint == summary.fingerprint);
    let finding = finding.unwrap_or_else(|| panic!("{summary:?} not among the new findings"));
    assert!(finding.message.starts_with("possible circular locking dependency: "), "{}", finding.message);
    assert_eq!(finding.severity, Severity::Error, "{}", finding.message);
    // 6.1 had it as a warning: the arrow cpu_hotplug_lock -> kvm_lock came
    // from kvmclock_cpufreq_notifier() only.
    assert_eq!(summary.was, Some(Severity::Warning), "{summary:?}");

    // Every arrow has a witness: a segment of the evidence that starts at
    // a root (a step with its context, naming the arrow) and ends where
    // the next class is taken (the arrow's related place).
    assert!(finding.related.len() >= wanted.len(), "{finding:?}");
    for (i, rel) in finding.related.iter().enumerate() {
        let tag = format!("#{i} ");
        let start = finding.evidence.iter().position(|s| s.via.as_deref().is_some_and(|v| v.starts_with(&tag)));
        let start = start.unwrap_or_else(|| panic!("arrow {i} ({}) has no witness: {finding:?}", rel.message));
        let end = finding.evidence[start + 1..]
            .iter()
            .position(|s| s.via.as_deref().is_some_and(|v| v.starts_with('#')))
            .map_or(finding.evidence.len(), |n| start + 1 + n);
        let segment = &finding.evidence[start..end];
        assert!(!segment[0].context.is_empty(), "arrow {i}: its root has no context: {segment:?}");
        let site = segment.last().unwrap();
        assert_eq!((site.file.as_str(), site.line), (rel.file.as_str(), rel.line), "arrow {i}: {segment:?}");
        eprintln!("arrow {i}: {} ({} steps from {}())", rel.message, segment.len(), segment[0].function);
    }
}

/// Each HW014 of `tree`: its severity, message and classes.
fn hw014_cycles(tree: &Path) -> Vec<(Severity, String, Vec<String>)> {
    use analyzer::check::check;
    use analyzer::pipeline::ParsedTree;
    use analyzer::source::{SourceOptions, SourceSpec};
    let parsed = ParsedTree::load(&SourceSpec::Dir(tree.into()), &SourceOptions::default()).unwrap();
    let selection = RuleSelection { only: vec!["HW014".into()], ..Default::default() };
    let report = check(&parsed, &ApiModel::default(), &selection);
    for f in &report.findings {
        eprintln!("{}: {}:{}: {}", tree.display(), f.file, f.line, f.message);
    }
    report.findings.iter().map(|f| (f.severity, f.message.clone(), f.symbols.clone())).collect()
}

/// 6.3's shape on 6.12: the ONLINE callback enables under `kvm_lock`.
#[test]
fn linux_6_12_online_callback_under_kvm_lock_closes_the_cycle() {
    let Some(kernel) = kernel_cache("linux-6.12") else { return };
    let wanted = ["cpu_hotplug_lock", "kvm_lock", "struct kvm.slots_lock", "struct kvm.srcu"];
    let errors_through = |cycles: &[(Severity, String, Vec<String>)]| {
        cycles.iter().any(|(sev, _, c)| *sev == Severity::Error && wanted.iter().all(|w| c.iter().any(|s| s == w)))
    };
    let unmodified = hw014_cycles(&kernel);
    // 6.12 gives the usage count its own lock (kvm_usage_lock), taken
    // outside kvm_lock: no error. What is left is upstream's known hazard
    // (locking.rst, vendor_module_lock: kvm_lock "is taken in notifiers,
    // e.g. __kvmclock_cpufreq_notifier(), that may be invoked while
    // cpu_hotplug_lock is held"): the same four classes, as a warning.
    assert!(!errors_through(&unmodified), "unmodified 6.12: {unmodified:?}");
    assert_eq!(unmodified.len(), 1, "unmodified 6.12: {unmodified:?}");
    let (sev, message, classes) = &unmodified[0];
    assert_eq!(*sev, Severity::Warning, "{message}");
    assert!(message.contains("(`cpu_hotplug_lock` held by some callers only)"), "{message}");
    assert_eq!(classes.len(), wanted.len(), "{classes:?}");
    assert!(wanted.iter().all(|w| classes.iter().any(|s| s == w)), "{classes:?}");

    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("linux");
    copy_tree(&kernel, &copy);
    let main = copy.join("virt/kvm/kvm_main.c");
    let src = std::fs::read_to_string(&main).unwrap();
    let from = "static int kvm_online_cpu(unsigned int cpu)\n{\n";
    let body = "\treturn kvm_enable_virtualization_cpu();\n}\n";
    let at = src.find(from).expect("6.12's kvm_online_cpu()");
    let end = at + src[at..].find(body).expect("6.12's kvm_online_cpu() returns the enable") + body.len();
    let locked = format!(
        "{from}\tint ret;\n\n\tmutex_lock(&kvm_lock);\n\tret = kvm_enable_virtualization_cpu();\n\
         \tmutex_unlock(&kvm_lock);\n\treturn ret;\n}}\n"
    );
    std::fs::write(&main, format!("{}{locked}{}", &src[..at], &src[end..])).unwrap();
    let modified = hw014_cycles(&copy);
    assert!(errors_through(&modified), "6.12 with kvm_lock in the ONLINE callback: {modified:?}");
    // Only the new shape's cycles are new: each goes through kvm_lock.
    for (_, _, c) in &modified {
        assert!(c.iter().any(|s| s == "kvm_lock"), "{c:?}");
    }
}
