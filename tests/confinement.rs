//! Nothing kvmtk writes or deletes resolves outside what it owns (issue 16,
//! items 1 and 2): `series test --build`'s scratch copy never leads into
//! another checkout through a symbolic link, a patch never writes or
//! deletes through one, a git base's committed link leaving the tree is
//! refused, the read-only walk names a link leaving the tree whatever
//! component it is, and `series generate --force` replaces only a series
//! kvmtk wrote, never the input tree or repository.
//!
//! Every test builds its trees in a temporary directory and proves the
//! harmful outcome did not happen: the files outside are byte for byte
//! what they were, with the exit code and the message.

#[path = "../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kvmtk_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).current_dir(dir).output().expect("run kvmtk")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name)
}

/// Everything under `dir`, links not followed: path -> contents, or
/// `-> target` for a link.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ty = e.file_type().unwrap();
            if ty.is_symlink() {
                out.insert(rel, format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes());
            } else if ty.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A one-patch series (a format-patch directory) with `diff` as its diff.
fn one_patch(dir: &Path, diff: &str) -> PathBuf {
    let series = dir.join("series");
    std::fs::create_dir_all(&series).unwrap();
    let text = format!(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n\
         From: T Ester <t@example.org>\n\
         Date: Mon, 3 Jun 2024 10:00:00 +0000\n\
         Subject: [PATCH 1/1] tools: a crafted patch\n\
         \n\
         Crafted.\n\
         \n\
         Signed-off-by: T Ester <t@example.org>\n\
         ---\n\
         {diff}\
         -- \n\
         2.47.3\n\n"
    );
    std::fs::write(series.join("0001-tools-a-crafted-patch.patch"), text).unwrap();
    series
}

const CREATE_NOTE: &str = "diff --git a/tools/note.txt b/tools/note.txt\n\
new file mode 100644\n\
index 0000000..ce01362\n\
--- /dev/null\n\
+++ b/tools/note.txt\n\
@@ -0,0 +1 @@\n\
+hello\n";

/// A small kernel tree (`virt/kvm`, `include/linux`) in `dir/tree`.
fn tree(dir: &Path) -> PathBuf {
    let t = dir.join("tree");
    copy_tree(&fixture("broken-series/tree"), &t);
    t
}

/// Another checkout beside the tree, that nothing may change.
fn other_checkout(dir: &Path) -> PathBuf {
    let other = dir.join("other");
    std::fs::create_dir_all(other.join("sub")).unwrap();
    std::fs::write(other.join("existing.txt"), "the other checkout's file\n").unwrap();
    std::fs::write(other.join("Makefile"), "all:\n\ttrue\n").unwrap();
    std::fs::write(other.join("sub/deep.txt"), "deep\n").unwrap();
    other
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn links_leaving_the_tree_become_copies_in_the_scratch_so_the_other_checkout_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = tree(d);
    let other = other_checkout(d);
    // A directory link (absolute) and a file link (relative), both leaving.
    symlink(&other, t.join("tools"));
    symlink("../other/Makefile", t.join("Makefile"));
    one_patch(d, CREATE_NOTE);
    let before = contents(&other);
    let tree_before = contents(&t);
    // The build writes through what were links in the tree: in the scratch
    // they are copies, so only the copies change.
    let build = "test -d tools && ! test -L tools && ! test -L Makefile && test -f tools/note.txt \
                 && grep -q 'other checkout' tools/existing.txt \
                 && echo scribbled > tools/existing.txt && echo scribbled > Makefile && rm tools/sub/deep.txt";
    let o = kvmtk_in(d, &["series", "test", "tree", "series", "--build", build]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("all 1 patches pass"), "{}", stdout(&o));
    assert_eq!(contents(&other), before, "the other checkout changed");
    assert_eq!(contents(&t), tree_before, "the input tree changed");
}

