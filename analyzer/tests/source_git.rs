//! SourceTree over git revisions: throw-away repositories (normal and bare)
//! built with git2 from fake trees and from the real 6.1 and 6.12 trees; a
//! revision must load exactly what the directory loads.

mod source_common;

#[path = "../../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::fs;
use std::path::Path;

use analyzer::source::{SourceError, SourceOptions, SourceSpec, SourceTree};
use git2::{IndexEntry, IndexTime, Oid, Repository, Signature};

/// Every regular file under `dir`, as (relative path, bytes), sorted.
fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &e.path(), out);
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.push((rel, fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn entry(path: &str, id: Oid, mode: u32, size: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: size as u32,
        id,
        flags: (path.len().min(0xfff)) as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// Commits `files` (and `symlinks`: path -> target) as the next commit on
/// HEAD, without touching any work tree (works on bare repositories).
fn commit(repo: &Repository, files: &[(String, Vec<u8>)], symlinks: &[(&str, &str)], msg: &str) -> Oid {
    let mut index = git2::Index::new().unwrap();
    for (path, bytes) in files {
        let id = repo.blob(bytes).unwrap();
        index.add(&entry(path, id, 0o100644, bytes.len())).unwrap();
    }
    for (path, target) in symlinks {
        let id = repo.blob(target.as_bytes()).unwrap();
        index.add(&entry(path, id, 0o120000, target.len())).unwrap();
    }
    let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
    let sig = Signature::new("kvmtk test", "test@kvmtk.invalid", &git2::Time::new(0, 0)).unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents).unwrap()
}

fn git(repo: &Path, rev: &str) -> SourceSpec {
    SourceSpec::Git { repo: repo.to_path_buf(), rev: rev.to_string() }
}

fn fake_files() -> Vec<(String, Vec<u8>)> {
    [
        ("virt/kvm/kvm_main.c", "int kvm_main;\n"),
        ("include/linux/kvm_host.h", "struct kvm;\n"),
        ("include/linux/cpuhotplug.h", "enum cpuhp_state { CPUHP_OFFLINE };\n"),
        ("Documentation/virt/kvm/locking.rst", "locks\n"),
        ("arch/x86/kvm/x86.c", "int x86;\n"),
        ("arch/x86/kvm/Makefile", "obj-y += x86.o\n"),
        ("arch/x86/include/asm/kvm_host.h", "struct kvm_arch;\n"),
        ("arch/s390/kvm/kvm-s390.c", "int s390;\n"),
        ("drivers/foo.c", "int foo;\n"),
    ]
    .iter()
    .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
    .collect()
}

#[test]
fn fake_tree_revisions_symlinks_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo.git");
    let repo = Repository::init_bare(&repo_dir).unwrap();
    let first = commit(&repo, &fake_files(), &[], "first");
    let mut files = fake_files();
    files.push(("virt/kvm/new.c".into(), b"int new;\n".to_vec()));
    commit(
        &repo,
        &files,
        &[
            ("virt/kvm/alias.h", "../../include/linux/kvm_host.h"),
            ("virt/kvm/escape.c", "../../../etc/passwd"),
            ("virt/kvm/absolute.c", "/etc/passwd"),
            ("virt/kvm/dangling.c", "nowhere.c"),
        ],
        "second",
    );

    let opts = SourceOptions::default();
    let head = SourceTree::load(&git(&repo_dir, "HEAD"), &opts).unwrap();
    let paths: Vec<&str> = head.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Documentation/virt/kvm/locking.rst",
            "arch/s390/kvm/kvm-s390.c",
            "arch/x86/include/asm/kvm_host.h",
            // Read as data: which options build each file (kbuild.rs).
            "arch/x86/kvm/Makefile",
            "arch/x86/kvm/x86.c",
            "include/linux/cpuhotplug.h",
            "include/linux/kvm_host.h",
            "virt/kvm/alias.h",
            "virt/kvm/kvm_main.c",
            "virt/kvm/new.c",
        ]
    );
    assert_eq!(head.arches, ["s390", "x86"]);
    assert_eq!(head.root_label, format!("{}@HEAD", repo_dir.display()));
    let alias = head.file("virt/kvm/alias.h").unwrap();
    assert_eq!(alias.bytes, b"struct kvm;\n");
    // The blob id is the target's, as for directory sources (content hash).
    assert_eq!(alias.blob_id, head.file("include/linux/kvm_host.h").unwrap().blob_id);
    let warnings: Vec<String> = head.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "virt/kvm/absolute.c: warning: symbolic link points outside the tree (to `/etc/passwd`); not followed",
            "virt/kvm/dangling.c: warning: cannot read: dangling symbolic link (to `virt/kvm/nowhere.c`)",
            "virt/kvm/escape.c: warning: symbolic link points outside the tree (to `../../../etc/passwd`); not followed",
        ]
    );

    // Older revisions by commit id and by relative name.
    let by_id = SourceTree::load(&git(&repo_dir, &first.to_string()), &opts).unwrap();
    assert!(by_id.file("virt/kvm/new.c").is_none());
    assert_eq!(by_id.commit, Some(first.to_string()));
    let parent = SourceTree::load(&git(&repo_dir, "HEAD~1"), &opts).unwrap();
    assert_eq!(parent.files, by_id.files);
    // A revision naming a tree has no commit.
    let tree_rev = SourceTree::load(&git(&repo_dir, "HEAD~1^{tree}"), &opts).unwrap();
    assert_eq!(tree_rev.files, by_id.files);
    assert_eq!(tree_rev.commit, None);

    // Errors.
    let err = SourceTree::load(&git(&repo_dir, "v9.9"), &opts).unwrap_err();
    assert_eq!(err.to_string(), format!("unknown revision `v9.9` in git repository `{}`", repo_dir.display()));
    let blob = repo.blob(b"x").unwrap();
    let err = SourceTree::load(&git(&repo_dir, &blob.to_string()), &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "revision `{blob}` in git repository `{}` is a blob; expected a commit, tag or tree",
            repo_dir.display()
        )
    );
    let x86 = SourceOptions { arches: Some(vec!["arm64".into()]), ..Default::default() };
    let err = SourceTree::load(&git(&repo_dir, "HEAD"), &x86).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unknown architecture `arm64` in `{}@HEAD`; architectures with KVM code: s390, x86",
            repo_dir.display()
        )
    );

    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let err = SourceTree::load(&git(&plain, "HEAD"), &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` is not a git repository; expected a repository (or bare repository) holding a kernel tree",
            plain.display()
        )
    );
    let missing = tmp.path().join("missing");
    let err = SourceTree::load(&git(&missing, "HEAD"), &opts).unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");

    // A repository whose revision is not a kernel tree.
    let other_dir = tmp.path().join("other");
    let other = Repository::init(&other_dir).unwrap();
    commit(&other, &[("README".into(), b"hi\n".to_vec())], &[], "readme");
    let err = SourceTree::load(&git(&other_dir, "HEAD"), &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}@HEAD` is not a kernel source tree: missing virt/kvm/kvm_main.c and include/linux/kvm_host.h",
            other_dir.display()
        )
    );
    // An empty repository has no HEAD commit yet.
    let empty_dir = tmp.path().join("empty");
    Repository::init(&empty_dir).unwrap();
    let err = SourceTree::load(&git(&empty_dir, "HEAD"), &opts).unwrap_err();
    assert_eq!(err.to_string(), format!("unknown revision `HEAD` in git repository `{}`", empty_dir.display()));
}

