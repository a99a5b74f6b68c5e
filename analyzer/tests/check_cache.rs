//! The incremental checker: per-arch results reused through the result
//! cache (in memory and on disk) give the very report a full check gives,
//! and only what changed is recomputed.

#[path = "../../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;
#[path = "../../test-support/kernel_cache.rs"]
mod kernel_cache;

use std::path::{Path, PathBuf};

use analyzer::api::ApiModel;
use analyzer::cache::{analysis_version, FactsCache, ResultCache};
use analyzer::check::{check, CheckStats, Checker};
use analyzer::pipeline::ParsedTree;
use analyzer::report::findings::render_json;
use analyzer::rules::RuleSelection;
use analyzer::source::{SourceOptions, SourceSpec, SourceTree};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kvm-fixtures/default")
}

fn load(dir: &Path) -> SourceTree {
    SourceTree::load(&SourceSpec::Dir(dir.to_path_buf()), &SourceOptions::default()).expect("load")
}

/// A scratch copy of the default fixture.
fn scratch_fixture() -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), tree.path());
    tree
}

/// The full, uncached report of a tree, as JSON.
fn full(dir: &Path, selection: &RuleSelection) -> String {
    render_json(&check(&ParsedTree::from_source(load(dir)), &ApiModel::default(), selection))
}

