//! Patches on stable and distro trees: a patch already in the tree is
//! reported "already applied" and skipped; `-C N` applies hunks whose outer
//! context changed; `-3` merges from the blob an `index` line names,
//! without writing to the repository; a patch that does not apply is
//! reported with its first failing hunk and, with `keep_going`, the rest
//! go on. Then upstream's posted series (`../shared/data/upstream-v2/original`)
//! on Debian's 6.1.192, where its patch 1 was backported long ago.

mod lint_common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use analyzer::api::ApiModel;
use analyzer::cache::FactsCache;
use analyzer::lint::{render_report, LintFormat, LintOptions, Linter};
use analyzer::source::SourceSpec;
use patchgen::lint::{lint_patches_with, load_patches};
use patchgen::series::apply::parse_mail;
use patchgen::series::apply::strategy::{apply_patch, ApplyOptions, Method};

fn lines(range: std::ops::RangeInclusive<u32>) -> String {
    range.map(|n| format!("line {n}\n")).collect()
}

/// A one-file patch of `f.c` replacing `line 20` by `twenty`, with an
/// `index` line naming `blob`.
fn patch(blob: &str) -> String {
    format!(
        "From: A <a@example.org>\nSubject: [PATCH] f: twenty\n\n---\ndiff --git a/f.c b/f.c\nindex {blob}..2222222 100644\n--- a/f.c\n+++ b/f.c\n@@ -17,7 +17,7 @@\n line 17\n line 18\n line 19\n-line 20\n+twenty\n line 21\n line 22\n line 23\n"
    )
}

fn run(text: &str, file: &str, opts: &ApplyOptions) -> Result<(Option<Vec<u8>>, Method), String> {
    let m = parse_mail("0001-f.patch", text.as_bytes(), 1);
    let tree: BTreeMap<&str, &str> = [("f.c", file)].into();
    let read = |p: &str| tree.get(p).map(|s| s.as_bytes().to_vec());
    apply_patch(&m, &read, opts).map(|a| (a.changes.get("f.c").cloned().flatten(), a.method))
}

#[test]
fn already_applied_reduced_context_and_not_applied() {
    let base = lines(1..=40);
    let p = patch("1111111");
    let (new, how) = run(&p, &base, &ApplyOptions::default()).unwrap();
    assert_eq!(how, Method::Clean);
    let applied = String::from_utf8(new.unwrap()).unwrap();
    assert_eq!(applied, base.replace("line 20\n", "twenty\n"));

    // The result already there: it reverse-applies.
    let (new, how) = run(&p, &applied, &ApplyOptions::default()).unwrap();
    assert_eq!(how, Method::AlreadyApplied("it reverse-applies".into()));
    assert_eq!(new, None, "nothing changes");
    // Backported with an outer context line changed: every hunk's result is present.
    let backported = applied.replace("line 17\n", "line 17 (stable)\n");
    let (_, how) = run(&p, &backported, &ApplyOptions::default()).unwrap();
    assert_eq!(how, Method::AlreadyApplied("every hunk's result is already in the tree".into()));

    // The outer context changed, the change not made: only -C applies it, and says so.
    let drifted = base.replace("line 17\n", "line 17 (stable)\n");
    let e = run(&p, &drifted, &ApplyOptions::default()).unwrap_err();
    assert!(e.starts_with("0001-f.patch: hunk #1 `@@ -17,7 +17,7 @@` (line 9) does not apply to `f.c`"), "{e}");
    let e = run(&p, &drifted, &ApplyOptions { min_context: Some(3), ..Default::default() }).unwrap_err();
    assert!(e.contains("\nalso tried with -C3: 0001-f.patch: hunk #1"), "{e}");
    let (new, how) = run(&p, &drifted, &ApplyOptions { min_context: Some(2), ..Default::default() }).unwrap();
    assert_eq!(how, Method::ReducedContext(2, vec!["f.c hunk #1 with 2 lines of context".into()]));
    assert_eq!(how.describe().unwrap(), "applied with reduced context (-C2): f.c hunk #1 with 2 lines of context");
    assert_eq!(String::from_utf8(new.unwrap()).unwrap(), drifted.replace("line 20\n", "twenty\n"));
    // The context line next to the change changed: -C1 cannot apply it.
    let inner = base.replace("line 19\n", "line 19 (stable)\n");
    assert!(run(&p, &inner, &ApplyOptions { min_context: Some(1), ..Default::default() }).is_err());
}

