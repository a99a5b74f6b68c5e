//! `series test`: the broken series of `kvm-fixtures/broken-series/` fail at
//! the right patch for the right reason; generated series pass; claims,
//! numbering, mboxes and malformed patches.

mod series_common;

use std::fs;
use std::path::{Path, PathBuf};

use analyzer::api::ApiModel;
use analyzer::source::SourceSpec;
use patchgen::series::apply::load_series;
use patchgen::series::output::{write_series, WriteOptions};
use patchgen::series::test::{render_json, render_text, test_series, Outcome, TestOptions, TestReport};
use series_common::*;

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, text);
    });
}

const TREE: &str = "../kvm-fixtures/broken-series/tree";

fn run(tree: &str, series: &Path, opts: &TestOptions) -> TestReport {
    let spec = SourceSpec::Dir(PathBuf::from(tree));
    let patches = load_series(series).unwrap();
    test_series(&spec, load(&spec), &ApiModel::default(), &series.display().to_string(), &patches, opts).unwrap()
}

fn snapshot_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(snapshot_files(&p));
        } else {
            v.push((p.clone(), fs::read(&p).unwrap()));
        }
    }
    v.sort();
    v
}

#[test]
fn broken_series_fails_at_the_mutex_and_at_the_patch_that_does_not_apply() {
    let before = snapshot_files(Path::new(TREE));
    let r = run(TREE, Path::new("../kvm-fixtures/broken-series/sleep-in-starting"), &TestOptions::default());
    assert!(!r.ok);
    assert_eq!(r.exit_code(), 1);
    let p = &r.patches;
    assert!(p[0].ok, "{:?}", p[0].failures);
    assert!(!p[1].ok);
    assert_eq!(p[1].applies, Outcome::Pass);
    assert_eq!(p[1].introduced.len(), 1);
    assert_eq!(p[1].introduced[0].rule, "HW007");
    assert_eq!(p[1].introduced[0].function, "kvm_starting_cpu");
    assert!(
        matches!(&p[2].applies, Outcome::Fail(m) if m.contains("hunk #1 `@@ -10,6 +10,7 @@` (line 17) does not apply to `virt/kvm/kvm_main.c`"))
    );
    assert_eq!(snapshot_files(Path::new(TREE)), before, "the user's tree is untouched");
    snapshot("series_test_broken_sleep_in_starting", &render_text(&r));
    snapshot("series_test_broken_sleep_in_starting_json", &render_json(&r));

    // The same series as one mbox: same verdicts.
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("series.mbox");
    let mut text = String::new();
    let mut names: Vec<_> =
        fs::read_dir("../kvm-fixtures/broken-series/sleep-in-starting").unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for n in names.iter().rev() {
        // Reversed on purpose: mbox order follows [PATCH n/N].
        text.push_str(&fs::read_to_string(n).unwrap());
    }
    fs::write(&mbox, text).unwrap();
    let m = run(TREE, &mbox, &TestOptions::default());
    let verdicts =
        |r: &TestReport| r.patches.iter().map(|p| (p.ok, p.applies.ok(), p.introduced.len())).collect::<Vec<_>>();
    assert_eq!(verdicts(&m), verdicts(&r));
    assert!(matches!(&m.patches[2].applies, Outcome::Fail(e) if e.starts_with("series.mbox#3: hunk #1")));
    assert_eq!(m.patches[1].patch, "series.mbox#2");
}

#[test]
fn a_patch_that_does_not_compile_fails_its_build() {
    // Build: gcc -fsyntax-only over the fixture's kvm_main.c with the stub
    // declarations of its include/linux/kvm_host.h. The command records
    // the scratch directory to prove it is removed afterwards.
    let dir = tempfile::tempdir().unwrap();
    let where_file = dir.path().join("where");
    let opts = TestOptions {
        build: Some(format!(
            "echo {{dir}} > {} && gcc -fsyntax-only -Werror -Iinclude virt/kvm/kvm_main.c",
            where_file.display()
        )),
        ..Default::default()
    };
    let r = run(TREE, Path::new("../kvm-fixtures/broken-series/no-compile"), &opts);
    assert!(!r.ok);
    let p = &r.patches[0];
    assert_eq!((p.applies.clone(), p.parses.clone()), (Outcome::Pass, Outcome::Pass));
    assert!(p.introduced.is_empty());
    let Outcome::Fail(out) = &p.build else { panic!("{:?}", p.build) };
    assert!(out.starts_with("exit status 1\n") && out.contains("kvm_usage_cnt") && out.contains("undeclared"), "{out}");
    assert!(p.failures[0].starts_with("build fails (exit status 1): virt/kvm/kvm_main.c:"), "{:?}", p.failures);
    let scratch = fs::read_to_string(&where_file).unwrap();
    assert!(!Path::new(scratch.trim()).exists(), "scratch dir {scratch} removed");
    // The table (the build output below it depends on the gcc version).
    let text = render_text(&r);
    snapshot("series_test_broken_no_compile_table", text.split("\n\n").next().unwrap());
    // The base tree itself builds: the failure is the patch's.
    let ok = run(
        TREE,
        Path::new("../kvm-fixtures/broken-series/sleep-in-starting"),
        &TestOptions {
            build: Some("gcc -fsyntax-only -Werror -Iinclude virt/kvm/kvm_main.c".into()),
            ..Default::default()
        },
    );
    assert_eq!(ok.patches[0].build, Outcome::Pass);
    assert_eq!(ok.patches[1].build, Outcome::Pass);
}

