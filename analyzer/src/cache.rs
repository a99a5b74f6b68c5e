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
//! extracted never reads entries of another build.
//!
//! # Integrity
//!
//! Every entry, facts or result, is sealed ([`seal`]): [`ENTRY_MAGIC`], then
//! a 64-bit checksum, then the postcard body. The checksum covers the key
//! the entry is looked up by (version, blob id and path, or kind and
//! signature) and every byte of the body, so a flipped bit anywhere, a
//! truncation, appended bytes or an entry copied under another name is a
//! miss, never a different result: the value is recomputed and the entry
//! rewritten, and the miss is counted ([`CacheStats::rejected`],
//! [`ResultStats::rejected`], printed with `KVMTK_TIMINGS=1`). Entries are
//! read with [`read_bounded`]: only a regular file, opened without
//! following a link and without blocking, of at most [`MAX_ENTRY_BYTES`];
//! a FIFO, a device, a directory or a link in an entry's place is a miss
//! too. Nothing in the cache directory can make a run block, exhaust
//! memory, or report anything but what `--no-cache` reports.
//!
//! Entries are written to a temporary file in their directory and renamed
//! into place, so a reader never sees half an entry and concurrent runs do
//! not corrupt each other. Failing to write an entry only costs a re-parse
//! next time; it is counted in [`CacheStats::write_errors`], never fatal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::facts::FileFacts;
use crate::hash::fnv;
use crate::read::{read_bounded, Links, ReadError};
use crate::source::SourceFile;
use crate::write::write_atomic;

/// The largest entry read or written: the facts of the largest KVM file
/// (400 KiB of C) take 0.6 MB, and a file at the parser's limit
/// ([`crate::parse::MAX_PARSE_BYTES`]) about 12 MB. A larger file in the
/// cache is not read (it cannot be one of ours), which bounds the memory
/// a cache directory can make a run use.
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// The first bytes of every entry: a file that does not start with them
/// was not written by this format.
pub const ENTRY_MAGIC: [u8; 8] = *b"kvmtk\0e1";

/// Magic plus checksum.
const HEADER_LEN: usize = ENTRY_MAGIC.len() + 8;

/// The key an entry is stored under: part of its checksum, so that an
/// entry renamed or copied to another key does not verify there.
#[derive(Debug, Clone, Copy)]
pub enum EntryKey<'a> {
    /// A file's facts ([`FactsCache`]).
    Facts {
        /// The file's git blob id.
        blob: &'a str,
        /// Its path in the tree.
        path: &'a str,
    },
    /// A value of the [`ResultCache`].
    Result {
        /// What kind of value (`arch`, `tree`, `file`).
        kind: &'a str,
        /// The signature of its inputs.
        key: u64,
    },
}

/// Why an entry's bytes were not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Shorter than the header, or not starting with [`ENTRY_MAGIC`].
    #[error("not a kvmtk cache entry")]
    NotAnEntry,
    /// The checksum does not match the key and the body.
    #[error("checksum mismatch")]
    Checksum,
    /// The body does not decode, or decodes to another key or version.
    #[error("body does not decode")]
    Body,
    /// Too large to be one of ours.
    #[error("entry over the size limit")]
    TooLarge,
}

/// The checksum of an entry: foldhash (the `quality` variant, fixed seed)
/// over the cache format, the key and the body, each part length-prefixed.
/// foldhash is already a dependency (through serde_json), hashes at memory
/// speed (a facts-warm check reads 9 MB of entries) and mixes every input
/// bit into every output bit. It promises no stability across its
/// versions or platforms; that is harmless here: a checksum another build
/// computed differently is a miss, and the entries of a build with other
/// locked dependencies live in another directory anyway (the
/// [`cache_version`] and [`analysis_version`] hash `Cargo.lock`).
fn checksum(key: &EntryKey<'_>, body: &[u8]) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = foldhash::quality::FixedState::with_seed(0x6b76_6d74_6b63_6163).build_hasher();
    let mut part = |bytes: &[u8]| {
        h.write_u64(bytes.len() as u64);
        h.write(bytes);
    };
    part(&ENTRY_MAGIC);
    match key {
        EntryKey::Facts { blob, path } => {
            part(b"facts");
            part(cache_version().as_bytes());
            part(blob.as_bytes());
            part(path.as_bytes());
        }
        EntryKey::Result { kind, key } => {
            part(b"result");
            part(analysis_version().as_bytes());
            part(kind.as_bytes());
            part(&key.to_le_bytes());
        }
    }
    part(body);
    h.finish()
}

