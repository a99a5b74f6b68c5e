//! Shared helpers of the lint tests: git repositories built with git2 from
//! directories, commits replacing files, the real-kernel cache.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature, Time};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(name: &str) -> PathBuf {
    workspace().join("kvm-fixtures").join(name)
}

#[path = "../../../test-support/kernel_cache.rs"]
mod kernel_cache_support;

/// The real-kernel tree `name` of the cache, or `None` (with a notice) when
/// missing and not under CI.
pub fn kernel_cache(name: &str) -> Option<PathBuf> {
    kernel_cache_support::kernel_tree(name)
}

fn sig() -> Signature<'static> {
    Signature::new("Test Author", "test@example.org", &Time::new(1_717_408_800, 0)).unwrap()
}

/// A tree object holding the files of `dir` (recursively, `.git` skipped).
pub fn tree_of_dir(repo: &Repository, dir: &Path) -> Oid {
    let mut b = repo.treebuilder(None).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name == ".git" {
            continue;
        }
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            let sub = tree_of_dir(repo, &e.path());
            b.insert(&name, sub, 0o040000).unwrap();
        } else if ty.is_file() {
            let blob = repo.blob(&std::fs::read(e.path()).unwrap()).unwrap();
            b.insert(&name, blob, 0o100644).unwrap();
        }
    }
    b.write().unwrap()
}

/// Commit `tree` on top of `parent` (none: a root commit) and point
/// `refs/heads/<branch>` at it.
pub fn commit(repo: &Repository, branch: &str, parent: Option<Oid>, tree: Oid, message: &str) -> Oid {
    let tree = repo.find_tree(tree).unwrap();
    let parents: Vec<git2::Commit<'_>> = parent.map(|p| repo.find_commit(p).unwrap()).into_iter().collect();
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let id = repo.commit(None, &sig(), &sig(), message, &tree, &refs).unwrap();
    repo.reference(&format!("refs/heads/{branch}"), id, true, "test").unwrap();
    id
}

/// A repository (in a temporary directory) whose single commit holds the
/// files of `src`, tagged `tag`, on branch `master`.
pub fn repo_from_dir(src: &Path, tag: &str) -> (tempfile::TempDir, Repository, Oid) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    let tree = tree_of_dir(&repo, src);
    let id = commit(&repo, "master", None, tree, "base\n");
    repo.tag_lightweight(tag, &repo.find_object(id, None).unwrap(), false).unwrap();
    (dir, repo, id)
}

/// Commit on `branch` (at `parent`) the parent's tree with `path` set to `bytes`.
pub fn commit_file(repo: &Repository, branch: &str, parent: Oid, path: &str, bytes: &[u8], message: &str) -> Oid {
    let base = repo.find_commit(parent).unwrap().tree().unwrap();
    let blob = repo.blob(bytes).unwrap();
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.upsert(path, blob, git2::FileMode::Blob);
    let tree = update.create_updated(repo, &base).unwrap();
    commit(repo, branch, Some(parent), tree, message)
}

/// The contents of `path` at `rev`.
pub fn read_at(repo: &Repository, rev: &str, path: &str) -> Vec<u8> {
    let tree = repo.revparse_single(rev).unwrap().peel_to_tree().unwrap();
    let entry = tree.get_path(Path::new(path)).unwrap();
    repo.find_blob(entry.id()).unwrap().content().to_vec()
}

/// `diff` between two trees as a git format-patch mail.
pub fn format_patch(repo: &Repository, from: Oid, to: Oid, subject: &str) -> String {
    let a = repo.find_commit(from).unwrap().tree().unwrap();
    let b = repo.find_commit(to).unwrap().tree().unwrap();
    let diff = repo.diff_tree_to_tree(Some(&a), Some(&b), None).unwrap();
    let mut text = format!(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: Test Author <test@example.org>\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nSubject: [PATCH] {subject}\n\nWhy.\n\nSigned-off-by: Test Author <test@example.org>\n---\n"
    );
    diff.print(git2::DiffFormat::Patch, |_, _, line| {
        match line.origin() {
            '+' | '-' | ' ' => text.push(line.origin()),
            _ => {}
        }
        text.push_str(&String::from_utf8_lossy(line.content()));
        true
    })
    .unwrap();
    text.push_str("-- \n2.39.0\n\n");
    text
}

/// The headers outside the KVM subset that upstream's ported series touches
/// (`../shared/data/upstream-v2/README.md`).
pub const PORTED_SERIES_EXTRA_HEADERS: [&str; 5] = [
    "arch/arm64/include/asm/kvm_mmu.h",
    "arch/powerpc/include/asm/kvm_ppc.h",
    "arch/x86/include/asm/kvm-x86-ops.h",
    "include/kvm/arm_arch_timer.h",
    "include/kvm/arm_vgic.h",
];

/// Run git in `repo` with a fixed committer (so `git am` is reproducible).
pub fn git_in(repo: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_DATE", "1717408800 +0000")
        .output()
        .expect("git runs")
}

/// Upstream's v2 series ported to Debian 6.1.192, its patches in order
/// without the cover letter; `None` (a notice) outside CI when the shared
/// data is missing, a failure under CI.
pub fn ported_patches() -> Option<Vec<PathBuf>> {
    let dir = workspace().join("../shared/data/upstream-v2/ported-6.1.192");
    if !dir.is_dir() {
        assert!(std::env::var_os("CI").is_none(), "{} is missing", dir.display());
        eprintln!("notice: skipping: {} is missing", dir.display());
        return None;
    }
    let mut patches: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".patch") && !name.starts_with("0000-")
        })
        .collect();
    patches.sort();
    assert_eq!(patches.len(), 45, "{patches:?}");
    Some(patches)
}

/// A repository whose tag `base` is the 6.1 KVM subset `kernel` plus the
/// extra headers from the whole tree `full`, and whose `master` has every
/// ported patch applied on it with `git am -C1`.
pub fn ported_series_repo(kernel: &Path, full: &Path, patches: &[PathBuf]) -> tempfile::TempDir {
    let (dir, repo, mut base) = repo_from_dir(kernel, "v6.1");
    for h in PORTED_SERIES_EXTRA_HEADERS {
        let bytes = std::fs::read(full.join(h)).unwrap();
        base = commit_file(&repo, "master", base, h, &bytes, &format!("Add {h}\n"));
    }
    repo.tag_lightweight("base", &repo.find_object(base, None).unwrap(), false).unwrap();
    let r = dir.path();
    let o = git_in(r, &["checkout", "-q", "-f", "master"]);
    assert!(o.status.success(), "checkout: {}", String::from_utf8_lossy(&o.stderr));
    for p in patches {
        let o = git_in(r, &["am", "-q", "-C1", p.to_str().unwrap()]);
        assert!(o.status.success(), "git am -C1 {}: {}", p.display(), String::from_utf8_lossy(&o.stderr));
    }
    dir
}