fn result_entries(cache: &Path) -> Vec<PathBuf> {
    let dir = cache.join(analysis_version()).join("results");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn a_second_run_reuses_every_arch_and_reports_the_same() {
    let cache = tempfile::tempdir().unwrap();
    let api = ApiModel::default();
    let sel = RuleSelection::default();
    let arches = load(&fixture()).arches.len();
    assert!(arches >= 4, "the default fixture has several arches");

    let facts = FactsCache::with_dir(cache.path()).unwrap();
    let first =
        Checker::new(&api, &facts, ResultCache::with_dir(cache.path()).unwrap(), sel.clone()).check(load(&fixture()));
    assert_eq!(first.stats, CheckStats { analyzed: arches, reused: 0, parsed_tree: true });
    assert!(!first.report.findings.is_empty(), "the fixture has findings");
    assert_eq!(render_json(&first.report), full(&fixture(), &sel));
    // One entry per arch, the tree's input warnings, and one summary (usage
    // and warnings) per C file.
    let kind = |k: &str| {
        result_entries(cache.path())
            .iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{k}-")))
            .count()
    };
    let c_files = load(&fixture()).files.iter().filter(|f| f.path.ends_with(".c") || f.path.ends_with(".h")).count();
    assert_eq!((kind("arch"), kind("tree"), kind("file")), (arches, 1, c_files));
    assert_eq!(result_entries(cache.path()).len(), arches + 1 + c_files);

    // A new process: nothing in memory, everything on disk; not even parsed.
    let facts = FactsCache::with_dir(cache.path()).unwrap();
    let results = ResultCache::with_dir(cache.path()).unwrap();
    let checker = Checker::new(&api, &facts, results, sel.clone());
    let second = checker.check(load(&fixture()));
    assert_eq!(second.stats, CheckStats { analyzed: 0, reused: arches, parsed_tree: false });
    assert_eq!(facts.stats().parsed + facts.stats().disk_hits, 0);
    assert_eq!(checker.results().stats().disk_hits, arches + 1);
    assert_eq!(render_json(&second.report), render_json(&first.report));
    assert_eq!(second.input_warnings, first.input_warnings);
}

#[test]
fn a_change_recomputes_only_the_arches_that_read_it() {
    let tree = scratch_fixture();
    let (api, sel, facts) = (ApiModel::default(), RuleSelection::default(), FactsCache::in_memory());
    let checker = Checker::new(&api, &facts, ResultCache::in_memory(), sel.clone());
    let arches = checker.check(load(tree.path())).stats.analyzed;

    // An arch file: that arch only, one file parsed again.
    let x86 = tree.path().join("arch/x86/kvm/x86.c");
    let mut text = std::fs::read_to_string(&x86).unwrap();
    text.push_str("\nstatic int kvmtk_test_probe(void)\n{\n\treturn 0;\n}\n");
    std::fs::write(&x86, &text).unwrap();
    let parsed_before = facts.stats().parsed;
    let after = checker.check(load(tree.path()));
    assert_eq!(after.stats, CheckStats { analyzed: 1, reused: arches - 1, parsed_tree: true });
    assert_eq!(facts.stats().parsed, parsed_before + 1);
    assert_eq!(render_json(&after.report), full(tree.path(), &sel));

    // A common file: every arch.
    let main = tree.path().join("virt/kvm/kvm_main.c");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str("\n/* a comment changes the blob, not the findings */\n");
    std::fs::write(&main, &text).unwrap();
    let after = checker.check(load(tree.path()));
    assert_eq!(after.stats.analyzed, arches);
    assert_eq!(render_json(&after.report), full(tree.path(), &sel));
}

#[test]
fn another_rule_selection_or_api_model_is_not_reused() {
    let api = ApiModel::default();
    let facts = FactsCache::in_memory();
    let results = ResultCache::in_memory();
    let all = Checker::new(&api, &facts, results, RuleSelection::default());
    let n = all.check(load(&fixture())).stats.analyzed;
    assert_eq!(all.check(load(&fixture())).stats.reused, n);

    // Same caches' contents, other keys: a selection that drops HW005.
    let only = RuleSelection { ignore: vec!["HW005".into()], ..RuleSelection::default() };
    assert_ne!(only.fingerprint(), RuleSelection::default().fingerprint());
    let cache = tempfile::tempdir().unwrap();
    let c1 = Checker::new(&api, &facts, ResultCache::with_dir(cache.path()).unwrap(), RuleSelection::default());
    c1.check(load(&fixture()));
    let c2 = Checker::new(&api, &facts, ResultCache::with_dir(cache.path()).unwrap(), only.clone());
    let r = c2.check(load(&fixture()));
    assert_eq!(r.stats.reused, 0);
    assert!(r.report.findings.iter().all(|f| f.rule != "HW005"));
    assert_eq!(render_json(&r.report), full(&fixture(), &only));

    // Another API model: one more heavy operation is another model.
    let text = analyzer::api::DEFAULT_API_MODEL.replacen(
        "[heavy]\nfunctions = [",
        "[heavy]\nfunctions = [\"kvmtk_test_heavy\", ",
        1,
    );
    assert_ne!(text, analyzer::api::DEFAULT_API_MODEL);
    let other = ApiModel::from_toml("other.toml", &text).expect("valid model");
    assert_ne!(other.fingerprint(), api.fingerprint());
    let c3 = Checker::new(&other, &facts, ResultCache::with_dir(cache.path()).unwrap(), RuleSelection::default());
    assert_eq!(c3.check(load(&fixture())).stats.reused, 0);
    assert_eq!(ApiModel::default().fingerprint(), api.fingerprint(), "stable across loads");
}

#[test]
fn corrupt_result_entries_are_recomputed() {
    let cache = tempfile::tempdir().unwrap();
    let api = ApiModel::default();
    let sel = RuleSelection::default();
    let facts = FactsCache::in_memory();
    let first =
        Checker::new(&api, &facts, ResultCache::with_dir(cache.path()).unwrap(), sel.clone()).check(load(&fixture()));
    let entries = result_entries(cache.path());
    std::fs::write(&entries[0], b"garbage").unwrap();
    let bytes = std::fs::read(&entries[1]).unwrap();
    std::fs::write(&entries[1], &bytes[..bytes.len() / 2]).unwrap();
    let results = ResultCache::with_dir(cache.path()).unwrap();
    let checker = Checker::new(&api, &facts, results, sel);
    let again = checker.check(load(&fixture()));
    assert_eq!(checker.results().stats().rejected, 2);
    assert_eq!(render_json(&again.report), render_json(&first.report));
    // Rewritten whole: a third run reads every entry back.
    let results = ResultCache::with_dir(cache.path()).unwrap();
    let checker = Checker::new(&api, &facts, results, RuleSelection::default());
    assert!(!checker.check(load(&fixture())).stats.parsed_tree);
    assert_eq!(checker.results().stats().rejected, 0);
}

#[test]
fn what_the_rules_ask_of_the_whole_tree_is_part_of_every_arch_key() {
    // HW013 asks whether a documented lock is defined or taken anywhere in
    // the tree, so an arm64 edit that defines one changes x86's findings:
    // every arch is analyzed again. An arm64 edit that changes no answer
    // (no usage at all, or a lock nobody documents) re-analyzes arm64 only.
    let tree = scratch_fixture();
    let doc = tree.path().join("Documentation/virt/kvm/locking.rst");
    let mut rst = std::fs::read_to_string(&doc).unwrap();
    rst.push_str("\n``kvmtk_test_lock``\n^^^^^^^^^^^^^^^^^^^^\n\n:Type:\t\tspinlock_t\n:Arch:\t\tany\n:Protects:\t- kvmtk_test_count\n");
    std::fs::write(&doc, rst).unwrap();
    let (api, sel, facts) = (ApiModel::default(), RuleSelection::default(), FactsCache::in_memory());
    let checker = Checker::new(&api, &facts, ResultCache::in_memory(), sel.clone());
    let first = checker.check(load(tree.path()));
    let arches = first.stats.analyzed;
    let documented_missing = |r: &analyzer::check::CheckReport| {
        r.findings.iter().any(|f| f.rule == "HW013" && f.message.contains("`kvmtk_test_lock`"))
    };
    assert!(documented_missing(&first.report), "the documented lock is reported missing");
    let arm = tree.path().join("arch/arm64/kvm/arm.c");
    let mut text = std::fs::read_to_string(&arm).unwrap();

    text.push_str("\n/* no usage changes */\n");
    std::fs::write(&arm, &text).unwrap();
    let after = checker.check(load(tree.path()));
    assert_eq!(after.stats, CheckStats { analyzed: 1, reused: arches - 1, parsed_tree: true });

    // A new lock, taken, that no document names: no answer changes.
    text.push_str("\nstatic DEFINE_SPINLOCK(kvmtk_other_lock);\n\nvoid kvmtk_other_take(void)\n{\n\tspin_lock(&kvmtk_other_lock);\n\tspin_unlock(&kvmtk_other_lock);\n}\n");
    std::fs::write(&arm, &text).unwrap();
    let after = checker.check(load(tree.path()));
    assert_eq!(after.stats, CheckStats { analyzed: 1, reused: arches - 1, parsed_tree: true });
    assert_eq!(render_json(&after.report), full(tree.path(), &sel));

    // The documented lock, defined and taken in arm64: every arch's HW013
    // answer changes.
    text.push_str("\nstatic DEFINE_SPINLOCK(kvmtk_test_lock);\n\nvoid kvmtk_test_take(void)\n{\n\tspin_lock(&kvmtk_test_lock);\n\tspin_unlock(&kvmtk_test_lock);\n}\n");
    std::fs::write(&arm, &text).unwrap();
    let after = checker.check(load(tree.path()));
    assert_eq!(after.stats, CheckStats { analyzed: arches, reused: 0, parsed_tree: true });
    assert!(!documented_missing(&after.report));
    assert_eq!(render_json(&after.report), full(tree.path(), &sel));
}

#[test]
fn on_linux_6_1_an_arm64_commit_taking_a_new_lock_re_analyzes_arm64_only() {
    // The most common shape of a commit: new data and a lock for it, in one
    // arch. No documented lock appears or disappears, so the other arches'
    // results stay valid.
    let Some(kernel) = kernel_cache::kernel_tree("linux-6.1") else { return };
    let tree = tempfile::tempdir().unwrap();
    copy_tree(&kernel, tree.path());
    let (api, sel, facts) = (ApiModel::default(), RuleSelection::default(), FactsCache::in_memory());
    let checker = Checker::new(&api, &facts, ResultCache::in_memory(), sel.clone());
    let arches = checker.check(load(tree.path())).stats.analyzed;
    assert!(arches >= 6, "6.1 has KVM in six arches");
    let arm = tree.path().join("arch/arm64/kvm/arm.c");
    let mut text = std::fs::read_to_string(&arm).unwrap();
    text.push_str(concat!(
        "\nstatic DEFINE_SPINLOCK(kvm_arm_stat_lock);\nstatic unsigned long kvm_arm_stat_count;\n",
        "\nvoid kvm_arm_stat_account(void)\n{\n\tspin_lock(&kvm_arm_stat_lock);\n",
        "\tkvm_arm_stat_count++;\n\tspin_unlock(&kvm_arm_stat_lock);\n}\n"
    ));
    std::fs::write(&arm, &text).unwrap();
    let after = checker.check(load(tree.path()));
    assert_eq!(after.stats, CheckStats { analyzed: 1, reused: arches - 1, parsed_tree: true });
    assert_eq!(render_json(&after.report), full(tree.path(), &sel));
}