#[test]
fn a_patch_writing_or_deleting_through_a_link_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = tree(d);
    // A link inside the tree: the analysis may follow it, a write may not.
    std::fs::create_dir(t.join("tools-real")).unwrap();
    std::fs::write(t.join("tools-real/old.txt"), "old\n").unwrap();
    symlink("tools-real", t.join("tools"));
    let tree_before = contents(&t);
    let create = one_patch(&d.join("create"), CREATE_NOTE);
    let delete = one_patch(
        &d.join("delete"),
        "diff --git a/tools/old.txt b/tools/old.txt\n\
         deleted file mode 100644\n\
         index 3367afd..0000000\n\
         --- a/tools/old.txt\n\
         +++ /dev/null\n\
         @@ -1 +0,0 @@\n\
         -old\n",
    );
    for series in [&create, &delete] {
        let o = kvmtk_in(d, &["series", "test", "tree", series.to_str().unwrap(), "--build", "true"]);
        assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
        assert!(
            stderr(&o).contains(
                "0001-tools-a-crafted-patch.patch: refused in the scratch copy: `tools/") && stderr(&o).contains(
                "`: `tools` is a symbolic link in the scratch copy; kvmtk does not write or delete through symbolic links"
            ),
            "{}",
            stderr(&o)
        );
        assert_eq!(contents(&t), tree_before, "the input tree changed");
    }
    // Without --build nothing is written: the patch is tested in memory.
    let o = kvmtk_in(d, &["series", "test", "tree", create.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A repository holding the small tree plus `link` -> `target`, committed.
fn repo_with_link(d: &Path, name: &str, link: &str, target: &Path) -> PathBuf {
    let r = d.join(name);
    copy_tree(&fixture("broken-series/tree"), &r);
    symlink(target, r.join(link));
    git(&r, &["init", "-q"]);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-qm", "base"]);
    r
}

#[test]
fn a_git_base_with_a_committed_link_leaving_the_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let other = other_checkout(d);
    let before = contents(&other);
    one_patch(d, CREATE_NOTE);
    let absolute = repo_with_link(d, "abs", "tools", &other);
    let relative = repo_with_link(d, "rel", "tools", Path::new("../other"));
    for (repo, target) in [(&absolute, other.display().to_string()), (&relative, "../other".to_string())] {
        let repo_before = contents(repo);
        let o = kvmtk_in(
            d,
            &[
                "series",
                "test",
                "--repo",
                repo.to_str().unwrap(),
                "--rev",
                "HEAD",
                "series",
                "--build",
                "echo scribbled > tools/existing.txt",
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
        assert!(
            stderr(&o).ends_with(&format!(
                "kvmtk: error: tools: symbolic link leaving the tree (to `{target}`); \
                 kvmtk does not make a scratch copy with it\n"
            )),
            "{}",
            stderr(&o)
        );
        assert_eq!(contents(&other), before, "the other checkout changed");
        assert_eq!(contents(repo), repo_before, "the repository changed");
    }
    // A link that stays inside is kept, and a patch through it refused.
    let inside = repo_with_link(d, "inside", "tools", Path::new("virt"));
    let o = kvmtk_in(
        d,
        &["series", "test", "--repo", inside.to_str().unwrap(), "--rev", "HEAD", "series", "--build", "test -L tools"],
    );
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("`tools` is a symbolic link in the scratch copy"), "{}", stderr(&o));
    assert!(!inside.join("virt/note.txt").exists());
}

#[test]
fn the_directory_walk_names_a_link_leaving_the_tree_whatever_component_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `virt/kvm` itself, `include/linux` above the files read, and an arch
    // directory, each a link to another checkout.
    let t = d.join("tree");
    copy_tree(&fixture("default"), &t);
    let elsewhere = d.join("elsewhere");
    for p in ["virt/kvm", "include/linux", "arch/x86"] {
        let to = elsewhere.join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(t.join(p), &to).unwrap();
        symlink(&to, t.join(p));
    }
    // --verbose: each input warning, not only their count.
    let o = kvmtk_in(d, &["check", "tree", "--format", "json", "--no-cache", "--verbose"]);
    let err = stderr(&o);
    for p in ["virt/kvm", "include/linux"] {
        let expected = format!(
            "`{p}` is a symbolic link pointing outside the tree (to `{}`); not followed",
            std::fs::canonicalize(elsewhere.join(p)).unwrap().display()
        );
        assert!(err.contains(&expected), "{p}: {err}");
    }
    assert!(err.contains("tree/arch/x86: warning: symbolic link points outside the tree"), "{err}");
    // Nothing of the other checkout was read: no finding in its files.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let files: Vec<&str> = v["findings"].as_array().unwrap().iter().filter_map(|f| f["file"].as_str()).collect();
    assert!(files.iter().all(|f| !f.starts_with("virt/kvm") && !f.starts_with("arch/x86")), "{files:?}");

    // A link that stays inside the tree is followed: the same findings as
    // the real directory.
    let plain = d.join("plain");
    copy_tree(&fixture("default"), &plain);
    let linked = d.join("linked");
    copy_tree(&fixture("default"), &linked);
    std::fs::rename(linked.join("virt/kvm"), linked.join("virt/kvm-real")).unwrap();
    symlink("kvm-real", linked.join("virt/kvm"));
    let a = kvmtk_in(d, &["check", "plain", "--format", "json", "--no-cache"]);
    let b = kvmtk_in(d, &["check", "linked", "--format", "json", "--no-cache"]);
    assert_eq!(stderr(&b), stderr(&a));
    let findings = |o: &Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["findings"].clone();
    assert!(!findings(&a).as_array().unwrap().is_empty());
    assert_eq!(findings(&b), findings(&a));
}

const DATE: &str = "Mon, 3 Jun 2024 10:00:00 +0000";

fn generate(d: &Path, source: &[&str], out: &str, force: bool) -> Output {
    let mut args = vec!["series", "generate"];
    args.extend_from_slice(source);
    args.extend_from_slice(&["--out", out, "--author", "A <a@b>", "--date", DATE]);
    if force {
        args.push("--force");
    }
    kvmtk_in(d, &args)
}

#[test]
fn force_refuses_the_input_tree_its_parents_and_inside_it_and_leaves_them_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("work");
    std::fs::create_dir(&d).unwrap();
    copy_tree(&fixture("default"), &d.join("tree"));
    let before = contents(dir.path());
    let tree_abs = d.join("tree");
    let cases: [(&str, &str); 4] = [("tree", "is"), (".", "contains"), ("..", "contains"), ("tree/virt", "is inside")];
    for (out, relation) in cases {
        let o = generate(&d, &["tree"], out, true);
        assert_eq!(o.status.code(), Some(2), "{out}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "kvmtk: error: --force refuses output `{out}`: it {relation} the input `tree`; \
                 choose an --out outside it\n"
            )
        );
        assert_eq!(contents(dir.path()), before, "{out}: something changed");
    }
    // The same through a symbolic link to the tree, and to its parent.
    symlink(&tree_abs, dir.path().join("alias"));
    let before = contents(dir.path());
    let o = generate(&d, &["tree"], "../alias", true);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("it is the input `tree`"), "{}", stderr(&o));
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn force_refuses_the_input_repository_and_its_work_tree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = d.join("repo");
    copy_tree(&fixture("default"), &r);
    git(&r, &["init", "-q"]);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-qm", "base"]);
    let before = contents(d);
    for (repo_arg, out, relation) in [
        ("repo", "repo", "is"),
        ("repo", ".", "contains"),
        ("repo/.git", "repo", "contains"),
        ("repo", "repo/.git", "is inside"),
    ] {
        let o = generate(d, &["--repo", repo_arg, "--rev", "HEAD"], out, true);
        assert_eq!(o.status.code(), Some(2), "{out}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "kvmtk: error: --force refuses output `{out}`: it {relation} the input `{repo_arg}`; \
                 choose an --out outside it\n"
            )
        );
        assert_eq!(contents(d), before, "{out}: something changed");
    }
}

