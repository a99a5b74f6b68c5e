//! A corrupted cache directory never changes what `kvmtk check` reports.
//!
//! A real cached run fills a cache directory; then, one corruption class
//! at a time, sampled entries of every kind (facts, per-arch results, the
//! tree entry, per-file summaries) are damaged and `kvmtk check --format
//! json` runs again on them. Each run must give the same standard output,
//! the same warnings and the same exit code as `--no-cache`, must not
//! block (a FIFO) or run away with memory (a link to `/dev/zero`), must
//! count every damaged entry as rejected (so the test knows the damage was
//! read, not bypassed), and must leave every damaged entry rewritten byte
//! for byte as the clean run wrote it (the wrong value is never cached
//! again).
//!
//! Classes: each bit of the 16-byte header (magic and checksum) on the
//! fixture, one bit of each header byte on the real tree; the key (the
//! first bytes of the body: version, blob id or kind, path or signature);
//! sampled positions across the body and the last byte; truncations
//! (1, 8, 15, 16, 17 bytes, half, all but one); appended bytes; a
//! zero-length file; a FIFO; a symbolic link to `/dev/zero`; a link to
//! another, valid entry; another entry's bytes; a directory; a sparse file
//! over the size limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../test-support/kernel_cache.rs"]
mod kernel_cache_support;

/// What one `kvmtk check` printed and returned.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: Option<i32>,
    stdout: String,
    /// Standard error without the `KVMTK_TIMINGS` lines.
    warnings: String,
}

/// Counters read from the `KVMTK_TIMINGS` line.
#[derive(Debug, Default)]
struct Counters {
    facts_rejected: usize,
    facts_write_errors: usize,
    results_rejected: usize,
    results_write_errors: usize,
}

/// Run `kvmtk check TREE --format json` with these cache arguments, and
/// fail if it takes longer than `limit` (a blocked read would hang).
fn check(tree: &Path, cache: &[&str], limit: Duration) -> (Run, Counters) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvmtk"))
        .arg("check")
        .arg(tree)
        .args(["--format", "json"])
        .args(cache)
        .env("KVMTK_TIMINGS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kvmtk");
    let started = Instant::now();
    // The pipes are drained by threads so that a large report cannot stall
    // the child while we wait for it.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kvmtk check {} {cache:?} did not finish in {limit:?}: blocked on the cache?", tree.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = err.join().unwrap();
    let (timings, warnings): (Vec<&str>, Vec<&str>) = stderr.lines().partition(|l| l.starts_with("kvmtk: timings:"));
    let counters = timings.first().map(|l| counters(l)).unwrap_or_default();
    let run = Run { code: status.code(), stdout: out.join().unwrap(), warnings: warnings.join("\n") };
    (run, counters)
}

/// The `rejected` and `write_errors` of the facts and the results, from
/// `... facts CacheStats { ... }; results ResultStats { ... })`.
fn counters(line: &str) -> Counters {
    let field = |part: &str, name: &str| -> usize {
        let at = part.find(&format!("{name}: ")).unwrap_or_else(|| panic!("no {name} in {line}"));
        let digits: String = part[at + name.len() + 2..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    let facts = &line[line.find("CacheStats").expect("facts stats")..];
    let results = &line[line.find("ResultStats").expect("result stats")..];
    Counters {
        facts_rejected: field(facts, "rejected"),
        facts_write_errors: field(facts, "write_errors"),
        results_rejected: field(results, "rejected"),
        results_write_errors: field(results, "write_errors"),
    }
}

/// Every regular file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `n` elements spread evenly over `v` (all of them when fewer), always
/// including the largest file (the longest body).
fn sample(v: &[PathBuf], n: usize) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        if v.len() <= n { v.to_vec() } else { (0..n).map(|i| v[i * (v.len() - 1) / (n - 1).max(1)].clone()).collect() };
    if let Some(largest) = v.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()) {
        if !out.contains(largest) {
            out.push(largest.clone());
        }
    }
    out
}

/// The header: magic (8 bytes) and checksum (8 bytes).
const HEADER: usize = 16;

/// One way of damaging an entry.
#[derive(Debug, Clone)]
enum Damage {
    /// Flip bit `bit` of the byte at `at`; `at` is taken modulo the entry's
    /// length when it is past the end (positions relative to the body are
    /// given as per-mille of the length by [`Damage::FlipPerMille`]).
    Flip { at: usize, bit: u8 },
    /// Flip bit `bit` of the byte at `per_mille` of the body (1000: the last byte).
    FlipPerMille { per_mille: usize, bit: u8 },
    /// Keep the first `len` bytes (`None`: half).
    Truncate(Option<usize>),
    /// Keep all but the last byte.
    DropLast,
    /// Append these bytes.
    Append(Vec<u8>),
    /// A zero-length file.
    Empty,
    /// A FIFO nobody writes.
    Fifo,
    /// A symbolic link to `/dev/zero`.
    LinkToDevZero,
    /// A symbolic link to another entry (valid, of another key).
    LinkToOther,
    /// Another entry's bytes.
    CopyOfOther,
    /// An empty directory.
    Directory,
    /// A sparse file one byte over the cache's entry size limit.
    Oversized,
}