/// `body` as an entry stored under `key`: magic, checksum, body.
pub fn seal(key: &EntryKey<'_>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&ENTRY_MAGIC);
    out.extend_from_slice(&checksum(key, body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of an entry read back under `key`, if its magic and checksum
/// are right.
pub fn unseal<'b>(bytes: &'b [u8], key: &EntryKey<'_>) -> Result<&'b [u8], EntryError> {
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge);
    }
    let (header, body) = bytes.split_at_checked(HEADER_LEN).ok_or(EntryError::NotAnEntry)?;
    let (magic, sum) = header.split_at(ENTRY_MAGIC.len());
    if magic != ENTRY_MAGIC {
        return Err(EntryError::NotAnEntry);
    }
    let sum = u64::from_le_bytes(sum.try_into().map_err(|_| EntryError::NotAnEntry)?);
    if sum != checksum(key, body) {
        return Err(EntryError::Checksum);
    }
    Ok(body)
}

/// A postcard value that is the whole of `body` (no trailing bytes).
fn decode_whole<'b, T: Deserialize<'b>>(body: &'b [u8]) -> Result<T, EntryError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((v, [])) => Ok(v),
        _ => Err(EntryError::Body),
    }
}

/// The facts in a facts entry read back for (`blob`, `path`): checked as
/// [`unseal`] does, then decoded, and only if the entry names this
/// version, blob and path.
pub fn decode_facts_entry(bytes: &[u8], blob: &str, path: &str) -> Result<FileFacts, EntryError> {
    let body = unseal(bytes, &EntryKey::Facts { blob, path })?;
    let e: Entry = decode_whole(body)?;
    if e.version == cache_version() && e.blob == blob && e.path == path && e.facts.path == path {
        Ok(e.facts)
    } else {
        Err(EntryError::Body)
    }
}

/// A facts entry for (`blob`, `path`), as [`FactsCache`] writes it.
pub fn encode_facts_entry(blob: &str, path: &str, facts: &FileFacts) -> Result<Vec<u8>, EntryError> {
    #[derive(Serialize)]
    struct EntryRef<'a> {
        version: &'a str,
        blob: &'a str,
        path: &'a str,
        facts: &'a FileFacts,
    }
    let body =
        postcard::to_stdvec(&EntryRef { version: cache_version(), blob, path, facts }).map_err(|_| EntryError::Body)?;
    within_limit(seal(&EntryKey::Facts { blob, path }, &body))
}

/// The payload of a result entry read back for (`kind`, `key`), checked
/// as [`unseal`] does.
pub fn decode_result_entry(bytes: &[u8], kind: &str, key: u64) -> Result<Vec<u8>, EntryError> {
    let body = unseal(bytes, &EntryKey::Result { kind, key })?;
    let e: ResultEntry = decode_whole(body)?;
    if e.version == analysis_version() && e.kind == kind && e.key == key {
        Ok(e.payload)
    } else {
        Err(EntryError::Body)
    }
}

/// A result entry holding `payload` (a postcard value) under (`kind`, `key`).
pub fn encode_result_entry(kind: &str, key: u64, payload: &[u8]) -> Result<Vec<u8>, EntryError> {
    let entry =
        ResultEntry { version: analysis_version().to_string(), kind: kind.to_string(), key, payload: payload.to_vec() };
    let body = postcard::to_stdvec(&entry).map_err(|_| EntryError::Body)?;
    within_limit(seal(&EntryKey::Result { kind, key }, &body))
}

/// An entry no reader would accept is not written.
fn within_limit(entry: Vec<u8>) -> Result<Vec<u8>, EntryError> {
    if entry.len() as u64 > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge);
    }
    Ok(entry)
}

/// What reading an entry's file gave.
enum EntryFile {
    /// No entry: a plain miss.
    Absent,
    /// Something is there but cannot be an entry (a FIFO, a device, a
    /// directory, a link, too large, unreadable): a rejected one.
    Unusable,
    /// The file's bytes, still to be checked.
    Bytes(Vec<u8>),
}

/// Read the file at an entry's path: a regular file only, never through a
/// link, never blocking, at most [`MAX_ENTRY_BYTES`].
fn read_entry_file(path: &Path) -> EntryFile {
    match read_bounded(path, MAX_ENTRY_BYTES, Links::Refuse) {
        Ok(bytes) => EntryFile::Bytes(bytes),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => EntryFile::Absent,
        Err(_) => EntryFile::Unusable,
    }
}

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
    /// Entries in the cache directory that were not used although a file
    /// was there: a checksum mismatch (corrupt, truncated, other key), a
    /// body that does not decode, or not a regular file of at most
    /// [`MAX_ENTRY_BYTES`]. Each is a miss: the file is parsed again and
    /// its entry rewritten.
    pub rejected: usize,
    /// Entries that could not be written (the cache directory is optional).
    pub write_errors: usize,
    /// Of the parsed files' top-level chunks, those whose facts an earlier
    /// parse of this run already had (another version of the file) and
    /// those parsed.
    pub chunks_reused: u64,
    pub chunks_parsed: u64,
}

