//! The build proof on the whole Debian 6.1 tree: the generated series is
//! applied patch by patch in one scratch copy of the tree and, after each
//! patch, KVM is built with `-Werror` for x86 (`arch/x86/kvm/`, which
//! includes `virt/kvm/kvm_main.c`; x86_64_defconfig + KVM, KVM_INTEL,
//! KVM_AMD) and for arm64 (`arch/arm64/kvm/`, cross-compiled with Debian's
//! gcc-aarch64-linux-gnu; defconfig + KVM), each out of tree (see
//! scripts/kernel-build.sh). Needs the full tree (`scripts/fetch-kernels.sh
//! --full`); takes a few minutes.

mod series_common;

use std::time::Instant;

use analyzer::api::ApiModel;
use analyzer::source::SourceSpec;
use patchgen::series::apply::load_series;
use patchgen::series::output::{write_series, WriteOptions};
use patchgen::series::test::{render_text, test_series, Outcome, TestOptions};
use patchgen::series::{self};
use patchgen::transform::SERIES;
use series_common::*;

#[test]
fn every_patch_of_the_6_1_series_builds_x86_and_arm64_kvm() {
    let Some(full) = kernel_cache("full-6.1") else { return };
    let spec = SourceSpec::Dir(full.clone());
    let api = ApiModel::default();
    let s = series::generate(load(&spec), &api, SERIES, &opts()).expect("generate");
    // Step 6 (kvm_arch_add_vm under the usage count's lock) is refused on
    // 6.1: it would close a lock-order cycle (HW014); the other five apply.
    assert!(s.patches.len() >= 5, "{} patches", s.patches.len());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("series");
    write_series(&s, &WriteOptions { out: dir.clone(), force: false, branch: None }).unwrap();
    let patches = load_series(&dir).unwrap();
    let script = workspace().join("scripts/kernel-build.sh");
    let t0 = Instant::now();
    let report = test_series(
        &spec,
        load(&spec),
        &api,
        "linux-6.1 build proof",
        &patches,
        &TestOptions {
            build_prepare: Some(format!("bash {} prepare {{dir}} x86 arm64", script.display())),
            build: Some(format!("bash {} build {{dir}} x86 arm64", script.display())),
            checkpatch: Some(full.join("scripts/checkpatch.pl")),
            tail_lines: 40,
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!("build proof on linux-6.1: {:.1?}\n{}", t0.elapsed(), render_text(&report));
    assert!(report.ok, "{}", render_text(&report));
    // Every patch was built, not skipped.
    assert_eq!(report.patches.len(), patches.len());
    for p in &report.patches {
        assert_eq!(p.build, Outcome::Pass, "{}: {}", p.patch, render_text(&report));
    }
}
