//! Persistent caches: parsed C facts keyed by git blob id
//! ([`FactsCache`]), and whole per-arch results keyed by the signature of
//! their inputs ([`ResultCache`]).
//!
//! Parsing dominates the cost of loading a tree, and facts are pure syntax
//! (the API model is applied later), so the facts of one file depend only
//! on its bytes and its path. The key is therefore the file's git blob id
//! plus its path (the path is stored in the facts and decides the arch);
//! the same blob at the same path is parsed once per run, and, with a cache
//! directory, once across runs.
//!
//! # On-disk format
//!
//! `DIR/<version>/<blob[0..2]>/<blob>-<path hash>.bin`, one entry per
//! file, `{version, blob, path, facts}` encoded with postcard (compact
//! binary serde; reading it back is several times faster than JSON and
//! than parsing). `<version>` (see
//! [`cache_version`]) names the tool version, [`FACTS_SCHEMA`] and a hash of
//! the facts and parser sources, so a build that changes how facts are
//! extracted never reads entries of another build. An entry that does not
//! read back (truncated, corrupt, another version, another key) is ignored
//! and the file re-parsed, then rewritten; entries are written to a
//! temporary file in their directory and renamed into place, so a reader
//! never sees half an entry and concurrent runs do not corrupt each other.
//! Failing to write an entry only costs a re-parse next time; it is counted
//! in [`CacheStats::write_errors`], never fatal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::facts::FileFacts;
use crate::hash::fnv;
use crate::source::{SourceFile, SourceTree};
use crate::write::write_atomic;

/// Version of the facts data model as cached. Bump it when a change to
/// [`FileFacts`] is not visible in the sources hashed by [`cache_version`]
/// (a grammar upgrade is: `Cargo.lock` is hashed too).
pub const FACTS_SCHEMA: u32 = 2;

/// The sources whose change changes the facts of a file; hashed into
/// [`cache_version`] so that a rebuilt parser never reads stale entries
/// even when nobody remembers to bump [`FACTS_SCHEMA`].
const FACTS_SOURCES: [&str; 6] = [
    include_str!("facts.rs"),
    include_str!("parse/mod.rs"),
    include_str!("parse/extract.rs"),
    include_str!("parse/mask.rs"),
    include_str!("parse/stmt.rs"),
    include_str!("parse/text.rs"),
];

/// The cache format's version string: `kvmtk-<tool version>-facts<schema>-<hash>`,
/// where the hash covers the facts model and the parser sources.
pub fn cache_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let parts: Vec<&[u8]> = FACTS_SOURCES.iter().map(|s| s.as_bytes()).collect();
        let parts: Vec<&[u8]> =
            parts.into_iter().chain(std::iter::once(env!("KVMTK_DEPENDENCIES_HASH").as_bytes())).collect();
        format!("kvmtk-{}-facts{}-{:016x}", env!("CARGO_PKG_VERSION"), FACTS_SCHEMA, fnv(&parts))
    })
}

/// Why a cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use cache directory `{}`: {message}", path.display())]
pub struct CacheError {
    /// The directory as given.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// How the cache was used, for timings and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Files parsed (not found in the cache).
    pub parsed: usize,
    /// Files found in memory.
    pub memory_hits: usize,
    /// Files read from the cache directory.
    pub disk_hits: usize,
    /// Entries in the cache directory that did not read back (corrupt,
    /// truncated, other key) and were replaced.
    pub rejected: usize,
    /// Entries that could not be written (the cache directory is optional).
    pub write_errors: usize,
}

/// One entry on disk.
#[derive(Serialize, Deserialize)]
struct Entry {
    version: String,
    blob: String,
    path: String,
    facts: FileFacts,
}

/// Facts by (blob id, path), in memory and optionally on disk. Shared by
/// reference between rayon workers: all methods take `&self`.
#[derive(Debug, Default)]
pub struct FactsCache {
    memory: Mutex<HashMap<(String, String), Arc<FileFacts>>>,
    /// Facts handed back by [`FactsCache::recycle`], moved out (not
    /// cloned) by the next lookup: checking commit after commit then costs
    /// no copy of the unchanged files' facts.
    recycled: Mutex<HashMap<(String, String), FileFacts>>,
    /// `DIR/<version>`, when persistent.
    dir: Option<PathBuf>,
    /// Do not keep a copy of each file's facts in memory (see
    /// [`FactsCache::without_memory`]).
    no_memory: bool,
    parsed: AtomicUsize,
    memory_hits: AtomicUsize,
    disk_hits: AtomicUsize,
    rejected: AtomicUsize,
    write_errors: AtomicUsize,
}

impl FactsCache {
    /// A cache that lives for this run only.
    pub fn in_memory() -> FactsCache {
        FactsCache::default()
    }

    /// A cache backed by `dir` (created if missing). Fails only when the
    /// directory cannot be created or is not a directory; individual
    /// entries never fail the run.
    pub fn with_dir(dir: &Path) -> Result<FactsCache, CacheError> {
        let versioned = create_within(dir, Path::new(cache_version()))?;
        Ok(FactsCache { dir: Some(versioned), ..FactsCache::default() })
    }

