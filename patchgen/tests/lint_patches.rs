//! `kvmtk lint` on patches and ranges of small fixture trees: a patch
//! introducing HW001 is reported with evidence; bad input (a range that
//! does not resolve, a file that is not a patch, a corrupt mbox, a patch
//! for another tree) is one clear error naming the file or revision.

mod lint_common;

use analyzer::api::ApiModel;
use analyzer::cache::FactsCache;
use analyzer::lint::{lint_range, render_report, LintFormat, LintOptions, Linter};
use analyzer::rules::Severity;
use analyzer::source::SourceSpec;
use lint_common::*;
use patchgen::lint::{lint_patches, load_patches};

const QUIET: &str = "rules/hw001-unguarded-list-walk/quiet";
const FIRE: &str = "rules/hw001-unguarded-list-walk/fire";

/// A repository with the quiet tree (tag `base`) and a commit turning it
/// into the fire tree (branch `topic`); plus that commit as a patch file.
fn setup() -> (tempfile::TempDir, git2::Repository, std::path::PathBuf) {
    let (dir, repo, base) = repo_from_dir(&fixture(QUIET), "base");
    let tree = tree_of_dir(&repo, &fixture(FIRE));
    let head = commit(&repo, "topic", Some(base), tree, "x86: Resync the clock of every guest on CPU online\n");
    let patch = dir.path().join("0001-resync.patch");
    std::fs::write(&patch, format_patch(&repo, base, head, "x86: Resync the clock of every guest on CPU online"))
        .unwrap();
    (dir, repo, patch)
}

#[test]
fn range_and_patch_report_the_same_new_finding() {
    let (dir, _repo, patch) = setup();
    let api = ApiModel::default();
    let cache = FactsCache::in_memory();
    let mut linter = Linter::new(&api, &cache, LintOptions::default());
    let range = lint_range(&mut linter, dir.path(), "base..topic").unwrap().finish(None);
    let patches = load_patches(std::slice::from_ref(&patch)).unwrap();
    let spec = SourceSpec::Git { repo: dir.path().into(), rev: "base".into() };
    let mailed = lint_patches(&mut linter, &spec, &patches).unwrap().finish(None);
    let on_dir = lint_patches(&mut linter, &SourceSpec::Dir(fixture(QUIET)), &patches).unwrap().finish(None);
    for r in [&range, &mailed, &on_dir] {
        assert_eq!(r.steps.len(), 1);
        let got: Vec<_> = r.steps[0].introduced.iter().map(|f| (f.rule.as_str(), f.function.as_str())).collect();
        assert_eq!(got, [("HW001", "foo_clock_cpu_online")]);
        assert!(r.steps[0].fixed.is_empty());
        assert_eq!(r.new.findings.len(), 1);
        assert!(!r.new.findings[0].evidence.is_empty());
        assert_eq!(r.exit_code(Severity::Warning), 1);
    }
    assert_eq!(mailed.steps[0].subject, "x86: Resync the clock of every guest on CPU online");
    assert_eq!(range.new.findings[0].fingerprint, mailed.new.findings[0].fingerprint);
    // An empty range is no error: nothing to report.
    let empty = lint_range(&mut linter, dir.path(), "topic..base").unwrap().finish(None);
    assert!(empty.steps.is_empty() && empty.new.findings.is_empty());
    let sarif = render_report(&mailed, LintFormat::Sarif);
    assert!(sarif.contains("\"ruleId\": \"HW001\""), "{sarif}");
}

#[test]
fn bad_input_is_one_clear_error() {
    let (dir, _repo, patch) = setup();
    let api = ApiModel::default();
    let cache = FactsCache::in_memory();
    let mut linter = Linter::new(&api, &cache, LintOptions::default());
    let r = dir.path();
    let e = lint_range(&mut linter, r, "base..nope").err().unwrap().message;
    assert!(e.contains("range `base..nope` does not resolve") && e.contains("unknown revision `nope` (HEAD)"), "{e}");
    let e = lint_range(&mut linter, r, "topic").err().unwrap().message;
    assert!(e.contains("`topic` is not a commit range; expected BASE..HEAD"), "{e}");
    let e = lint_range(&mut linter, &r.join("missing"), "a..b").err().unwrap().message;
    assert!(e.contains("does not exist; expected a git repository"), "{e}");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes\nnothing to apply\n").unwrap();
    let e = load_patches(std::slice::from_ref(&text)).err().unwrap().message;
    assert!(e.contains("notes.txt") && e.contains("is not a patch: no diff found; expected a unified diff"), "{e}");

    let good = std::fs::read_to_string(&patch).unwrap();
    let corrupt = dir.path().join("corrupt.mbox");
    let cut = good.find("@@ ").unwrap();
    let broken = format!("{}{}", &good[..cut], good[cut..].replacen("\n-", "\n*", 1));
    std::fs::write(&corrupt, &broken).unwrap();
    let e = load_patches(std::slice::from_ref(&corrupt)).err().unwrap().message;
    assert!(e.contains("corrupt.mbox") && e.contains("is not a valid patch") && e.contains("expected"), "{e}");

    let missing = dir.path().join("nope.patch");
    let e = load_patches(std::slice::from_ref(&missing)).err().unwrap().message;
    assert!(e.contains("nope.patch` does not exist"), "{e}");

    // Written for another tree: the default fixture has no such code.
    let patches = load_patches(std::slice::from_ref(&patch)).unwrap();
    let e = lint_patches(&mut linter, &SourceSpec::Dir(fixture("default")), &patches).err().unwrap().message;
    assert!(e.contains("does not apply to") && e.contains("0001-resync.patch"), "{e}");
    assert!(e.contains("expected a patch for this tree"), "{e}");
    // Nothing was written next to the inputs.
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(
        names.iter().all(|n| [".git", "0001-resync.patch", "notes.txt", "corrupt.mbox"].contains(&n.as_str())),
        "{names:?}"
    );
}
