//! C parsing: tree-sitter-c over the kernel's sources, with kernel idiom
//! recovery, producing [`FileFacts`].
//!
//! Pipeline per file: [`recover_idioms`] masks the kernel's macro idioms
//! into a same-length buffer (see [`mask`]) and cuts it into top-level
//! chunks ([`Masked::chunks`]: a function, a declaration, an `#if` block
//! at file scope), tree-sitter-c parses each chunk of the masked buffer,
//! and [`extract`] walks each chunk's tree, reading all text from the
//! *original* bytes; each chunk's facts are then moved to its place, so
//! every [`Span`](crate::facts::Span) indexes the original file. A chunk's
//! facts depend on the chunk alone, so a [`ChunkMemo`] lets a new version
//! of a file reuse the facts of its unchanged chunks (a lint's commits
//! each parse only what they edited); the facts equal those of one parse
//! of the whole file (`tests/parse_chunks.rs` compares them on every KVM
//! file of 6.1 and 6.12).
//!
//! Representation choices (part of the facts contract):
//! - `guard(mutex)(&kvm_usage_lock);` is a [`CallSite`](crate::facts::CallSite)
//!   with callee `Direct("guard")` whose args are the guard type (`mutex`)
//!   followed by the outer args (`&kvm_usage_lock`); the lock is held until
//!   the end of the enclosing block.
//! - `scoped_guard(mutex, &l) { ... }` is `Stmt::ScopedGuard` with
//!   `guard_type` `mutex` and `args` `[&l]`.
//! - `IDENT(IDENT)(args)`: `static_call`, `static_call_cond` and
//!   `static_call_mod` give `StaticCall { via_macro: None }`; any other outer
//!   name `m` gives `StaticCall { via_macro: Some(m) }`.
//! - Conditions (`Condition`): one entry per enclosing `#if` branch,
//!   outermost first: `#ifdef X` gives `X`, `#ifndef X` gives `!X`, `#if E`
//!   gives `E` (whitespace-normalized, comments dropped). An `#else` or
//!   `#elif` branch gets the negations of the earlier branches of its chain
//!   (`!X`, `!(A && B)`), followed by its own condition for `#elif`. The list
//!   is a conjunction. Include guards contribute nothing. Inside function
//!   bodies, `Stmt::Preproc` branches carry their own condition as written,
//!   `else` for `#else`; `CallSite::condition` and `Stmt::Simple::condition`
//!   carry the conditions *inside* the function (the file-scope ones are on
//!   the function).
//! - Accesses: every use of an identifier that is not a local or parameter
//!   of the enclosing function is an `Event::Access` (this includes
//!   enumerators, macro constants and functions passed as arguments; the
//!   graph layer filters with its symbol table). Identifiers inside
//!   `sizeof`/`typeof`/`offsetof` are not accesses; nor is the member
//!   argument of `*_entry` iterator macros.

mod extract;
pub mod mask;
mod stmt;
pub mod text;

use std::cell::RefCell;

use crate::facts::FileFacts;

pub use mask::Masked;

/// Files larger than this are not parsed (a diagnostic says so): it bounds
/// the memory and time one file can take.
pub const MAX_PARSE_BYTES: usize = 8 << 20;

/// Options for [`parse_file_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// Also parse the unmasked bytes to fill
    /// `ParseQuality::error_nodes_plain` (doubles the parse cost).
    pub measure_plain: bool,
}

thread_local! {
    static PARSER: RefCell<Option<tree_sitter::Parser>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's parser (created once per thread).
fn with_parser<R>(f: impl FnOnce(&mut tree_sitter::Parser) -> R) -> Option<R> {
    PARSER.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            let mut p = tree_sitter::Parser::new();
            p.set_language(&tree_sitter_c::LANGUAGE.into()).ok()?;
            *slot = Some(p);
        }
        let p = slot.as_mut()?;
        p.reset();
        Some(f(p))
    })
}

