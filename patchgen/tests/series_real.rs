//! The full `SERIES` on Linux 6.1: generated from a git repository made
//! from the KVM subset of the tree (the patches only touch those files),
//! every patch applies with `git am` one at a time, and `series test`
//! (with checkpatch) passes every patch.

mod series_common;

use std::time::Instant;

use analyzer::api::ApiModel;
use analyzer::source::SourceSpec;
use patchgen::series::apply::load_series;
use patchgen::series::output::{write_series, BranchTarget, WriteOptions};
use patchgen::series::test::{render_text, test_series, TestOptions};
use patchgen::series::{self, render};
use patchgen::transform::SERIES;
use series_common::*;

#[test]
fn full_series_on_linux_6_1_applies_with_git_am_and_passes_series_test() {
    let Some(kernel) = kernel_cache("linux-6.1") else { return };
    let repo = make_repo(&kernel);
    let r = repo.path();
    let spec = SourceSpec::Git { repo: r.into(), rev: "base".into() };
    let api = ApiModel::default();
    let t0 = Instant::now();
    let tree = load(&spec);
    let s = series::generate(tree, &api, SERIES, &opts()).expect("generate");
    let gen_time = t0.elapsed();
    eprintln!(
        "series on linux-6.1: {} patches, {} refused, generated in {:.2?} (load, parse, {} checks)",
        s.patches.len(),
        s.refused.len(),
        gen_time,
        s.patches.len() + 1
    );
    for r in &s.refused {
        eprintln!("  refused {}: {}", r.slug, r.reason);
    }
    for w in &s.warnings {
        eprintln!("  warning: {w}");
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("series");
    let target = BranchTarget { repo: r.into(), rev: "base".into(), name: "kvmtk-series".into() };
    let w = write_series(&s, &WriteOptions { out: dir.clone(), force: false, branch: Some(target) }).unwrap();
    assert_eq!(w.files.len(), s.patches.len() + 1);
    assert_eq!(render(&s, Some(&w.commits)).len(), w.files.len());
    // git am, one patch at a time, on the base.
    git_ok(r, &["checkout", "-q", "--detach", "base"]);
    for f in &w.files[1..] {
        let o = git(r, &["am", "-q", "--no-3way", f.to_str().unwrap()]);
        assert!(o.status.success(), "git am {} failed: {}", f.display(), String::from_utf8_lossy(&o.stderr));
    }
    if let Some(tip) = w.commits.last() {
        assert_eq!(git_ok(r, &["rev-parse", "HEAD^{tree}"]), git_ok(r, &["rev-parse", &format!("{tip}^{{tree}}")]));
    }
    // Steps 1-5 apply to 6.1. Step 6 refuses: calling kvm_arch_add_vm()
    // under the usage count's lock closes a lock-order cycle there (HW014:
    // x86's NX-recovery worker start waits on cpus_read_lock()). Step 7
    // (the 5f6de5cbebee unwind) refuses because 6.1 already carries it.
    let slugs: Vec<&str> = s.patches.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(
        slugs,
        ["uret-msr-first-use", "cpuhp-online", "hotplug-lock", "drop-count-lock", "percpu-enabled"],
        "the 6.1 series"
    );
    assert_eq!(s.refused.iter().map(|r| r.slug.as_str()).collect::<Vec<_>>(), ["arch-add-vm", "unwind-create-vm"]);
    assert!(s.refused[0].reason.contains("HW014") || s.refused[0].reason.contains("cycle"), "{}", s.refused[0].reason);
    let patches = load_series(&dir).unwrap();
    let t1 = Instant::now();
    let checkpatch = kernel.join("scripts/checkpatch.pl");
    let report = test_series(
        &spec,
        load(&spec),
        &api,
        "linux-6.1 series",
        &patches,
        &TestOptions { checkpatch: checkpatch.is_file().then_some(checkpatch), ..Default::default() },
    )
    .unwrap();
    eprintln!("series test on linux-6.1: {:.2?}", t1.elapsed());
    assert!(report.ok, "{}", render_text(&report));
}
