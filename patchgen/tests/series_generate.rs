//! `series generate`: the engine on test transformations over the default
//! fixture, format-patch exactness against real `git format-patch`, atomic
//! output, --force, branch safety on a dirty repository, `git am`.

mod series_common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use analyzer::api::ApiModel;
use analyzer::source::SourceSpec;
use patchgen::series::format::{diff_file, Author, MailDate};
use patchgen::series::output::{write_series, BranchTarget, WriteOptions};
use patchgen::series::{self, render, render_patch, Series, SeriesPatch};
use series_common::*;

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn generates_the_series_on_the_fixture() {
    // A relative path, so that the cover letter names the tree the same
    // way on every machine (tests run in the crate's directory).
    let s = generate(load_dir(Path::new("../kvm-fixtures/default")), TEST_SERIES);
    assert_eq!(
        s.patches.iter().map(|p| p.slug.as_str()).collect::<Vec<_>>(),
        ["rename-enable-nolock", "document-starting", "document-enable-hooks"]
    );
    assert_eq!(s.refused.len(), 1);
    assert_eq!(s.refused[0].slug, "needs-hw099");
    // The rename claims the HW005 finding of the function it renames, but a
    // finding's identity does not name functions: the rename fixes and
    // introduces nothing, and its claim is left unmet.
    let p = &s.patches[0];
    assert_eq!(p.claims.len(), 1);
    assert_eq!(p.claims[0].rule, "HW005");
    assert!(p.fixed.is_empty() && p.introduced.is_empty(), "{:?} {:?}", p.fixed, p.introduced);
    // Comments change no finding.
    assert!(s.patches[1].fixed.is_empty() && s.patches[1].introduced.is_empty());
    assert_eq!(s.patches[2].files.len(), 2);
    let files = render(&s, None);
    assert_eq!(
        files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        [
            "0000-cover-letter.patch",
            "0001-rename-enable-nolock.patch",
            "0002-document-starting.patch",
            "0003-document-enable-hooks.patch"
        ]
    );
    let patch1 = &files[1].1;
    assert!(
        patch1.contains(&format!(
            "\nKvmtk-Fixes: HW005 [{}] hardware_enable_nolock\nSigned-off-by: Test Author <test@example.org>\n---\n",
            p.claims[0].fingerprint
        )),
        "{patch1}"
    );
    snapshot("series_fixture_cover_letter", &files[0].1);
    snapshot("series_fixture_patch_1", patch1);
    snapshot("series_fixture_patch_3", &files[3].1);
}

#[test]
fn only_selects_and_a_named_refusal_is_an_error() {
    let api = ApiModel::default();
    let mut o = opts();
    o.only = vec!["document-starting".into()];
    let s = series::generate(load_dir(&fixture("default")), &api, TEST_SERIES, &o).unwrap();
    assert_eq!(s.patches.len(), 1);
    assert_eq!(s.not_selected.len(), 3);
    o.only = vec!["needs-hw099".into()];
    let e = series::generate(load_dir(&fixture("default")), &api, TEST_SERIES, &o).unwrap_err();
    assert_eq!(
        e.message,
        "transformation `needs-hw099` (named by --only) refuses this tree: the tree has no HW099 shape (test transformation)"
    );
    o.only = vec!["nope".into()];
    let e = series::generate(load_dir(&fixture("default")), &api, TEST_SERIES, &o).unwrap_err();
    assert!(e.message.starts_with("unknown transformation `nope` in --only; known: rename-enable-nolock, "), "{e}");
    let e = series::generate(load_dir(&fixture("default")), &api, OVERLAP_SERIES, &opts()).unwrap_err();
    assert!(
        e.message.starts_with(
            "bug in transformation `overlapping`: its edits do not apply: virt/kvm/kvm_main.c: edits overlap"
        ),
        "{e}"
    );
}

/// Strip the version trailer (`-- \n<version>\n\n`), which differs by design.
fn without_version(s: &str) -> &str {
    &s[..s.rfind("-- \n").expect("signature")]
}

/// A series built by hand from file contents (the renderer does not care
/// where the contents come from).
fn hand_series(changes: &[(&str, &[u8], &[u8])], subject: &str, body: &str) -> Series {
    let mut s = generate(load_dir(&fixture("broken-series/tree")), &[]);
    let files = changes.iter().map(|(p, a, b)| diff_file(p, Some(a), Some(b), "100644").unwrap()).collect();
    s.patches.push(SeriesPatch {
        slug: "hand".into(),
        subject: subject.into(),
        body: body.into(),
        claims: vec![],
        unknown_claims: vec![],
        fixed: vec![],
        introduced: vec![],
        files,
        new_contents: changes.iter().map(|(p, _, b)| (p.to_string(), b.to_vec())).collect(),
    });
    s
}

