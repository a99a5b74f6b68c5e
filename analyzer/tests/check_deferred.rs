//! Deferred git sources: `SourceTree::load_deferred` lists what `load`
//! lists without reading the C files' blobs; the checker reads only the
//! blobs its caches do not know, decodes only the facts of the arches it
//! analyzes, and reports what an eager load and a full check report, also
//! when a blob turns out to be unreadable.

use std::path::{Path, PathBuf};

use analyzer::api::ApiModel;
use analyzer::cache::{FactsCache, ResultCache};
use analyzer::check::{check, Checker};
use analyzer::pipeline::ParsedTree;
use analyzer::report::findings::render_json;
use analyzer::rules::RuleSelection;
use analyzer::source::{SourceOptions, SourceSpec, SourceTree};
use git2::{Oid, Repository, Signature};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kvm-fixtures/default")
}

/// Every regular file under `dir`, as (relative path, bytes).
fn read_all(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            read_all(root, &e.path(), out);
        } else {
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read(e.path()).unwrap()));
        }
    }
}

/// Commit `files` on HEAD of `repo` (no work tree involved).
fn commit(repo: &Repository, files: &[(String, Vec<u8>)], msg: &str) -> Oid {
    let mut index = git2::Index::new().unwrap();
    for (path, bytes) in files {
        let id = repo.blob(bytes).unwrap();
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: bytes.len() as u32,
            id,
            flags: path.len().min(0xfff) as u16,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).unwrap();
    }
    let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
    let sig = Signature::new("kvmtk test", "test@kvmtk.invalid", &git2::Time::new(0, 0)).unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents).unwrap()
}

/// A repository with the default fixture (HEAD~1) and a commit changing
/// one x86 file (HEAD).
fn fixture_repo() -> (tempfile::TempDir, Vec<(String, Vec<u8>)>) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::init(tmp.path()).unwrap();
    let mut files = Vec::new();
    read_all(&fixture(), &fixture(), &mut files);
    files.sort();
    commit(&repo, &files, "base");
    let x86 = files.iter_mut().find(|(p, _)| p == "arch/x86/kvm/x86.c").unwrap();
    x86.1.extend_from_slice(b"\nstatic int kvmtk_test_probe(void)\n{\n\treturn 0;\n}\n");
    commit(&repo, &files, "KVM: x86: one file");
    (tmp, files)
}

fn git(repo: &Path, rev: &str) -> SourceSpec {
    SourceSpec::Git { repo: repo.to_path_buf(), rev: rev.to_string() }
}

fn is_c(path: &str) -> bool {
    path.ends_with(".c") || path.ends_with(".h")
}

#[test]
fn a_deferred_load_lists_the_same_tree_and_reads_it_on_demand() {
    let (repo, _) = fixture_repo();
    let opts = SourceOptions::default();
    let eager = SourceTree::load(&git(repo.path(), "HEAD"), &opts).unwrap();
    let mut deferred = SourceTree::load_deferred(&git(repo.path(), "HEAD"), &opts).unwrap();
    let paths = |t: &SourceTree| t.files.iter().map(|f| (f.path.clone(), f.blob_id.clone())).collect::<Vec<_>>();
    assert_eq!(paths(&deferred), paths(&eager));
    assert_eq!(
        (&deferred.arches, &deferred.warnings, &deferred.commit),
        (&eager.arches, &eager.warnings, &eager.commit)
    );
    for f in &deferred.files {
        // C files wait; the documentation is read at once.
        assert_eq!(deferred.is_pending(f), is_c(&f.path), "{}", f.path);
        assert_eq!(f.bytes.is_empty(), is_c(&f.path), "{}", f.path);
    }
    deferred.read_pending(|f| f.path == "virt/kvm/kvm_main.c").unwrap();
    let main = deferred.file("virt/kvm/kvm_main.c").unwrap();
    assert!(!deferred.is_pending(main));
    assert_eq!(main.bytes, eager.file("virt/kvm/kvm_main.c").unwrap().bytes);
    let whole = deferred.read_all_pending();
    assert_eq!(whole, eager);
    // A directory is read whole either way.
    let dir = SourceTree::load_deferred(&SourceSpec::Dir(fixture()), &opts).unwrap();
    assert!(dir.files.iter().all(|f| !dir.is_pending(f)));
}

#[test]
fn a_commit_step_reads_only_what_its_caches_lack() {
    let (repo, files) = fixture_repo();
    let cache = tempfile::tempdir().unwrap();
    let (api, sel) = (ApiModel::default(), RuleSelection::default());
    let opts = SourceOptions::default();
    let full = |rev: &str| {
        render_json(&check(
            &ParsedTree::from_source(SourceTree::load(&git(repo.path(), rev), &opts).unwrap()),
            &api,
            &sel,
        ))
    };
    // The base, in another process.
    {
        let facts = FactsCache::with_dir(cache.path()).unwrap();
        let checker = Checker::new(&api, &facts, ResultCache::with_dir(cache.path()).unwrap(), sel.clone());
        let base = checker.check(SourceTree::load_deferred(&git(repo.path(), "HEAD~1"), &opts).unwrap());
        assert_eq!(render_json(&base.report), full("HEAD~1"));
    }
    let facts = FactsCache::with_dir(cache.path()).unwrap();
    let checker = Checker::new(&api, &facts, ResultCache::with_dir(cache.path()).unwrap(), sel.clone());
    let step = checker.check(SourceTree::load_deferred(&git(repo.path(), "HEAD"), &opts).unwrap());
    assert_eq!(render_json(&step.report), full("HEAD"));
    assert_eq!(step.stats.analyzed, 1, "x86 only");
    // One file parsed; the facts read back are those of x86 and common
    // code, not of the other arches (their summaries suffice).
    let x86_and_common =
        files.iter().filter(|(p, _)| is_c(p) && (!p.starts_with("arch/") || p.starts_with("arch/x86/"))).count();
    let all_c = files.iter().filter(|(p, _)| is_c(p)).count();
    assert!(x86_and_common < all_c);
    assert_eq!(facts.stats().parsed, 1);
    assert_eq!(facts.stats().disk_hits, x86_and_common - 1);
}

#[test]
fn an_unreadable_blob_reports_what_an_eager_load_reports() {
    let (repo, _) = fixture_repo();
    let opts = SourceOptions::default();
    let deferred = SourceTree::load_deferred(&git(repo.path(), "HEAD"), &opts).unwrap();
    // Damage the repository after the listing: the object of one C file
    // goes away before its bytes are read.
    let victim = deferred.file("arch/mips/kvm/vz.c").unwrap().blob_id.clone().unwrap();
    let object = repo.path().join(".git/objects").join(&victim[..2]).join(&victim[2..]);
    std::fs::remove_file(&object).unwrap();
    // A load now refuses the tree (issue 16: fail closed), naming the blob.
    let eager = SourceTree::load(&git(repo.path(), "HEAD"), &opts).unwrap_err();
    assert!(eager.to_string().contains(&format!("blob `arch/mips/kvm/vz.c` ({victim})")), "{eager}");

    // Gone between the listing and the read: reported, and not covered.
    let (api, sel) = (ApiModel::default(), RuleSelection::default());
    let facts = FactsCache::in_memory();
    let checker = Checker::new(&api, &facts, ResultCache::in_memory(), sel.clone());
    let got = checker.check(deferred);
    let vz = "arch/mips/kvm/vz.c";
    assert!(got.report.warnings.iter().any(|w| w.path == vz && w.message.starts_with("cannot read blob")));
    assert!(got.unanalyzed.iter().any(|u| u.path == vz), "{:?}", got.unanalyzed);
}
