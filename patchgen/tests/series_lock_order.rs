//! Issue 15: `series test` fails a patch that closes a lock-order cycle.
//! `kvm-fixtures/broken-series/wait-under-lock/` re-creates, under other
//! names, what a generated kvm_arch_add_vm() patch did on 6.1: its second
//! patch calls an arch hook with the usage count's mutex held, and the x86
//! hook waits (`wait_for_completion()`) for a worker that first calls
//! `cgroup_attach_task_all()` (`cpus_read_lock()`), while the ONLINE
//! callbacks take that mutex with `cpu_hotplug_lock` held for write. The
//! first patch passes; the second introduces HW014 and fails.

mod series_common;

use std::path::{Path, PathBuf};

use analyzer::api::ApiModel;
use analyzer::source::SourceSpec;
use patchgen::series::apply::load_series;
use patchgen::series::test::{render_text, test_series, Outcome, TestOptions};
use series_common::*;

const SERIES_DIR: &str = "../kvm-fixtures/broken-series/wait-under-lock";
const TREE: &str = "../kvm-fixtures/broken-series/wait-under-lock/tree";

#[test]
fn the_patch_that_waits_under_the_usage_lock_fails_with_a_cycle() {
    let spec = SourceSpec::Dir(PathBuf::from(TREE));
    let tree = load(&spec);
    let api = ApiModel::default();
    let base = analyzer::check::check(&tree, &api, &analyzer::rules::RuleSelection::default());
    assert!(base.findings.is_empty(), "the base tree is clean: {:#?}", base.findings);
    let patches = load_series(Path::new(SERIES_DIR)).expect("the fixture series loads");
    assert_eq!(patches.len(), 2);
    let r = test_series(&spec, tree, &api, SERIES_DIR, &patches, &TestOptions::default()).expect("series test runs");
    assert!(!r.ok);
    assert_eq!(r.exit_code(), 1);
    assert!(r.patches[0].ok, "the comment-only patch passes: {:?}", r.patches[0].failures);
    let p = &r.patches[1];
    assert!(!p.ok);
    assert_eq!(p.applies, Outcome::Pass);
    assert_eq!(p.parses, Outcome::Pass);
    let cycles: Vec<_> = p.introduced.iter().filter(|f| f.rule == "HW014").collect();
    assert_eq!(cycles.len(), 1, "one new cycle: {:#?}", p.introduced);
    assert_eq!(p.introduced.len(), 1, "and nothing else: {:#?}", p.introduced);
    for lock in ["virt_users_lock", "cpu_hotplug_lock"] {
        assert!(cycles[0].symbols.iter().any(|s| s == lock), "{lock} in {:?}", cycles[0].symbols);
    }
    assert!(p.failures.iter().any(|f| f.starts_with("introduces HW014")), "{:?}", p.failures);
    let text = render_text(&r);
    assert!(text.contains("1 of 2 patches failed"), "{text}");
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("series_test_wait_under_lock", text);
    });
}