/// The parser's work budget. tree-sitter reports its progress about every
/// 100 parse operations (a token lexed, a shift, a reduction, a step of
/// error recovery), and its lexer reads the input in chunks of
/// [`PARSE_CHUNK`] bytes; the parses of a file of `n` bytes (one per
/// top-level chunk, see [`Masked::chunks`]) may take in all
/// `PARSE_CHECKS_BASE + PARSE_CHECKS_PER_KIB * ceil(n / 1024)` progress checks
/// and read `PARSE_READ_BASE + PARSE_READ_FACTOR * n` bytes, or the file is
/// not parsed.
///
/// Why: tree-sitter's error recovery keeps several stack versions alive,
/// and on hostile bytes it can re-lex the rest of the file at every
/// operation (a fuzzed 990-byte file ran for minutes and passed 2 GB).
/// Counting operations bounds the first, counting bytes read bounds the
/// second. Counts, unlike a clock, give the same answer on every machine
/// and every run, so a report never depends on how loaded the machine
/// was. Real kernel C stays far below both bounds: `tests/parse_budget.rs`
/// measures every KVM file of 6.1 and 6.12 against them and requires a
/// margin of 4x. The KVM files take at most 8 checks per KiB and read at
/// most 2.3 bytes per byte (0.11 of the budget, `examples/parse_work.rs`);
/// over all 55,395 C files of Linux 6.1 (986 MiB), parsed whole before
/// files were cut into chunks, the most was 24 checks per KiB (number
/// tables) and 2.8 bytes per byte, at most 0.30 of the budget.
pub const PARSE_CHECKS_PER_KIB: u64 = 64;
/// The part of the checks budget that does not depend on the length, so
/// that tiny files are not held to a ratio.
pub const PARSE_CHECKS_BASE: u64 = 256;
/// Bytes the lexer may read per byte of input.
pub const PARSE_READ_FACTOR: u64 = 16;
/// The part of the read budget that does not depend on the length.
pub const PARSE_READ_BASE: u64 = 64 << 10;
/// The size of the chunks the lexer is given: a re-read inside the chunk
/// it holds is not counted, so the chunk is small.
pub const PARSE_CHUNK: usize = 64;

/// What a parse of the given length may spend, or what one spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseWork {
    /// Progress checks (about 100 operations each).
    pub checks: u64,
    /// Bytes handed to the lexer.
    pub bytes_read: u64,
}

impl ParseWork {
    /// The budget of a parse of `len` bytes.
    pub fn budget(len: usize) -> ParseWork {
        let len = len as u64;
        ParseWork {
            checks: PARSE_CHECKS_BASE + PARSE_CHECKS_PER_KIB * len.div_ceil(1024),
            bytes_read: PARSE_READ_BASE + PARSE_READ_FACTOR * len,
        }
    }

    /// The same budget divided by `n` (for margins).
    pub fn divided(self, n: u64) -> ParseWork {
        ParseWork { checks: self.checks / n, bytes_read: self.bytes_read / n }
    }

    fn exceeds(&self, budget: &ParseWork) -> bool {
        self.checks > budget.checks || self.bytes_read > budget.bytes_read
    }

    fn plus(self, o: ParseWork) -> ParseWork {
        ParseWork { checks: self.checks + o.checks, bytes_read: self.bytes_read + o.bytes_read }
    }

    /// What is left of this budget after `spent`.
    fn less(self, spent: ParseWork) -> ParseWork {
        ParseWork {
            checks: self.checks.saturating_sub(spent.checks),
            bytes_read: self.bytes_read.saturating_sub(spent.bytes_read),
        }
    }
}

/// Why a parse gave no tree.
enum ParseStop {
    /// Over [`ParseWork::budget`].
    OverBudget,
    /// tree-sitter returned nothing (no language set; not expected).
    Failed,
}

