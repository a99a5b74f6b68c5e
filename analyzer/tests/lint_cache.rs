//! The facts cache: cached facts equal parsed facts, entries survive runs
//! on disk, and corrupt, truncated or foreign entries are ignored and
//! replaced without a panic.

use std::path::{Path, PathBuf};

use analyzer::cache::{cache_version, FactsCache};
use analyzer::pipeline::ParsedTree;
use analyzer::source::{SourceOptions, SourceSpec, SourceTree};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kvm-fixtures").join(name)
}

fn load() -> SourceTree {
    SourceTree::load(&SourceSpec::Dir(fixture("default")), &SourceOptions::default()).unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir.join(cache_version())).unwrap() {
        for e in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(e.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn cached_tree_equals_parsed_tree() {
    let cache = FactsCache::in_memory();
    let plain = ParsedTree::from_source(load());
    let first = ParsedTree::from_source_cached(load(), &cache);
    let n = first.files.len();
    assert_eq!(cache.stats().parsed, n);
    let second = ParsedTree::from_source_cached(load(), &cache);
    assert_eq!(cache.stats().memory_hits, n);
    for t in [&first, &second] {
        assert_eq!(t.files, plain.files);
        assert_eq!(t.warnings, plain.warnings);
    }
}

#[test]
fn disk_entries_survive_runs_and_bad_ones_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let plain = ParsedTree::from_source(load());
    let n = plain.files.len();
    {
        let cache = FactsCache::with_dir(dir.path()).unwrap();
        ParsedTree::from_source_cached(load(), &cache);
        assert_eq!(cache.stats().parsed, n);
        assert_eq!(cache.stats().write_errors, 0);
    }
    let files = entries(dir.path());
    assert_eq!(files.len(), n, "one entry per C file, no temporary files left");
    let cache = FactsCache::with_dir(dir.path()).unwrap();
    let again = ParsedTree::from_source_cached(load(), &cache);
    assert_eq!(cache.stats().disk_hits, n);
    assert_eq!(cache.stats().parsed, 0);
    assert_eq!(again.files, plain.files);

    // Corrupt three entries: garbage, truncated, a valid entry of another
    // version (the version string, same length, one character changed).
    std::fs::write(&files[0], b"\x00\xffnot an entry").unwrap();
    let bytes = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &bytes[..bytes.len() / 2]).unwrap();
    let mut bytes = std::fs::read(&files[2]).unwrap();
    let version = cache_version().as_bytes();
    let at = bytes.windows(version.len()).position(|w| w == version).expect("entry names its version");
    let last = at + version.len() - 1;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    std::fs::write(&files[2], &bytes).unwrap();
    let cache = FactsCache::with_dir(dir.path()).unwrap();
    let repaired = ParsedTree::from_source_cached(load(), &cache);
    let s = cache.stats();
    assert_eq!((s.rejected, s.parsed, s.disk_hits), (3, 3, n - 3), "{s:?}");
    assert_eq!(repaired.files, plain.files);
    // Rewritten: the next run reads all of them.
    let cache = FactsCache::with_dir(dir.path()).unwrap();
    ParsedTree::from_source_cached(load(), &cache);
    assert_eq!(cache.stats().disk_hits, n);
}

#[test]
fn a_file_as_cache_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file");
    std::fs::write(&f, "x").unwrap();
    let e = FactsCache::with_dir(&f).unwrap_err().to_string();
    assert!(e.contains("cannot use cache directory") && e.contains("not a directory"), "{e}");
}

/// Checks running side by side (a lint's commits) ask for the same new
/// file at once: one parses it, the others wait for its facts.
#[test]
fn a_file_asked_for_by_several_threads_at_once_is_parsed_once() {
    use analyzer::source::SourceFile;
    // Large enough that the parse outlasts the threads' start.
    let mut src = String::new();
    for i in 0..3000 {
        src.push_str(&format!(
            "static int f{i}(struct kvm *kvm)\n{{\n\tmutex_lock(&kvm->lock);\n\tkvm->n{i} = {i};\n\tmutex_unlock(&kvm->lock);\n\treturn 0;\n}}\n\n"
        ));
    }
    let bytes = src.into_bytes();
    let file = SourceFile {
        path: "virt/kvm/many.c".into(),
        arch: None,
        blob_id: Some(git2::Oid::hash_object(git2::ObjectType::Blob, &bytes).unwrap().to_string()),
        bytes,
    };
    let cache = FactsCache::in_memory();
    let threads = 6;
    let start = std::sync::Barrier::new(threads);
    let facts: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    cache.facts(&file)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = cache.stats();
    assert_eq!((stats.parsed, stats.memory_hits), (1, threads - 1), "{stats:?}");
    assert_eq!(facts[0].functions.len(), 3000);
    assert!(facts.iter().all(|f| *f == facts[0]));
}

/// Trees checked one after another (a lint's commits) share the facts of
/// the files they have in common: the second tree's unchanged files are
/// the first's facts themselves, read from disk once; the edited file is
/// parsed, reusing the chunks its old version had.
#[test]
fn consecutive_trees_share_their_unchanged_files_facts() {
    let dir = tempfile::tempdir().unwrap();
    // Warm the disk, as a lint's base check does.
    ParsedTree::from_source_cached(load(), &FactsCache::with_dir(dir.path()).unwrap());
    let cache = FactsCache::with_dir(dir.path()).unwrap().reusing_chunks();
    let hash = |b: &[u8]| git2::Oid::hash_object(git2::ObjectType::Blob, b).unwrap().to_string();
    let with_blob_ids = |mut t: SourceTree| {
        for f in &mut t.files {
            f.blob_id = Some(hash(&f.bytes));
        }
        t
    };
    let first = ParsedTree::from_source_cached(with_blob_ids(load()), &cache);
    let n = first.files.len();
    assert_eq!((cache.stats().disk_hits, cache.stats().parsed), (n, 0));
    // The next commit edits the end of one C file.
    let mut next = load();
    let edited = next.files.iter().position(|f| f.path.ends_with("kvm_main.c")).expect("fixture has kvm_main.c");
    next.files[edited].bytes.extend_from_slice(b"\nstatic int added_by_the_commit(void)\n{\n\treturn 0;\n}\n");
    let edited_path = next.files[edited].path.clone();
    let second = ParsedTree::from_source_cached(with_blob_ids(next), &cache);
    let stats = cache.stats();
    assert_eq!((stats.disk_hits, stats.parsed, stats.memory_hits), (n, 1, n - 1), "{stats:?}");
    for (a, b) in first.files.iter().zip(&second.files) {
        assert_eq!(std::sync::Arc::ptr_eq(a, b), a.path != edited_path, "{}", a.path);
    }
    // The edited file's new version was parsed on its own (its old version
    // came from disk, so its chunks were not known): every chunk parsed.
    assert!(stats.chunks_parsed > 1 && stats.chunks_reused == 0, "{stats:?}");
    let fresh = ParsedTree::from_source(load_edited(&edited_path));
    let edited_facts = second.files.iter().find(|f| f.path == edited_path).unwrap();
    assert_eq!(**edited_facts, *fresh.files.iter().find(|f| f.path == edited_path).unwrap().as_ref());
}

fn load_edited(path: &str) -> SourceTree {
    let mut t = load();
    let f = t.files.iter_mut().find(|f| f.path == path).unwrap();
    f.bytes.extend_from_slice(b"\nstatic int added_by_the_commit(void)\n{\n\treturn 0;\n}\n");
    t
}