#[test]
fn format_patch_output_is_gits_byte_for_byte() {
    // Tricky shapes: a path longer than the stat's name column, a change
    // wider than the graph, a lost final newline, several hunks, a long
    // subject to fold, an author name that git quotes.
    let long = "arch/x86/kvm/some/very/deeply/nested/directory/with_a_long_file_name_indeed.c";
    let big_old: String = (0..300).map(|i| format!("line {i}\n")).collect();
    let big_new: String =
        (0..300).map(|i| if i % 2 == 0 { format!("LINE {i}\n") } else { format!("line {i}\n") }).collect();
    let small_old = "int a;\nint b;\nint c;\n";
    let small_new = "int a;\nint B;\nint c;\nint d;";
    let mid_old: String = (0..40).map(|i| format!("static int v{i};\n")).collect();
    let mid_new = mid_old.replace("v3;", "w3;").replace("v30;", "w30;");
    let base_files: Vec<(&str, String)> =
        vec![(long, big_old.clone()), ("f.c", small_old.into()), ("virt/kvm/kvm_main.c", mid_old.clone())];
    let new_files: Vec<(&str, String)> =
        vec![(long, big_new.clone()), ("f.c", small_new.into()), ("virt/kvm/kvm_main.c", mid_new.clone())];
    let subject = "KVM: x86: A subject line long enough that git folds it into a second line of the header";
    let body = "Why it is done.\n\nSigned-off-by: J. R. Hacker <jr@example.org>";
    let mut s = hand_series(
        &[
            (long, big_old.as_bytes(), big_new.as_bytes()),
            ("f.c", small_old.as_bytes(), small_new.as_bytes()),
            ("virt/kvm/kvm_main.c", mid_old.as_bytes(), mid_new.as_bytes()),
        ],
        subject,
        body,
    );
    s.author = Author::parse("J. R. Hacker <jr@example.org>").unwrap();
    s.date = MailDate::parse("Tue, 4 Jun 2024 12:34:56 -0700").unwrap();
    // The same commit made by git.
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git_ok(dir, &["init", "-q"]);
    let write = |files: &[(&str, String)]| {
        for (p, c) in files {
            let p = dir.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
    };
    write(&base_files);
    git_ok(dir, &["add", "-A"]);
    git_ok(dir, &["commit", "-q", "-m", "base"]);
    write(&new_files);
    git_ok(dir, &["add", "-A"]);
    let msg = s.patches[0].message(&s.author);
    let o = std::process::Command::new("git")
        .args(["commit", "-q", "-F", "-"])
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "J. R. Hacker")
        .env("GIT_AUTHOR_EMAIL", "jr@example.org")
        .env("GIT_AUTHOR_DATE", "Tue, 4 Jun 2024 12:34:56 -0700")
        .env("GIT_COMMITTER_NAME", "x")
        .env("GIT_COMMITTER_EMAIL", "x@x")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(msg.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success());
    let id = git_ok(dir, &["rev-parse", "HEAD"]).trim().to_string();
    let out = tempfile::tempdir().unwrap();
    git_ok(dir, &["format-patch", "-q", "--cover-letter", "-1", "-o", out.path().to_str().unwrap()]);
    let mut names: Vec<_> = fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let git_patch = fs::read_to_string(&names[1]).unwrap();
    let ours = render_patch(&s, 1, Some(&id));
    assert_eq!(without_version(&ours), without_version(&git_patch));
    // The cover letter's diffstat block is git's too.
    let git_cover = fs::read_to_string(&names[0]).unwrap();
    let stat =
        |t: &str| t.lines().filter(|l| l.contains(" | ") || l.contains(" changed,")).collect::<Vec<_>>().join("\n");
    s.overall = s.patches[0].files.clone();
    let cover = series::render_cover(&s, Some(&id));
    assert_eq!(stat(&cover), stat(&git_cover));
    assert!(!stat(&cover).is_empty());
    assert_eq!(cover.lines().next(), git_cover.lines().next(), "cover From line: the tip commit");
}

fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn output_is_atomic_and_force_replaces() {
    let s = generate(load_dir(&fixture("default")), TEST_SERIES);
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("series");
    let w = |force: bool| write_series(&s, &WriteOptions { out: out.clone(), force, branch: None });
    let written = w(false).unwrap();
    assert_eq!(written.files.len(), 4);
    assert_eq!(list(parent.path()), ["series"]);
    // Exists and non-empty: refused, untouched.
    fs::write(out.join("keep.txt"), "mine").unwrap();
    let e = w(false).unwrap_err();
    assert!(e.message.contains("exists and is not empty; pass --force to replace it"), "{e}");
    assert!(out.join("keep.txt").exists());
    assert_eq!(list(parent.path()), ["series"]);
    // --force replaces it entirely, leaving nothing beside it.
    w(true).unwrap();
    assert!(!out.join("keep.txt").exists());
    // Three patches, the cover letter and the marker `--force` looks for.
    assert_eq!(list(&out).len(), 5);
    assert_eq!(list(parent.path()), ["series"]);
    // An empty existing directory is fine without --force.
    let empty = parent.path().join("empty");
    fs::create_dir(&empty).unwrap();
    write_series(&s, &WriteOptions { out: empty.clone(), force: false, branch: None }).unwrap();
    assert_eq!(list(&empty).len(), 5);
    // Errors leave nothing: a missing parent, a branch that exists.
    let e = write_series(&s, &WriteOptions { out: parent.path().join("no/such/dir"), force: false, branch: None });
    assert!(e.is_err());
    let repo = make_repo(&fixture("default"));
    let target = BranchTarget { repo: repo.path().into(), rev: "base".into(), name: "master".into() };
    let e = write_series(&s, &WriteOptions { out: parent.path().join("b"), force: false, branch: Some(target) })
        .unwrap_err();
    assert!(e.message.contains("branch `master` already exists"), "{e}");
    assert_eq!(list(parent.path()), ["empty", "series"]);
}