impl Damage {
    /// Damage `path` (whose clean bytes are `clean`); `other` is another
    /// entry of the same cache, and `other_clean` its clean bytes.
    fn apply(&self, path: &Path, clean: &[u8], other: &Path, other_clean: &[u8]) {
        let write = |bytes: &[u8]| std::fs::write(path, bytes).unwrap();
        let flip = |at: usize, bit: u8| {
            let mut b = clean.to_vec();
            let at = at % b.len();
            b[at] ^= 1 << bit;
            write(&b);
        };
        match self {
            Damage::Flip { at, bit } => flip(*at, *bit),
            Damage::FlipPerMille { per_mille, bit } => {
                let body = clean.len() - HEADER;
                flip(HEADER + (body - 1) * per_mille / 1000, *bit)
            }
            Damage::Truncate(len) => write(&clean[..len.unwrap_or(clean.len() / 2).min(clean.len() - 1)]),
            Damage::DropLast => write(&clean[..clean.len() - 1]),
            Damage::Append(extra) => write(&[clean, extra].concat()),
            Damage::Empty => write(b""),
            Damage::Fifo => {
                std::fs::remove_file(path).unwrap();
                assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
            }
            Damage::LinkToDevZero => {
                std::fs::remove_file(path).unwrap();
                std::os::unix::fs::symlink("/dev/zero", path).unwrap();
            }
            Damage::LinkToOther => {
                std::fs::remove_file(path).unwrap();
                std::os::unix::fs::symlink(other, path).unwrap();
            }
            Damage::CopyOfOther => write(other_clean),
            Damage::Directory => {
                std::fs::remove_file(path).unwrap();
                std::fs::create_dir(path).unwrap();
            }
            Damage::Oversized => {
                let f = std::fs::File::create(path).unwrap();
                f.set_len(analyzer::cache::MAX_ENTRY_BYTES + 1).unwrap();
            }
        }
    }
}

/// Put the clean bytes back at `path`, whatever is there now.
fn restore(path: &Path, clean: &[u8]) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
    std::fs::write(path, clean).unwrap();
}

/// The classes run on every tree; `header_bits` chooses all 128 bits of
/// the header or one bit of each header byte.
fn damages(all_header_bits: bool, key_bytes: usize, body_samples: usize) -> Vec<Damage> {
    let mut v = Vec::new();
    for at in 0..HEADER {
        if all_header_bits {
            v.extend((0..8).map(|bit| Damage::Flip { at, bit }));
        } else {
            v.push(Damage::Flip { at, bit: (at % 8) as u8 });
        }
    }
    v.extend((0..key_bytes).map(|i| Damage::Flip { at: HEADER + i, bit: (i % 8) as u8 }));
    v.extend(
        (0..=body_samples).map(|i| Damage::FlipPerMille { per_mille: i * 1000 / body_samples, bit: (i % 8) as u8 }),
    );
    v.extend([1, 8, 15, 16, 17].map(|n| Damage::Truncate(Some(n))));
    v.extend([Damage::Truncate(None), Damage::DropLast]);
    v.extend([Damage::Append(vec![0]), Damage::Append(vec![0xff; 7]), Damage::Append(b"kvmtk\0e1".repeat(512))]);
    v.extend([
        Damage::Empty,
        Damage::Fifo,
        Damage::LinkToDevZero,
        Damage::LinkToOther,
        Damage::CopyOfOther,
        Damage::Directory,
        Damage::Oversized,
    ]);
    v
}