/// Parse within `budget`, returning the tree and the work it took.
fn parse_counted(bytes: &[u8], budget: ParseWork) -> (Result<tree_sitter::Tree, ParseStop>, ParseWork) {
    let work = std::cell::Cell::new(ParseWork { checks: 0, bytes_read: 0 });
    let tree = with_parser(|p| {
        let mut progress = |_: &tree_sitter::ParseState| {
            let mut w = work.get();
            w.checks += 1;
            work.set(w);
            // true cancels the parse.
            w.exceeds(&budget)
        };
        // The chunk the lexer holds: the last one handed out.
        let mut held = 0..0;
        let mut read = |at: usize, _| {
            let mut w = work.get();
            // Over the budget, the input ends (an empty read), so that the
            // abandoned parse stops at once rather than at the next
            // progress check. But not inside the chunk the lexer holds:
            // it reads there again to decode a character cut by the
            // chunk's end, and tree-sitter then decodes the chunk it gets
            // without checking that it is empty (a NULL read).
            if at >= bytes.len() || (w.exceeds(&budget) && !held.contains(&at)) {
                return &[][..];
            }
            let chunk = &bytes[at..bytes.len().min(at + PARSE_CHUNK)];
            held = at..at + chunk.len();
            w.bytes_read += chunk.len() as u64;
            work.set(w);
            chunk
        };
        let opts = tree_sitter::ParseOptions::new().progress_callback(&mut progress);
        p.parse_with_options(&mut read, None, Some(opts))
    })
    .flatten();
    let work = work.get();
    let result = match tree {
        _ if work.exceeds(&budget) => Err(ParseStop::OverBudget),
        Some(t) => Ok(t),
        None => Err(ParseStop::Failed),
    };
    (result, work)
}

fn parse_tree(bytes: &[u8]) -> Result<tree_sitter::Tree, ParseStop> {
    parse_counted(bytes, ParseWork::budget(bytes.len())).0
}

/// The work a parse of these bytes takes, after idiom masking as
/// [`parse_file`] does: `None` if it does not finish within `limit`. For
/// measuring real files against [`ParseWork::budget`].
pub fn parse_work(bytes: &[u8], limit: ParseWork) -> Option<ParseWork> {
    let masked = mask::recover_idioms(bytes);
    let lines = text::LineIndex::new(bytes);
    parse_chunks(bytes, &masked, &lines, limit, None, &mut FileFacts::default()).ok()
}

/// Kernel-idiom masking, exposed for tests and benchmarks: the returned
/// bytes have the same length as the input.
pub fn recover_idioms(bytes: &[u8]) -> Masked {
    mask::recover_idioms(bytes)
}

/// Parse one file. Never panics, whatever the bytes (non-UTF-8, binary,
/// truncated, huge, deeply nested). `error_nodes_plain` is left 0; use
/// [`parse_file_with`] to measure it.
pub fn parse_file(path: &str, arch: Option<&str>, bytes: &[u8]) -> FileFacts {
    parse_file_with(path, arch, bytes, ParseOptions::default())
}

/// [`parse_file`] with options.
pub fn parse_file_with(path: &str, arch: Option<&str>, bytes: &[u8], opts: ParseOptions) -> FileFacts {
    parse_file_reusing(path, arch, bytes, opts, None)
}