#[test]
fn branch_on_a_dirty_repo_leaves_head_index_and_worktree_alone_and_git_am_applies() {
    let repo = make_repo(&fixture("default"));
    let r = repo.path();
    // Make it dirty: a staged change and an unstaged one.
    fs::write(r.join("README"), "staged change\n").unwrap();
    git_ok(r, &["add", "README"]);
    fs::write(r.join("virt/kvm/kvm_main.c"), "unstaged change\n").unwrap();
    let status = git_ok(r, &["status", "--porcelain"]);
    let head = git_ok(r, &["rev-parse", "HEAD"]);
    let index = fs::read(r.join(".git/index")).unwrap();
    // The tree comes from the revision, not the dirty work tree.
    let spec = SourceSpec::Git { repo: r.into(), rev: "base".into() };
    let author = series::resolve_author(None, Some(r)).unwrap();
    assert_eq!(author.to_string(), "Repo User <repo@example.org>");
    let s = generate(load(&spec), TEST_SERIES);
    let out = tempfile::tempdir().unwrap();
    let target = BranchTarget { repo: r.into(), rev: "base".into(), name: "kvm-rework".into() };
    let w = write_series(&s, &WriteOptions { out: out.path().join("s"), force: false, branch: Some(target.clone()) })
        .unwrap();
    assert_eq!(w.commits.len(), 3);
    assert_eq!(git_ok(r, &["status", "--porcelain"]), status);
    assert_eq!(git_ok(r, &["rev-parse", "HEAD"]), head);
    assert_eq!(fs::read(r.join(".git/index")).unwrap(), index);
    assert_eq!(git_ok(r, &["rev-parse", "kvm-rework"]).trim(), w.commits[2]);
    let log = git_ok(r, &["log", "--format=%an <%ae>|%ad|%s", "--date=rfc2822", "base..kvm-rework"]);
    assert_eq!(log.lines().count(), 3);
    assert!(
        log.lines().all(|l| l.starts_with("Test Author <test@example.org>|Mon, 3 Jun 2024 10:00:00 +0000|KVM: ")),
        "{log}"
    );
    // The From lines carry the real commit ids, and git's own format-patch
    // of the branch matches ours (apart from the version trailer).
    let ours = render(&s, Some(&w.commits));
    let git_out = tempfile::tempdir().unwrap();
    git_ok(r, &["format-patch", "-q", "-o", git_out.path().to_str().unwrap(), "base..kvm-rework"]);
    let mut git_files: Vec<_> = fs::read_dir(git_out.path()).unwrap().map(|e| e.unwrap().path()).collect();
    git_files.sort();
    for (k, g) in git_files.iter().enumerate() {
        let g = fs::read_to_string(g).unwrap();
        assert_eq!(without_version(&ours[k + 1].1), without_version(&g), "patch {}", k + 1);
    }
    // Refused: the branch now exists.
    let e =
        write_series(&s, &WriteOptions { out: out.path().join("t"), force: false, branch: Some(target) }).unwrap_err();
    assert!(e.message.contains("branch `kvm-rework` already exists"), "{e}");
    // git am applies every generated patch, one at a time, on a clean clone.
    let clone = tempfile::tempdir().unwrap();
    git_ok(clone.path(), &["clone", "-q", r.to_str().unwrap(), "c"]);
    let c = clone.path().join("c");
    git_ok(&c, &["checkout", "-q", "base"]);
    for f in &w.files[1..] {
        git_ok(&c, &["am", "-q", f.to_str().unwrap()]);
    }
    assert_eq!(git_ok(&c, &["rev-parse", "HEAD^{tree}"]), git_ok(r, &["rev-parse", "kvm-rework^{tree}"]));
    // The final tree is what the generator computed.
    let final_main = fs::read(c.join("virt/kvm/kvm_main.c")).unwrap();
    let mut last: BTreeMap<&str, &Vec<u8>> = BTreeMap::new();
    for p in &s.patches {
        for (path, b) in &p.new_contents {
            last.insert(path, b);
        }
    }
    assert_eq!(&final_main, last["virt/kvm/kvm_main.c"]);
}