#[test]
fn generated_series_pass_and_unmet_claims_fail() {
    let s = generate(load_dir(&fixture("default")), TEST_SERIES);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    write_series(&s, &WriteOptions { out: out.clone(), force: false, branch: None }).unwrap();
    let def = fixture("default").display().to_string();
    let checkpatch = kernel_cache("linux-6.1").map(|k| k.join("scripts/checkpatch.pl"));
    let r = run(&def, &out, &TestOptions { checkpatch: checkpatch.clone(), ..Default::default() });
    // Patch 1 (the test rename) claims the HW005 finding of the function
    // it renames; a rename keeps the finding's identity (fingerprints do
    // not name functions), so the claim is unmet and nothing is introduced.
    assert!(!r.patches[0].ok);
    assert!(matches!(&r.patches[0].claims, Outcome::Fail(m) if m.contains("HW005")), "{:?}", r.patches[0].claims);
    assert!(r.patches[0].failures.iter().all(|f| f.starts_with("claims to fix HW005")), "{:?}", r.patches[0].failures);
    assert!(r.patches[1].ok && r.patches[2].ok, "{}", render_text(&r));
    if checkpatch.is_some() {
        for p in &r.patches {
            let c = p.checkpatch.as_ref().unwrap();
            assert_eq!(c.errors, 0, "{}: {:?}", p.patch, c.messages);
        }
    }
    // A claim that is not met fails the patch.
    let p2 = out.join("0002-document-starting.patch");
    let text = fs::read_to_string(&p2).unwrap();
    let hw001 = s.before.iter().find(|f| f.rule == "HW001").unwrap();
    let text = text.replacen("Signed-off-by:", &format!("{}\nSigned-off-by:", hw001.trailer()), 1);
    fs::write(&p2, text).unwrap();
    let r = run(&def, &out, &TestOptions::default());
    let p = &r.patches[1];
    assert!(matches!(&p.claims, Outcome::Fail(m) if m.contains(&hw001.fingerprint)));
    assert!(
        p.failures.iter().any(|f| f.starts_with("claims to fix HW001 x86 kvm_arch_hardware_enable")),
        "{:?}",
        p.failures
    );
}

#[test]
fn numbering_gaps_and_malformed_patches() {
    let src = Path::new("../kvm-fixtures/broken-series/sleep-in-starting");
    let dir = tempfile::tempdir().unwrap();
    for e in fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with("0002") {
            fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let e = load_series(dir.path()).unwrap_err();
    assert!(e.message.contains("patch 0002 is missing"), "{e}");
    assert!(load_series(Path::new("../kvm-fixtures/broken-series/no-such")).is_err());
    let empty = tempfile::tempdir().unwrap();
    assert!(load_series(empty.path()).unwrap_err().message.starts_with("no patches in"));
    // A malformed hunk: the patch fails, naming file and line.
    let bad = tempfile::tempdir().unwrap();
    let name = "0001-KVM-Document-the-STARTING-section-callback.patch";
    let text = fs::read_to_string(src.join(name))
        .unwrap()
        .replace("\n static int kvm_starting_cpu", "\n~static int kvm_starting_cpu");
    fs::write(bad.path().join(name), text).unwrap();
    let r = run(TREE, bad.path(), &TestOptions::default());
    let Outcome::Fail(m) = &r.patches[0].applies else { panic!() };
    assert!(m.starts_with(&format!("malformed patch: {name}:22: hunk `@@ -26,6 +26,7 @@")), "{m}");
    assert!(m.contains("(line 17) expected 3 more old and 3 more new lines"), "{m}");
}