fn assert_same(git_tree: &SourceTree, dir_tree: &SourceTree) {
    let git_paths: Vec<&str> = git_tree.files.iter().map(|f| f.path.as_str()).collect();
    let dir_paths: Vec<&str> = dir_tree.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(git_paths, dir_paths, "{} vs {}", git_tree.root_label, dir_tree.root_label);
    for (g, d) in git_tree.files.iter().zip(&dir_tree.files) {
        assert!(g.bytes == d.bytes, "{}: bytes differ", g.path);
        assert_eq!(g.blob_id, d.blob_id, "{}", g.path);
        assert_eq!(g.arch, d.arch, "{}", g.path);
    }
    assert_eq!(git_tree.arches, dir_tree.arches);
    assert_eq!(git_tree.warnings, dir_tree.warnings);
}

/// Commit 1 holds the extracted 6.1 files (annotated tag `v6.1`), commit 2
/// the 6.12 files (lightweight tag `v6.12`); the bare repository is a copy
/// of the first one's git directory.
#[test]
fn real_kernels_via_git_match_directories() {
    let (Some(k61), Some(k612)) = (source_common::real_kernel("6.1"), source_common::real_kernel("6.12")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("linux");
    let repo = Repository::init(&work).unwrap();
    let sig = Signature::new("kvmtk test", "test@kvmtk.invalid", &git2::Time::new(0, 0)).unwrap();
    let c1 = commit(&repo, &read_all(&k61), &[], "Linux 6.1");
    repo.tag("v6.1", &repo.find_object(c1, None).unwrap(), &sig, "Linux 6.1", false).unwrap();
    let c2 = commit(&repo, &read_all(&k612), &[], "Linux 6.12");
    repo.tag_lightweight("v6.12", &repo.find_object(c2, None).unwrap(), false).unwrap();
    drop(repo);
    let bare = tmp.path().join("linux.git");
    copy_tree(&work.join(".git"), &bare);
    Repository::open(&bare).unwrap().config().unwrap().set_bool("core.bare", true).unwrap();
    assert!(Repository::open(&bare).unwrap().is_bare());

    let opts = SourceOptions::default();
    let x86 = SourceOptions { arches: Some(vec!["x86".into()]), ..Default::default() };
    for (dir, rev, commit_id) in [(&k61, "v6.1", c1), (&k612, "v6.12", c2)] {
        for o in [&opts, &x86] {
            let from_dir = SourceTree::load(&SourceSpec::Dir(dir.clone()), o).unwrap();
            for repo_path in [&work, &bare] {
                let from_git = SourceTree::load(&git(repo_path, rev), o).unwrap();
                assert_eq!(from_git.commit, Some(commit_id.to_string()));
                assert_same(&from_git, &from_dir);
            }
        }
    }

    // The facts and the findings are the same whether the tree comes from
    // the directory or from the (bare) repository.
    let api = analyzer::api::ApiModel::default();
    for (dir, rev) in [(&k61, "v6.1"), (&k612, "v6.12")] {
        let from_dir = analyzer::pipeline::ParsedTree::load(&SourceSpec::Dir(dir.clone()), &opts).unwrap();
        let from_git = analyzer::pipeline::ParsedTree::load(&git(&bare, rev), &opts).unwrap();
        assert!(from_dir.files == from_git.files, "{rev}: facts differ");
        let sel = analyzer::rules::RuleSelection::default();
        let a = analyzer::check::check(&from_dir, &api, &sel);
        let b = analyzer::check::check(&from_git, &api, &sel);
        let key = |r: &analyzer::check::CheckReport| {
            r.findings.iter().map(|f| (f.fingerprint.clone(), f.file.clone(), f.line)).collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b), "{rev}: findings differ");
    }
}