/// Fill a cache from `tree`, then run every damage class on sampled
/// entries and compare with `--no-cache`.
fn corrupted_caches_change_nothing(
    tree: &Path,
    facts_sampled: usize,
    file_summaries_sampled: usize,
    classes: &[Damage],
) {
    let limit = Duration::from_secs(300);
    let (uncached, _) = check(tree, &["--no-cache"], limit);
    assert!(uncached.stdout.contains("\"findings\""), "{uncached:?}");
    let dir = tempfile::tempdir().unwrap();
    let cache_arg = dir.path().to_str().unwrap();
    let (first, _) = check(tree, &["--cache-dir", cache_arg], limit);
    assert_eq!(first, uncached, "a clean cached run reports what --no-cache does");

    let all = files_under(dir.path());
    let facts: Vec<PathBuf> = all.iter().filter(|p| !p.to_string_lossy().contains("/results/")).cloned().collect();
    let named = |prefix: &str| -> Vec<PathBuf> {
        all.iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix)).cloned().collect()
    };
    // Every arch entry, so that every arch is analyzed again and the
    // facts of every file are read (and the damaged ones met).
    let mut results = named("arch-");
    assert!(!results.is_empty());
    results.extend(named("tree-"));
    results.extend(sample(&named("file-"), file_summaries_sampled));
    let facts = sample(&facts, facts_sampled);
    let damaged: Vec<(PathBuf, Vec<u8>, PathBuf, Vec<u8>)> = facts
        .iter()
        .chain(&results)
        .enumerate()
        .map(|(i, p)| {
            // Another entry of the same cache, for the links and copies.
            let pool = if i < facts.len() { &facts } else { &results };
            let other = pool.iter().find(|o| *o != p).unwrap_or(&all[0]).clone();
            let other_clean = std::fs::read(&other).unwrap();
            (p.clone(), std::fs::read(p).unwrap(), other, other_clean)
        })
        .collect();

    for damage in classes {
        for (p, clean, other, other_clean) in &damaged {
            damage.apply(p, clean, other, other_clean);
        }
        let (run, n) = check(tree, &["--cache-dir", cache_arg], limit);
        assert_eq!(run, uncached, "{damage:?}: a damaged cache changed the report");
        assert!(
            n.facts_rejected >= facts.len() && n.results_rejected >= results.len(),
            "{damage:?}: every damaged entry is read and rejected ({} facts, {} results damaged): {n:?}",
            facts.len(),
            results.len()
        );
        if matches!(damage, Damage::Directory) {
            // Nothing can be renamed over a directory: the run still
            // reports right, and says it could not write.
            assert!(n.facts_write_errors + n.results_write_errors >= damaged.len(), "{n:?}");
        } else {
            assert_eq!((n.facts_write_errors, n.results_write_errors), (0, 0), "{damage:?}");
            for (p, clean, _, _) in &damaged {
                let now = std::fs::symlink_metadata(p).unwrap();
                assert!(now.is_file(), "{damage:?}: {} rewritten as a regular file", p.display());
                assert!(
                    std::fs::read(p).unwrap() == *clean,
                    "{damage:?}: {} rewritten as the clean run wrote it",
                    p.display()
                );
            }
        }
        for (p, clean, _, _) in &damaged {
            restore(p, clean);
        }
    }

    // And the repaired cache is used again, with nothing rejected.
    let (warm, n) = check(tree, &["--cache-dir", cache_arg], limit);
    assert_eq!(warm, uncached);
    assert_eq!((n.facts_rejected, n.results_rejected), (0, 0), "{n:?}");
}

#[test]
fn a_damaged_cache_reports_what_no_cache_does_on_the_fixture() {
    let tree = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures/default");
    corrupted_caches_change_nothing(&tree, usize::MAX, usize::MAX, &damages(true, 64, 16));
}

#[test]
fn a_damaged_cache_reports_what_no_cache_does_on_linux_6_1() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    corrupted_caches_change_nothing(&tree, 12, 12, &damages(false, 12, 8));
}

/// Damage in one arch's entry only: that arch is analyzed again, the
/// others come from the cache, and the report is still the uncached one.
#[test]
fn one_damaged_arch_entry_is_recomputed_beside_reused_ones() {
    let tree = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures/default");
    let limit = Duration::from_secs(300);
    let (uncached, _) = check(&tree, &["--no-cache"], limit);
    let dir = tempfile::tempdir().unwrap();
    let cache_arg = dir.path().to_str().unwrap();
    check(&tree, &["--cache-dir", cache_arg], limit);
    let arches: Vec<PathBuf> =
        files_under(dir.path()).into_iter().filter(|p| p.to_string_lossy().contains("/arch-")).collect();
    assert!(arches.len() > 1, "the fixture has several arches: {arches:?}");
    for p in &arches {
        let clean = std::fs::read(p).unwrap();
        Damage::FlipPerMille { per_mille: 500, bit: 3 }.apply(p, &clean, p, &clean);
        let (run, n) = check(&tree, &["--cache-dir", cache_arg], limit);
        assert_eq!(run, uncached, "{}", p.display());
        assert_eq!(n.results_rejected, 1, "{n:?}");
        assert!(std::fs::read(p).unwrap() == clean, "{} rewritten", p.display());
    }
}
