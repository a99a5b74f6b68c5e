//! `series test` on a tree that already has some of the series: a patch
//! already applied passes as "already" and is skipped; with `keep_going`
//! a patch that does not apply fails and the next ones are still tested,
//! each saying it was computed on a tree without it; without it they are
//! not run.

mod series_common;

use std::path::{Path, PathBuf};

use analyzer::api::ApiModel;
use analyzer::source::SourceSpec;
use patchgen::series::apply::load_series;
use patchgen::series::apply::strategy::ApplyOptions;
use patchgen::series::test::{render_text, test_series, Outcome, TestOptions, TestReport};
use series_common::*;

const TREE: &str = "../kvm-fixtures/broken-series/tree";
const FIRST: &str =
    "../kvm-fixtures/broken-series/sleep-in-starting/0001-KVM-Document-the-STARTING-section-callback.patch";

fn run(series: &Path, opts: &TestOptions) -> TestReport {
    let spec = SourceSpec::Dir(PathBuf::from(TREE));
    let patches = load_series(series).unwrap();
    test_series(&spec, load(&spec), &ApiModel::default(), "stable.mbox", &patches, opts).unwrap()
}

#[test]
fn already_applied_and_keep_going() {
    let first = std::fs::read_to_string(FIRST).unwrap();
    assert!(first.contains("Subject: [PATCH 1/3]"), "{first}");
    let foreign = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: A <a@example.org>\nSubject: [PATCH 2/3] x: for another tree\n\n---\ndiff --git a/virt/kvm/nope.c b/virt/kvm/nope.c\n--- a/virt/kvm/nope.c\n+++ b/virt/kvm/nope.c\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n";
    let again = first.replace("Subject: [PATCH 1/3]", "Subject: [PATCH 3/3]");
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("stable.mbox");
    std::fs::write(&mbox, format!("{first}\n{foreign}\n{again}")).unwrap();

    let stopped = run(&mbox, &TestOptions::default());
    assert!(matches!(stopped.patches[1].applies, Outcome::Fail(_)));
    assert_eq!(stopped.patches[2].applies, Outcome::Skip, "not run after a patch that does not apply");

    let opts = TestOptions { apply: ApplyOptions { keep_going: true, ..Default::default() }, ..Default::default() };
    let r = run(&mbox, &opts);
    let text = render_text(&r);
    assert_eq!(r.patches[0].applied.as_deref(), Some("yes"), "{text}");
    assert!(
        matches!(&r.patches[1].applies, Outcome::Fail(m) if m.contains("`virt/kvm/nope.c` does not exist")),
        "{text}"
    );
    let third = &r.patches[2];
    assert_eq!(third.applied.as_deref(), Some("already"), "{text}");
    assert!(third.ok, "{text}");
    assert_eq!(third.how.as_deref(), Some("already applied, skipped: it reverse-applies"));
    assert_eq!(third.notes, ["computed on a tree without stable.mbox#2, which did not apply"]);
    assert!(text.contains("stable.mbox#3  already"), "{text}");
    assert!(
        text.contains(
            "\napplied other than as written:\n  stable.mbox#3: already applied, skipped: it reverse-applies\n"
        ),
        "{text}"
    );
    assert!(!r.ok);
}