/// One entry on disk.
#[derive(Serialize, Deserialize)]
struct Entry {
    version: String,
    blob: String,
    path: String,
    facts: FileFacts,
}

/// Held while a file is parsed (see `FactsCache::parsing`).
type ParseTurn = Arc<Mutex<()>>;

/// Facts by (blob id, path), in memory and optionally on disk. Shared by
/// reference between rayon workers: all methods take `&self`.
#[derive(Debug, Default)]
pub struct FactsCache {
    memory: Mutex<HashMap<(String, String), Arc<FileFacts>>>,
    /// A turn per file being parsed: checks running side by side (a
    /// lint's commits) often need the same new file, and the second waits
    /// for the first's facts instead of parsing it again.
    parsing: Mutex<HashMap<(String, String), ParseTurn>>,
    /// `DIR/<version>`, when persistent.
    dir: Option<PathBuf>,
    /// Do not keep a copy of each file's facts in memory (see
    /// [`FactsCache::without_memory`]).
    no_memory: bool,
    /// The facts of the top-level chunks of the files parsed in this run,
    /// when kept ([`FactsCache::reusing_chunks`]).
    chunks: Option<crate::parse::ChunkMemo>,
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

    /// Files whose facts are kept in memory at most (several versions of
    /// the KVM trees' 600 C files and headers).
    pub const MAX_IN_MEMORY: usize = 4096;

    /// This cache keeping no facts in memory: for a run that loads one
    /// tree, where keeping every file's facts only costs memory.
    pub fn without_memory(self) -> FactsCache {
        FactsCache { no_memory: true, ..self }
    }