/// [`parse_file_with`], taking the facts of the chunks `memo` already holds
/// (and keeping the others there): the same facts, parsing only the chunks
/// of the file that no earlier parse met (a new version of a file costs its
/// edited chunks).
pub fn parse_file_reusing(
    path: &str,
    arch: Option<&str>,
    bytes: &[u8],
    opts: ParseOptions,
    memo: Option<&ChunkMemo>,
) -> FileFacts {
    let mut facts = FileFacts { path: path.to_string(), arch: arch.map(str::to_string), ..FileFacts::default() };
    // Parsing costs about 100 bytes of memory per byte of C: a file far
    // larger than any hand-written kernel C (the largest KVM file is under
    // 400 KiB) is generated data, not code to analyze, and is skipped.
    if bytes.len() > MAX_PARSE_BYTES {
        facts.diagnostics.push(crate::facts::ParseDiagnostic {
            span: Default::default(),
            message: format!(
                "file too large to parse ({:.1} MiB, the limit is {} MiB); skipped",
                bytes.len() as f64 / (1024.0 * 1024.0),
                MAX_PARSE_BYTES >> 20
            ),
        });
        return facts;
    }
    let masked = mask::recover_idioms(bytes);
    let lines = text::LineIndex::new(bytes);
    if let Err(stop) = parse_chunks(bytes, &masked, &lines, ParseWork::budget(bytes.len()), memo, &mut facts) {
        let message = match stop {
            ParseStop::OverBudget => {
                "not parsed: the parser's error recovery passed its work budget for a file of this size; skipped".into()
            }
            ParseStop::Failed => "tree-sitter could not parse the file".into(),
        };
        let diagnostic = crate::facts::ParseDiagnostic { span: Default::default(), message };
        return FileFacts {
            path: path.to_string(),
            arch: arch.map(str::to_string),
            diagnostics: vec![diagnostic],
            ..FileFacts::default()
        };
    }
    extract::file_macros(&mut facts, bytes, &masked, lines);
    if opts.measure_plain {
        if let Ok(plain) = parse_tree(bytes) {
            facts.parse_quality.error_nodes_plain = count_errors(&plain);
        }
    }
    facts
}

/// Parse the file chunk by chunk ([`Masked::chunks`]) within one budget for
/// the whole file, appending each chunk's facts to `facts`; the work done.
/// A chunk `memo` holds costs the work it took when it was parsed, so the
/// budget decides the same whatever the memo holds.
fn parse_chunks(
    bytes: &[u8],
    masked: &Masked,
    lines: &text::LineIndex,
    budget: ParseWork,
    memo: Option<&ChunkMemo>,
    facts: &mut FileFacts,
) -> Result<ParseWork, ParseStop> {
    let mut spent = ParseWork { checks: 0, bytes_read: 0 };
    for range in masked.chunks(bytes) {
        let part = masked.part(range.clone());
        let src = &bytes[range.clone()];
        let key = memo.map(|_| ChunkKey::of(src, &part));
        let known = memo.zip(key.as_ref()).and_then(|(m, k)| m.get(k, src));
        // The chunk's facts, owned: from the memo a copy, fresh ones moved
        // (copied only to keep one in the memo).
        let (piece, work) = match known {
            Some(c) => (c.facts.clone(), c.work),
            None => {
                let (tree, work) = parse_counted(&part.bytes, budget.less(spent));
                let tree = tree?;
                let mut piece = FileFacts::default();
                extract::extract_chunk(&mut piece, src, &part, &tree);
                if let (Some(m), Some(k)) = (memo, key) {
                    m.put(k, std::sync::Arc::new(ChunkFacts { src: src.into(), facts: piece.clone(), work }));
                }
                (piece, work)
            }
        };
        spent = spent.plus(work);
        if spent.exceeds(&budget) {
            return Err(ParseStop::OverBudget);
        }
        let (line, _) = lines.line_col(text::clamp_u32(range.start));
        facts.append_moved(piece, text::clamp_u32(range.start), line - 1);
    }
    Ok(spent)
}

/// The facts of one parse of the whole file, not cut into chunks: what
/// [`parse_file`] gave before it parsed chunk by chunk. Only for comparing
/// the two (`tests/parse_chunks.rs`, `examples/chunk_equivalence.rs`); a
/// file over the budget gets one diagnostic without a line.
#[doc(hidden)]
pub fn parse_file_unchunked(path: &str, arch: Option<&str>, bytes: &[u8]) -> FileFacts {
    let mut facts = FileFacts { path: path.to_string(), arch: arch.map(str::to_string), ..FileFacts::default() };
    let masked = mask::recover_idioms(bytes);
    let Ok(tree) = parse_tree(&masked.bytes) else {
        let message = "not parsed".to_string();
        facts.diagnostics.push(crate::facts::ParseDiagnostic { span: Default::default(), message });
        return facts;
    };
    extract::extract_chunk(&mut facts, bytes, &masked, &tree);
    extract::file_macros(&mut facts, bytes, &masked, text::LineIndex::new(bytes));
    facts
}

