//! A git repository for the command-line tests of `lint`: the HW001 quiet
//! fixture tagged `base`, then one commit turning it into the fire tree on
//! branch `topic`, and that commit as a `format-patch` file beside the
//! repository. Shared by the tests that include it with `#[path]`.

#![allow(dead_code)]

#[path = "copy_tree.rs"]
mod copy_tree;
pub use copy_tree::copy_tree;

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name)
}

/// Run git in `dir` with a fixed identity and date and no user
/// configuration, so that commits (and their patches) are reproducible.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_AUTHOR_DATE", "Mon, 3 Jun 2024 10:00:00 +0000")
        .env("GIT_COMMITTER_DATE", "Mon, 3 Jun 2024 10:00:00 +0000")
        .output()
        .expect("run git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `repo/`: the HW001 quiet tree tagged `base`, then a commit making it the
/// fire tree on `topic`; `0001-*.patch` beside it: that commit. Returns the
/// temporary directory holding both and the patch's path.
pub fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    copy_tree(&fixture("rules/hw001-unguarded-list-walk/quiet"), &repo);
    git(&repo, &["init", "-q", "-b", "topic"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    git(&repo, &["tag", "base"]);
    std::fs::remove_dir_all(repo.join("arch")).unwrap();
    std::fs::remove_dir_all(repo.join("virt")).unwrap();
    copy_tree(&fixture("rules/hw001-unguarded-list-walk/fire"), &repo);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "x86: Resync the clock of every guest on CPU online"]);
    let name = git(&repo, &["format-patch", "-1", "-o", ".."]);
    let patch = repo.join(name.trim());
    (dir, patch)
}