    /// This cache keeping the facts of the top-level chunks of the files
    /// it parses: a run that parses several versions of a file (a lint's
    /// commits) then parses only the chunks each version edited. For one
    /// tree it would only cost a copy.
    pub fn reusing_chunks(self) -> FactsCache {
        FactsCache { chunks: Some(crate::parse::ChunkMemo::default()), ..self }
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            parsed: self.parsed.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            chunks_reused: self.chunks.as_ref().map_or(0, |c| c.stats().hits),
            chunks_parsed: self.chunks.as_ref().map_or(0, |c| c.stats().misses),
        }
    }

    /// The facts of `file`: from memory, else from disk, else parsed (and
    /// stored in both). A file without a blob id is parsed every time.
    /// Shared, not copied: the trees a run checks one after another (a
    /// lint's commits) hold the same facts for the files they share.
    pub fn facts(&self, file: &SourceFile) -> Arc<FileFacts> {
        if let Some(f) = self.cached(file) {
            return f;
        }
        let Some(blob) = file.blob_id.as_deref() else {
            self.parsed.fetch_add(1, Ordering::Relaxed);
            return Arc::new(crate::parse::parse_file(&file.path, file.arch.as_deref(), &file.bytes));
        };
        let key = (blob.to_string(), file.path.clone());
        let turn = self.parsing.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
        // Parsed by another check while this one waited its turn (in
        // memory: the disk was read once above).
        if let Some(f) = self.lock().get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return f.clone();
        }
        self.parsed.fetch_add(1, Ordering::Relaxed);
        let memo = self.chunks.as_ref();
        let facts = Arc::new(crate::parse::parse_file_reusing(
            &file.path,
            file.arch.as_deref(),
            &file.bytes,
            crate::parse::ParseOptions::default(),
            memo,
        ));
        self.write_disk(blob, &file.path, &facts);
        self.remember(key.clone(), &facts);
        self.parsing.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        facts
    }

    /// The facts of `file` if this cache holds them (memory or disk),
    /// without reading its contents.
    pub fn cached(&self, file: &SourceFile) -> Option<Arc<FileFacts>> {
        let blob = file.blob_id.as_deref()?;
        let key = (blob.to_string(), file.path.clone());
        if let Some(f) = self.lock().get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(f.clone());
        }
        let facts = Arc::new(self.read_disk(blob, &file.path)?);
        self.disk_hits.fetch_add(1, Ordering::Relaxed);
        self.remember(key, &facts);
        Some(facts)
    }

    /// Keep `facts` in memory, unless this cache keeps none. Bounded: past
    /// [`FactsCache::MAX_IN_MEMORY`] files it starts again empty (the
    /// facts handed out stay valid; a later lookup reads the disk).
    fn remember(&self, key: (String, String), facts: &Arc<FileFacts>) {
        if self.no_memory {
            return;
        }
        let mut map = self.lock();
        if map.len() >= Self::MAX_IN_MEMORY {
            map.clear();
        }
        map.insert(key, facts.clone());
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
        let decoded = match read_entry_file(&p) {
            EntryFile::Absent => return None,
            EntryFile::Unusable => None,
            EntryFile::Bytes(bytes) => decode_facts_entry(&bytes, blob, path).ok(),
        };
        if decoded.is_none() {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        decoded
    }

    fn write_disk(&self, blob: &str, path: &str, facts: &FileFacts) {
        let Some(p) = self.entry_path(blob, path) else { return };
        let write = || -> std::io::Result<()> {
            let dir = p.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let bytes = encode_facts_entry(blob, path, facts).map_err(std::io::Error::other)?;
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
    /// Entries on disk that were not used although a file was there (a
    /// checksum mismatch, a body that does not decode, not a regular file
    /// of at most [`MAX_ENTRY_BYTES`]); counted in `misses` too, and
    /// rewritten when the value is recomputed.
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
        let from_disk = self.entry_path(kind, key).and_then(|p| {
            let value = match read_entry_file(&p) {
                EntryFile::Absent => return None,
                EntryFile::Unusable => None,
                EntryFile::Bytes(bytes) => decode_result_entry(&bytes, kind, key)
                    .ok()
                    .and_then(|payload| decode_whole::<T>(&payload).ok().map(|v| (v, payload))),
            };
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
            let written = encode_result_entry(kind, key, &payload)
                .map_err(std::io::Error::other)
                .and_then(|b| write_atomic(&p, &b));
            if written.is_err() {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.memory().insert((kind.to_string(), key), Arc::new(payload));
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

    /// Every way of damaging one sealed entry by a bit, a length or a
    /// key, exhaustively on a small real one.
    fn refuses_every_damage(entry: &[u8], decode: impl Fn(&[u8]) -> Result<(), EntryError>) {
        assert_eq!(decode(entry), Ok(()));
        for bit in 0..entry.len() * 8 {
            let mut e = entry.to_vec();
            e[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&e).is_err(), "bit {bit} flipped");
        }
        for len in 0..entry.len() {
            assert!(decode(&entry[..len]).is_err(), "cut to {len} bytes");
        }
        for extra in [&[0u8][..], &[0xff; 9], &ENTRY_MAGIC] {
            assert_eq!(decode(&[entry, extra].concat()), Err(EntryError::Checksum), "{extra:?} appended");
        }
    }

    #[test]
    fn a_facts_entry_verifies_only_intact_and_under_its_own_key() {
        let blob = "0123456789abcdef0123456789abcdef01234567";
        let facts = crate::parse::parse_file("virt/kvm/a.c", None, b"static int f(void) { return 0; }\n");
        let entry = encode_facts_entry(blob, "virt/kvm/a.c", &facts).unwrap();
        refuses_every_damage(&entry, |e| decode_facts_entry(e, blob, "virt/kvm/a.c").map(|_| ()));
        assert_eq!(decode_facts_entry(&entry, blob, "virt/kvm/b.c").unwrap_err(), EntryError::Checksum);
        let other_blob = "1123456789abcdef0123456789abcdef01234567";
        assert_eq!(decode_facts_entry(&entry, other_blob, "virt/kvm/a.c").unwrap_err(), EntryError::Checksum);
    }

    #[test]
    fn a_result_entry_verifies_only_intact_and_under_its_own_key() {
        let payload = postcard::to_stdvec(&(1u32, "finding".to_string())).unwrap();
        let entry = encode_result_entry("arch", 42, &payload).unwrap();
        refuses_every_damage(&entry, |e| decode_result_entry(e, "arch", 42).map(|_| ()));
        assert_eq!(decode_result_entry(&entry, "arch", 42).unwrap(), payload);
        assert_eq!(decode_result_entry(&entry, "arch", 43).unwrap_err(), EntryError::Checksum);
        assert_eq!(decode_result_entry(&entry, "tree", 42).unwrap_err(), EntryError::Checksum);
    }

    #[test]
    fn non_hex_blob_ids_are_not_file_names() {
        let c = FactsCache { dir: Some(PathBuf::from("/nonexistent")), ..FactsCache::default() };
        assert!(c.entry_path("../../etc", "a.c").is_none());
        assert!(c.entry_path("abcdef", "a.c").is_some());
    }
}