    /// The versioned directory entries are stored in, if persistent.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// This cache without the in-memory copies: for a run that loads one
    /// tree, where a copy of every file's facts only costs time and memory
    /// (recycling still works).
    pub fn without_memory(self) -> FactsCache {
        FactsCache { no_memory: true, ..self }
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            parsed: self.parsed.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
        }
    }

    /// The facts of `file`: from memory, else from disk, else parsed (and
    /// stored in both). A file without a blob id is parsed every time.
    pub fn facts(&self, file: &SourceFile) -> FileFacts {
        if let Some(f) = self.cached(file) {
            return f;
        }
        self.parsed.fetch_add(1, Ordering::Relaxed);
        let facts = crate::parse::parse_file(&file.path, file.arch.as_deref(), &file.bytes);
        if let Some(blob) = file.blob_id.as_deref() {
            self.write_disk(blob, &file.path, &facts);
            if !self.no_memory {
                self.lock().insert((blob.to_string(), file.path.clone()), Arc::new(facts.clone()));
            }
        }
        facts
    }

    /// The facts of `file` if this cache holds them (memory or disk),
    /// without reading its contents.
    pub fn cached(&self, file: &SourceFile) -> Option<FileFacts> {
        let blob = file.blob_id.as_deref()?;
        let key = (blob.to_string(), file.path.clone());
        if let Some(f) = self.recycled.lock().unwrap_or_else(|e| e.into_inner()).remove(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(f);
        }
        if let Some(f) = self.lock().get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(FileFacts::clone(f));
        }
        let facts = self.read_disk(blob, &file.path)?;
        self.disk_hits.fetch_add(1, Ordering::Relaxed);
        if !self.no_memory {
            self.lock().insert(key, Arc::new(facts.clone()));
        }
        Some(facts)
    }

    /// Hand back the facts of a parsed tree that is no longer needed, so
    /// that the next tree sharing its files takes them without a copy.
    /// Replaces what was recycled before (only the latest tree is kept).
    pub fn recycle(&self, source: &SourceTree, files: impl IntoIterator<Item = FileFacts>) {
        let mut map = HashMap::new();
        for f in files {
            if let Some(blob) = source.file(&f.path).and_then(|s| s.blob_id.clone()) {
                map.insert((blob, f.path.clone()), f);
            }
        }
        *self.recycled.lock().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// The map, even if another thread panicked while holding it (the map
    /// itself is always consistent: inserts are single operations).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<FileFacts>>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry_path(&self, blob: &str, path: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        // Blob ids are hex; anything else is not used as a file name.
        if blob.len() < 3 || !blob.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let shard = &blob[..2];
        Some(dir.join(shard).join(format!("{blob}-{:016x}.bin", fnv(&[path.as_bytes()]))))
    }

    fn read_disk(&self, blob: &str, path: &str) -> Option<FileFacts> {
        let p = self.entry_path(blob, path)?;
        let bytes = std::fs::read(&p).ok()?;
        match postcard::from_bytes::<Entry>(&bytes) {
            Ok(e) if e.version == cache_version() && e.blob == blob && e.path == path && e.facts.path == path => {
                Some(e.facts)
            }
            _ => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn write_disk(&self, blob: &str, path: &str, facts: &FileFacts) {
        let Some(p) = self.entry_path(blob, path) else { return };
        let write = || -> std::io::Result<()> {
            let dir = p.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let entry = Entry {
                version: cache_version().to_string(),
                blob: blob.to_string(),
                path: path.to_string(),
                facts: facts.clone(),
            };
            let bytes = postcard::to_stdvec(&entry).map_err(std::io::Error::other)?;
            write_atomic(&p, &bytes)
        };
        if write().is_err() {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The version string of cached results: `kvmtk-<tool version>-analysis-<hash>`,
/// where the hash covers every source file of the analyzer (computed by its
/// build script), so a build whose analysis differs in any byte never reads
/// results of another.
pub fn analysis_version() -> &'static str {
    concat!("kvmtk-", env!("CARGO_PKG_VERSION"), "-analysis-", env!("KVMTK_ANALYZER_SOURCES_HASH"))
}

/// The cache directory used when none is given: `$KVMTK_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/kvmtk`, else `$HOME/.cache/kvmtk`; `None` when none of
/// them is set (the caches then live in memory only). Never inside the
/// tree being analyzed: kvmtk does not write to a user's tree.
pub fn default_dir() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("KVMTK_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|d| d.join("kvmtk")))
        .or_else(|| non_empty("HOME").map(|d| d.join(".cache").join("kvmtk")))
}

/// One result entry on disk.
#[derive(Serialize, Deserialize)]
struct ResultEntry {
    version: String,
    kind: String,
    key: u64,
    payload: Vec<u8>,
}

/// How the result cache was used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResultStats {
    /// Lookups answered from memory.
    pub memory_hits: usize,
    /// Lookups answered from the cache directory.
    pub disk_hits: usize,
    /// Lookups not answered.
    pub misses: usize,
    /// Entries on disk that did not read back and were ignored.
    pub rejected: usize,
    /// Entries that could not be written.
    pub write_errors: usize,
}

/// Encoded values by (kind, key).
type ResultMap = HashMap<(String, u64), Arc<Vec<u8>>>;

/// Values by (kind, 64-bit signature of their inputs), in memory and
/// optionally on disk at `DIR/<analysis version>/results/<kind>-<key>.bin`.
/// The caller's signature must cover everything the value depends on
/// besides the analyzer's code (which names the directory). Like
/// [`FactsCache`], an entry that does not read back is ignored and
/// recomputed, writes are atomic, and failing to write is never fatal.
#[derive(Debug, Default)]
pub struct ResultCache {
    /// Postcard bytes, decoded on each lookup (results are small).
    memory: Mutex<ResultMap>,
    dir: Option<PathBuf>,
    memory_hits: AtomicUsize,
    disk_hits: AtomicUsize,
    misses: AtomicUsize,
    rejected: AtomicUsize,
    write_errors: AtomicUsize,
}

impl ResultCache {
    /// A cache that lives for this run only.
    pub fn in_memory() -> ResultCache {
        ResultCache::default()
    }

    /// A cache backed by `dir` (created if missing); fails as
    /// [`FactsCache::with_dir`] does.
    pub fn with_dir(dir: &Path) -> Result<ResultCache, CacheError> {
        let versioned = create_within(dir, &Path::new(analysis_version()).join("results"))?;
        Ok(ResultCache { dir: Some(versioned), ..ResultCache::default() })
    }

    /// Counters so far.
    pub fn stats(&self) -> ResultStats {
        ResultStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
        }
    }

    fn entry_path(&self, kind: &str, key: u64) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{kind}-{key:016x}.bin")))
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, ResultMap> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value stored under (kind, key), if any reads back as a `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&self, kind: &str, key: u64) -> Option<T> {
        let in_memory = self.memory().get(&(kind.to_string(), key)).cloned();
        if let Some(bytes) = in_memory {
            if let Ok(v) = postcard::from_bytes(&bytes) {
                self.memory_hits.fetch_add(1, Ordering::Relaxed);
                return Some(v);
            }
        }
        let from_disk = self.entry_path(kind, key).and_then(|p| std::fs::read(p).ok()).and_then(|bytes| {
            let entry = postcard::from_bytes::<ResultEntry>(&bytes).ok();
            let value = entry
                .filter(|e| e.version == analysis_version() && e.kind == kind && e.key == key)
                .and_then(|e| postcard::from_bytes::<T>(&e.payload).ok().map(|v| (v, e.payload)));
            if value.is_none() {
                self.rejected.fetch_add(1, Ordering::Relaxed);
            }
            value
        });
        match from_disk {
            Some((v, payload)) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                self.memory().insert((kind.to_string(), key), Arc::new(payload));
                Some(v)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Store `value` under (kind, key), in memory and on disk when persistent.
    pub fn put<T: Serialize>(&self, kind: &str, key: u64, value: &T) {
        let Ok(payload) = postcard::to_stdvec(value) else {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some(p) = self.entry_path(kind, key) {
            let entry = ResultEntry { version: analysis_version().to_string(), kind: kind.to_string(), key, payload };
            let written = postcard::to_stdvec(&entry).map_err(std::io::Error::other).and_then(|b| write_atomic(&p, &b));
            if written.is_err() {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
            }
            self.memory().insert((kind.to_string(), key), Arc::new(entry.payload));
        } else {
            self.memory().insert((kind.to_string(), key), Arc::new(payload));
        }
    }
}

/// `dir/sub`, created if missing; `dir` must be a directory (or not exist).
fn create_within(dir: &Path, sub: &Path) -> Result<PathBuf, CacheError> {
    let err = |message: String| CacheError { path: dir.to_path_buf(), message };
    if dir.exists() && !dir.is_dir() {
        return Err(err("it exists and is not a directory".into()));
    }
    let versioned = dir.join(sub);
    std::fs::create_dir_all(&versioned).map_err(|e| err(e.to_string()))?;
    Ok(versioned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_tool_and_schema() {
        let v = cache_version();
        assert!(v.starts_with(&format!("kvmtk-{}-facts{}-", env!("CARGO_PKG_VERSION"), FACTS_SCHEMA)), "{v}");
        assert_eq!(v, cache_version());
    }

    #[test]
    fn non_hex_blob_ids_are_not_file_names() {
        let c = FactsCache { dir: Some(PathBuf::from("/nonexistent")), ..FactsCache::default() };
        assert!(c.entry_path("../../etc", "a.c").is_none());
        assert!(c.entry_path("abcdef", "a.c").is_some());
    }
}