/// What identifies a chunk's facts: its bytes and what the masker found
/// in it (the masked bytes and records, which can depend on the file
/// around it: an include guard, a construct split by `#if`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ChunkKey {
    src: u64,
    masked: u64,
}

impl ChunkKey {
    fn of(src: &[u8], part: &Masked) -> ChunkKey {
        use std::hash::{Hash, Hasher};
        /// `std::hash::Hash` into the crate's stable hash.
        struct Stable(crate::hash::Fnv);
        impl Hasher for Stable {
            fn write(&mut self, bytes: &[u8]) {
                self.0.part(bytes);
            }
            fn finish(&self) -> u64 {
                self.0.finish()
            }
        }
        let mut h = Stable(crate::hash::Fnv::default());
        h.write(&part.bytes);
        part.annotations.hash(&mut h);
        part.iterators.hash(&mut h);
        part.defines.hash(&mut h);
        part.conds.hash(&mut h);
        ChunkKey { src: crate::hash::fnv(&[src]), masked: h.finish() }
    }
}

/// One chunk's facts, offsets from its start, and the parse work it took.
struct ChunkFacts {
    /// The chunk's bytes, compared on a hit (the key is a hash).
    src: Box<[u8]>,
    facts: FileFacts,
    work: ParseWork,
}

/// Facts of chunks already parsed, by content, shared by the threads of a
/// run: what makes a new version of a file cost its edited chunks only
/// ([`parse_file_reusing`]). Bounded: past [`ChunkMemo::MAX_BYTES`] of
/// chunk source it starts again empty (what it holds never changes a
/// result, only how much is parsed).
#[derive(Default)]
pub struct ChunkMemo {
    chunks: std::sync::Mutex<(usize, rustc_hash::FxHashMap<ChunkKey, std::sync::Arc<ChunkFacts>>)>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ChunkMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkMemo({:?})", self.stats())
    }
}

/// How a [`ChunkMemo`] served the parses, for timings and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkMemoStats {
    pub hits: u64,
    pub misses: u64,
}

impl ChunkMemo {
    /// Source bytes of the chunks held at most (their facts take about ten
    /// times that): the 6.1 KVM directories hold 6 MB of C.
    pub const MAX_BYTES: usize = 16 << 20;

    fn get(&self, key: &ChunkKey, src: &[u8]) -> Option<std::sync::Arc<ChunkFacts>> {
        let guard = self.chunks.lock().ok()?;
        let found = guard.1.get(key).filter(|c| *c.src == *src).cloned();
        drop(guard);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        found
    }

    /// Chunks found and not found so far.
    pub fn stats(&self) -> ChunkMemoStats {
        use std::sync::atomic::Ordering::Relaxed;
        ChunkMemoStats { hits: self.hits.load(Relaxed), misses: self.misses.load(Relaxed) }
    }

    fn put(&self, key: ChunkKey, chunk: std::sync::Arc<ChunkFacts>) {
        let Ok(mut guard) = self.chunks.lock() else { return };
        let (bytes, map) = &mut *guard;
        if *bytes + chunk.src.len() > Self::MAX_BYTES {
            map.clear();
            *bytes = 0;
        }
        *bytes += chunk.src.len();
        if let Some(old) = map.insert(key, chunk) {
            *bytes -= old.src.len();
        }
    }
}

/// Parse many files in parallel with rayon; output in input order.
/// Each tuple is (path, arch, bytes).
pub fn parse_files(files: &[(String, Option<String>, Vec<u8>)]) -> Vec<FileFacts> {
    use rayon::prelude::*;
    files
        .par_iter()
        // One file per task: sizes vary 100x, fine-grained stealing
        // balances the threads.
        .with_max_len(1)
        .map(|(path, arch, bytes)| parse_file(path, arch.as_deref(), bytes))
        .collect()
}

/// [`parse_files`] with options.
pub fn parse_files_with(files: &[(String, Option<String>, Vec<u8>)], opts: ParseOptions) -> Vec<FileFacts> {
    use rayon::prelude::*;
    files
        .par_iter()
        .with_max_len(1)
        .map(|(path, arch, bytes)| parse_file_with(path, arch.as_deref(), bytes, opts))
        .collect()
}