#[test]
fn force_replaces_only_a_series_kvmtk_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_tree(&fixture("default"), &d.join("tree"));
    // A directory of the user's, not empty: refused even with --force.
    std::fs::create_dir(d.join("mine")).unwrap();
    std::fs::write(d.join("mine/notes.txt"), "my notes").unwrap();
    let before = contents(d);
    let o = generate(d, &["tree"], "mine", true);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "kvmtk: error: --force refuses to replace `mine`: it is not a series kvmtk wrote (no `.kvmtk-series` \
         file in it); remove it yourself or choose another --out; nothing was changed\n"
    );
    assert_eq!(contents(d), before);
    // A series kvmtk wrote carries the marker, is not listed with it, and
    // is replaced.
    let o = generate(d, &["tree"], "series", false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(d.join("series/.kvmtk-series").is_file());
    assert!(!stdout(&o).contains(".kvmtk-series"), "{}", stdout(&o));
    std::fs::write(d.join("series/extra.txt"), "left over").unwrap();
    let o = generate(d, &["tree"], "series", true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!d.join("series/extra.txt").exists());
    assert!(d.join("series/.kvmtk-series").is_file());
    // A link to a series is not replaced (the link would be, not the series).
    symlink(d.join("series"), d.join("via-link"));
    let before = contents(d);
    let o = generate(d, &["tree"], "via-link", true);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("it is a symbolic link (give the directory itself)"), "{}", stderr(&o));
    assert_eq!(contents(d), before);
}