#[test]
fn three_way_merge_from_the_blob_of_the_index_line() {
    let base = lines(1..=40);
    let (dir, repo, _) = lint_common::repo_from_dir(&lint_common::fixture("default"), "base");
    let blob = repo.blob(base.as_bytes()).unwrap().to_string();
    let p = patch(&blob[..12]);
    // The tree changed a line inside the hunk's context: a merge resolves it.
    let ours = base.replace("line 18\n", "line 18 (stable)\n");
    let objects = |d: &std::path::Path| walk_count(&d.join(".git/objects"));
    let before = objects(dir.path());
    let opts = ApplyOptions { three_way: Some(dir.path().to_path_buf()), ..Default::default() };
    let (new, how) = run(&p, &ours, &opts).unwrap();
    assert_eq!(how, Method::ThreeWay(vec![format!("f.c from blob {}", &blob[..12])]));
    assert_eq!(String::from_utf8(new.unwrap()).unwrap(), ours.replace("line 20\n", "twenty\n"));
    assert_eq!(objects(dir.path()), before, "the repository is only read");
    // A conflicting change on the same line: not applied, the reason given.
    let conflict = base.replace("line 20\n", "line 20 (stable)\n");
    let e = run(&p, &conflict, &opts).unwrap_err();
    assert!(e.ends_with("also tried with -3: `f.c` has conflicts"), "{e}");
    // A blob the repository does not have.
    let e = run(&patch("abcdef1234"), &ours, &opts).unwrap_err();
    assert!(e.contains("with -3: blob abcdef1234 of `f.c` is not in"), "{e}");
}

fn walk_count(d: &std::path::Path) -> usize {
    std::fs::read_dir(d)
        .map(|r| r.map(|e| e.unwrap().path()).map(|p| if p.is_dir() { walk_count(&p) } else { 1 }).sum())
        .unwrap_or(0)
}

#[test]
fn upstream_series_posted_on_debian_6_1_192() {
    let Some(tree) = lint_common::kernel_cache("full-6.1") else { return };
    let dir = lint_common::workspace().join("../shared/data/upstream-v2/original");
    if !dir.is_dir() {
        assert!(std::env::var_os("CI").is_none(), "{} is missing", dir.display());
        return;
    }
    let mut glob: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    glob.sort();
    let patches = load_patches(&glob).unwrap();
    assert_eq!(patches.len(), 50);
    let api = ApiModel::default();
    let cache = FactsCache::in_memory();
    let mut linter = Linter::new(&api, &cache, LintOptions::default());
    let opts = ApplyOptions { min_context: Some(1), keep_going: true, ..Default::default() };
    let r = lint_patches_with(&mut linter, &SourceSpec::Dir(tree), &patches, &opts).unwrap();
    let report = r.builder.finish(None);
    let text = render_report(&report, LintFormat::Text);
    eprintln!("{text}");
    assert_eq!(report.steps.len(), 50);
    let step = |n: usize| &report.steps[n - 1];
    // Patch 1 was backported to stable: already applied, skipped, the series goes on.
    assert!(step(1).skipped);
    assert!(step(1).notes[0].starts_with("already applied, skipped: "), "{:?}", step(1).notes);
    assert!(!step(2).skipped, "{:?}", step(2).notes);
    let with = |prefix: &str| -> Vec<usize> {
        (1..=50).filter(|&n| step(n).notes.iter().any(|x| x.starts_with(prefix))).collect()
    };
    let already = with("already applied");
    let reduced = with("applied with reduced context (-C1)");
    let failed = with("did not apply");
    let linted: Vec<usize> = (1..=50).filter(|&n| !step(n).skipped).collect();
    eprintln!("already applied {already:?}\n-C1 {reduced:?}\nnot applied {failed:?}\nlinted {}", linted.len());
    // The README's account: 01, 10, 11, 13, 14 were backported; 08, 16, 36, 40 need -C1.
    assert!(already.contains(&1));
    for n in [8, 16] {
        assert!(reduced.contains(&n), "patch {n} needs -C1: {:?}", step(n).notes);
    }
    assert_eq!(r.not_applied.len(), failed.len());
    assert!(linted.len() >= 30, "{linted:?}");
    // Each one that did not apply names its first failing hunk; later ones say what their tree lacks.
    for &n in &failed {
        assert!(step(n).notes[0].contains("does not apply to `"), "{:?}", step(n).notes);
    }
    if let Some(&first) = failed.first() {
        let later = linted.iter().find(|&&n| n > first).unwrap();
        assert!(
            step(*later).notes.iter().any(|x| x.starts_with("computed on a tree without ")),
            "{:?}",
            step(*later).notes
        );
    }
    assert!(text.contains("[1/50] 0001.patch KVM: Register /dev/kvm as the _very_ last thing during initialization\n  already applied, skipped: "), "{text}");
}