/// Number of ERROR and MISSING nodes in a tree (iterative: trees can be
/// deep).
pub(crate) fn count_errors(tree: &tree_sitter::Tree) -> u32 {
    let root = tree.root_node();
    if !root.has_error() {
        return 0;
    }
    let mut n = 0u32;
    let mut cur = root.walk();
    'outer: loop {
        let node = cur.node();
        if node.is_error() || node.is_missing() {
            n += 1;
        }
        if node.has_error() && cur.goto_first_child() {
            continue;
        }
        loop {
            if cur.goto_next_sibling() {
                continue 'outer;
            }
            if !cur.goto_parent() {
                break 'outer;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node of a tree as (kind, byte range, is-missing), depth first
    /// (iterative: trees can be deep).
    fn nodes(tree: &tree_sitter::Tree) -> Vec<(u16, usize, usize, bool)> {
        let mut out = Vec::new();
        let mut cur = tree.root_node().walk();
        'outer: loop {
            let n = cur.node();
            out.push((n.kind_id(), n.start_byte(), n.end_byte(), n.is_missing()));
            if cur.goto_first_child() {
                continue;
            }
            loop {
                if cur.goto_next_sibling() {
                    continue 'outer;
                }
                if !cur.goto_parent() {
                    break 'outer;
                }
            }
        }
        out
    }

    /// The tree of one whole-slice read, as before the budget.
    fn whole_read_tree(bytes: &[u8]) -> tree_sitter::Tree {
        with_parser(|p| p.parse(bytes, None)).flatten().unwrap()
    }

    /// Reading the input in [`PARSE_CHUNK`]-byte chunks, which the budget
    /// needs to count the lexer's work, gives the tree a whole read gives,
    /// also where a multi-byte or an invalid UTF-8 sequence straddles a
    /// chunk boundary.
    #[test]
    fn chunked_reading_gives_the_tree_of_a_whole_read() {
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        let base = b"static int f(struct kvm *kvm)\n{\n\tspin_lock(&kvm->lock); /* \xc3\xa9t\xc3\xa9 */\n\treturn g(kvm, \"\xe2\x82\xac\");\n}\n";
        inputs.push(base.repeat(20));
        for pad in 0..PARSE_CHUNK + 8 {
            // A 4-byte character, then a stray continuation byte and
            // truncated sequences; the paddings move them across the
            // chunk boundaries (a chunk starts where the lexer asks for
            // one, so not every offset is guaranteed).
            let mut b = vec![b' '; pad];
            b.extend_from_slice(
                b"int x = 1; /* \xf0\x9f\x98\x80 */ char *s = \"\x80\xe2\x82\"; \xff\xfe y(\xf0\x9f);\n",
            );
            b.extend_from_slice(&base[..]);
            inputs.push(b.repeat(3));
        }
        inputs.push(b"D|0(|F((())\n\n;".to_vec());
        for bytes in &inputs {
            let (chunked, work) = parse_counted(bytes, ParseWork::budget(bytes.len()));
            let chunked = chunked.unwrap_or_else(|_| panic!("over budget: {work:?}"));
            assert!(work.bytes_read >= bytes.len() as u64);
            assert_eq!(nodes(&chunked), nodes(&whole_read_tree(bytes)), "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn the_budget_grows_with_the_length() {
        let small = ParseWork::budget(0);
        assert_eq!(small, ParseWork { checks: PARSE_CHECKS_BASE, bytes_read: PARSE_READ_BASE });
        let big = ParseWork::budget(10 << 10);
        assert_eq!(big.checks, PARSE_CHECKS_BASE + 10 * PARSE_CHECKS_PER_KIB);
        assert_eq!(big.bytes_read, PARSE_READ_BASE + (10 << 10) * PARSE_READ_FACTOR);
        assert_eq!(big.divided(4).checks, big.checks / 4);
    }
}
