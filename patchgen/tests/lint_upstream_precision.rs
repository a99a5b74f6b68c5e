//! HW011 and HW010 on upstream's real series: the v2 rework ported to
//! Debian 6.1.192 (`../shared/data/upstream-v2/ported-6.1.192`), applied
//! with `git am -C1` on the KVM subset of 6.1, linted commit by commit.
//!
//! - The two arm64 patches that complete `kvm_arch_init()`'s unwind
//!   (upstream v2 17 and 18) each fix an arm64 HW011 of `arch/arm64/kvm/arm.c`
//!   and introduce none.
//! - Once s390 and PPC opt out of the generic hardware enabling (ported 44,
//!   upstream 49), PPC's private counters mirror nothing: 6.1 reports HW010
//!   for PPC, the opt-out fixes it, and the tip reports none.

mod lint_common;

use analyzer::api::ApiModel;
use analyzer::cache::FactsCache;
use analyzer::check::check;
use analyzer::lint::{lint_range, render_report, FindingSummary, LintFormat, LintOptions, Linter};
use analyzer::pipeline::ParsedTree;
use analyzer::rules::RuleSelection;
use analyzer::source::{SourceOptions, SourceSpec};
use lint_common::*;

const ARM64_UNWINDS: [&str; 2] =
    ["KVM: arm64: Free hypervisor allocations if vector slot", "KVM: arm64: Unregister perf callbacks if hypervisor"];
const OPT_OUT: &str = "KVM: Opt out of generic hardware enabling on s390 and";

fn selection() -> RuleSelection {
    RuleSelection { only: vec!["HW010".into(), "HW011".into()], ..Default::default() }
}

fn is_ppc_hw010(rule: &str, arch: &str) -> bool {
    rule == "HW010" && arch == "powerpc"
}

fn is_arm64_unwind(f: &FindingSummary) -> bool {
    f.rule == "HW011" && f.arch == "arm64" && f.file == "arch/arm64/kvm/arm.c"
}

#[test]
fn arm64_unwind_patches_fix_hw011_and_ppc_opt_out_ends_hw010() {
    let Some(kernel) = kernel_cache("linux-6.1") else { return };
    let Some(full) = kernel_cache("full-6.1") else { return };
    let Some(patches) = ported_patches() else { return };
    let dir = ported_series_repo(&kernel, &full, &patches);
    let r = dir.path();

    let api = ApiModel::default();
    let at = |rev: &str| {
        let spec = SourceSpec::Git { repo: r.to_path_buf(), rev: rev.into() };
        let parsed = ParsedTree::load(&spec, &SourceOptions::default()).expect("the series' trees load");
        check(&parsed, &api, &selection())
    };
    let base = at("base");
    let head = at("HEAD");
    let ppc_base = base.findings.iter().filter(|f| is_ppc_hw010(f.rule, &f.arch)).count();
    assert!(ppc_base > 0, "6.1 reports no HW010 for PPC, so the opt-out proves nothing: {:?}", base.findings);
    let ppc_head: Vec<_> = head.findings.iter().filter(|f| is_ppc_hw010(f.rule, &f.arch)).collect();
    assert!(ppc_head.is_empty(), "HW010 for PPC after the opt-out: {ppc_head:?}");

    let cache = FactsCache::in_memory();
    let mut linter = Linter::new(&api, &cache, LintOptions { selection: selection(), ..Default::default() });
    let report = lint_range(&mut linter, r, "base..HEAD").unwrap().finish(None);
    eprintln!("{}", render_report(&report, LintFormat::Text));
    assert_eq!(report.steps.len(), patches.len());
    for st in &report.steps {
        assert!(st.unanalyzed.is_empty(), "{} not analyzed completely: {:?}", st.subject, st.unanalyzed);
    }
    let step = |subject: &str| {
        let found: Vec<_> = report.steps.iter().filter(|s| s.subject.starts_with(subject)).collect();
        assert_eq!(found.len(), 1, "one commit is {subject}");
        found[0]
    };

    // Each arm64 unwind patch fixes one finding of kvm_arch_init()'s unwind
    // and adds none; the two fixed findings are different ones.
    let mut fixed = Vec::new();
    for subject in ARM64_UNWINDS {
        let st = step(subject);
        let arm: Vec<_> = st.fixed.iter().filter(|f| is_arm64_unwind(f)).collect();
        assert_eq!(arm.len(), 1, "{subject} fixes {:?}", st.fixed);
        assert!(st.introduced.is_empty(), "{subject} introduces {:?}", st.introduced);
        fixed.push(arm[0].fingerprint.clone());
    }
    assert_ne!(fixed[0], fixed[1], "both patches fix the same finding");
    // Nothing of the two is reported again at the tip.
    for f in &head.findings {
        assert!(!fixed.contains(&f.fingerprint), "fixed, then back at HEAD: {f:?}");
    }

    // The opt-out fixes every PPC HW010 the base reports, and no later
    // commit brings one back.
    let opt_out = step(OPT_OUT);
    let ppc_fixed = opt_out.fixed.iter().filter(|f| is_ppc_hw010(&f.rule, &f.arch)).count();
    assert_eq!(ppc_fixed, ppc_base, "{OPT_OUT} fixes {:?}", opt_out.fixed);
    for st in &report.steps {
        let back: Vec<_> = st.introduced.iter().filter(|f| is_ppc_hw010(&f.rule, &f.arch)).collect();
        assert!(back.is_empty(), "{} introduces {back:?}", st.subject);
    }
}
