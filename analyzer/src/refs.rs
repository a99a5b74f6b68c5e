//! Whole-kernel references: every caller and reference of a set of symbols
//! across a kernel tree (`kvmtk refs`).
//!
//! # Symbols
//!
//! By default the symbols are the hardware-enable path, found mechanically
//! by analyzing the KVM subset of the tree (every arch with KVM code, see
//! [`enable_path_symbols`]):
//! - per arch, the [`EnablePath`] enable and disable hooks (arch functions)
//!   and primitives (common functions calling them);
//! - the common CPU hotplug startup/teardown callbacks and every common
//!   function they reach through call edges (the walk stops at arch code,
//!   as [`EnablePath`]'s does);
//! - the common functions that invoke a primitive, by a direct call or by
//!   passing it as a callback (`on_each_cpu(hardware_enable_nolock, ...)`),
//!   and are reached at run time, from a root other than module init/exit:
//!   `hardware_enable_all()`, `kvm_reboot()`, `kvm_suspend()`, ... in 6.1
//!   (not `kvm_exit()`);
//! - the globals (variables, locks) any of those common functions touches
//!   (`kvm_usage_count`, `kvm_rebooting`, `kvm_count_lock`, ...).
//!
//! Or the caller names them ([`RefsOptions::symbols`]).
//!
//! # Mechanism
//!
//! 1. The files: with [`Scope::Kvm`] the KVM file set of
//!    [`SourceTree::load`]; with [`Scope::All`] every `.c`/`.h` file of the
//!    tree, found by a parallel directory walk (rayon, one task per
//!    directory; symbolic links are not followed, `.git` is skipped).
//! 2. A pre-filter on the raw bytes: one Aho-Corasick automaton over all
//!    symbol names (leftmost-longest), keeping matches with identifier
//!    boundaries on both sides. Files without one are done (the vast
//!    majority: they are read once and never parsed).
//! 3. In the remaining files, mentions inside comments and string literals
//!    are dropped by a small C lexer, as are struct member names (`.x`,
//!    `->x`); a file with no mention left is not parsed either.
//! 4. The rest is parsed with [`crate::parse::parse_file`] and each mention
//!    is classified from the facts: a call, an address taken (a function
//!    passed as a callback or stored in an initializer, `&variable`), a
//!    declaration (definition, prototype, `extern`), or another use (read,
//!    write, `EXPORT_SYMBOL`, inside a `#define`). The enclosing function
//!    comes from the function spans of the facts.
//!
//! Unreadable and binary files are skipped and counted
//! ([`RefsReport::skipped`]); nothing panics on input.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, MatchKind};
use rayon::prelude::*;
use serde::Serialize;

use crate::api::ApiModel;
use crate::contexts::Analysis;
use crate::enable_path::{is_arch_path, EnablePath};
use crate::facts::{AccessKind, Callee, Event, FileFacts};
use crate::graph::{visit_events, FnId};
use crate::pipeline::ParsedTree;
use crate::source::{arch_of, is_c_source, SourceError, SourceOptions, SourceSpec, SourceTree};

/// Files whose first this many bytes hold a NUL are binary (as git decides).
const BINARY_PROBE: usize = 8000;

/// Which files of the tree are searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The KVM file set ([`SourceTree::load`]'s default: `virt/kvm`,
    /// `arch/*/kvm` and the KVM headers).
    Kvm,
    /// Every `.c` and `.h` file of the tree.
    All,
}

/// What a reference does with the symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefKind {
    /// `name(...)`.
    Call,
    /// A function used as a value (a callback argument, an ops-table
    /// initializer, a function pointer) or `&variable`.
    AddressTaken,
    /// A definition, prototype or `extern` declaration.
    Declaration,
    /// Anything else: a read or write of a variable, `EXPORT_SYMBOL`, a
    /// mention inside a `#define` or in code the parser could not classify.
    Use,
}

impl RefKind {
    /// The name used in reports (`call`, `address-taken`, `declaration`, `use`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Call => "call",
            RefKind::AddressTaken => "address-taken",
            RefKind::Declaration => "declaration",
            RefKind::Use => "use",
        }
    }
}

/// Whether a symbol is a function or a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    /// A function (defined or declared as one in the files searched).
    Function,
    /// A variable (a global, a lock, a per-CPU variable).
    Variable,
    /// Neither definition nor declaration was found in the files searched.
    Unknown,
}

/// A symbol searched for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Symbol {
    /// The C identifier.
    pub name: String,
    /// Function or variable: from the KVM analysis for the default
    /// selection, otherwise from the declarations found by the scan.
    pub kind: SymbolKind,
    /// Why it was selected (`enable hook`, `hotplug callback`, `global
    /// touched by the path`, `given with --symbol`, ...), sorted.
    pub roles: Vec<String>,
    /// The arches whose analysis selected it, sorted (`common` when
    /// analyzed without arch code); empty for named symbols.
    pub arches: Vec<String>,
    /// Files holding a definition of it among the files searched, sorted.
    pub defined_in: Vec<String>,
    /// The symbol is `static` in a `.c` file, so a reference from another
    /// `.c` file names a different entity ([`Reference::homonym`]). For the
    /// default selection this is the definition the KVM analysis linked
    /// ([`Symbol::home`]); for named symbols, every definition found.
    pub file_local: bool,
    /// The files defining the symbol the KVM analysis linked (default
    /// selection only; empty for named symbols).
    pub home: Vec<String>,
    /// Number of references found.
    pub references: usize,
}

/// One reference to a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// The symbol referenced.
    pub symbol: String,
    /// Path relative to the tree root, `/` separators.
    pub path: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in bytes (as gcc counts).
    pub col: u32,
    /// The enclosing function; `None` at file scope.
    pub function: Option<String>,
    /// What the reference does.
    pub kind: RefKind,
    /// More precisely (`definition`, `prototype`, `passed to on_each_cpu`,
    /// `initializer .hardware_enable of vmx_x86_ops`, `read`, `write`,
    /// `exported by EXPORT_SYMBOL_GPL`, `in #define X`, ...).
    pub detail: String,
    /// The symbol is file-local ([`Symbol::file_local`]) and this is
    /// another `.c` file: the name denotes a different entity here.
    pub homonym: bool,
}

/// A file that was not searched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// Path relative to the tree root.
    pub path: String,
    /// Why (`binary file`, `cannot read: ...`).
    pub reason: String,
}

/// Counters of the scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefsStats {
    /// `.c`/`.h` files found (read, or skipped).
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Files where the pre-filter found a symbol name.
    pub files_matched: usize,
    /// Files parsed (a mention outside comments and strings).
    pub files_parsed: usize,
    /// Mentions dropped because they are in a comment or string literal.
    pub mentions_in_comments_or_strings: usize,
    /// Mentions dropped because they are struct member names (`.x`, `->x`).
    pub member_mentions: usize,
    /// Mentions that are parameters or locals of the enclosing function.
    pub local_names: usize,
    /// Symbolic links met by the walk (not followed).
    pub symlinks_not_followed: usize,
}

/// The result of [`find_refs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefsReport {
    /// The tree, as given.
    pub tree: String,
    /// The files searched.
    pub scope: Scope,
    /// How the symbols were chosen, for a reader.
    pub selection: String,
    /// The symbols, sorted by name.
    pub symbols: Vec<Symbol>,
    /// The references, sorted by path, line, column.
    pub references: Vec<Reference>,
    /// Files not searched (unreadable or binary), sorted by path.
    pub skipped: Vec<SkippedFile>,
    /// Counters.
    pub stats: RefsStats,
}

impl RefsReport {
    /// The references to one symbol.
    pub fn references_to<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = &'a Reference> + 'a {
        self.references.iter().filter(move |r| r.symbol == symbol)
    }

    /// The symbol named `name`, if searched.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols.iter().find(|s| s.name == name)
    }
}

/// What to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefsOptions {
    /// Which files.
    pub scope: Scope,
    /// The symbols; empty selects the hardware-enable path of the tree's
    /// KVM code ([`enable_path_symbols`]).
    pub symbols: Vec<String>,
}

pub use crate::progress::{NoProgress, Progress};

/// Why a search could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefsError {
    /// The KVM subset of the tree could not be loaded.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The tree directory cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A symbol name is not a C identifier.
    #[error("`{0}` is not a C identifier")]
    InvalidSymbol(String),
    /// The default selection found nothing (no hotplug callbacks in common code).
    #[error("no hardware-enable path found in the KVM code of `{0}`; name the symbols with --symbol")]
    NoEnablePath(String),
    /// The pre-filter automaton could not be built.
    #[error("cannot build the symbol matcher: {0}")]
    Matcher(String),
}

/// Whether `s` is a C identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic()) && b.all(is_ident_byte)
}

pub(crate) fn is_ident_byte(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// A symbol of the default selection, before the scan.
#[derive(Debug, Default)]
struct Selected {
    kind: Option<SymbolKind>,
    /// Files of the definitions the analysis linked, and whether all are
    /// `static` in `.c` files.
    home: BTreeSet<String>,
    home_local: bool,
    roles: BTreeSet<String>,
    arches: BTreeSet<String>,
}

/// The hardware-enable path of the analyzed KVM code, as symbols (see the
/// module documentation for the selection). `kind`, `roles` and `arches`
/// are filled; `defined_in`, `file_local` and `references` are left for
/// the scan.
pub fn enable_path_symbols(parsed: &ParsedTree, api: &ApiModel) -> Vec<Symbol> {
    let analyses = parsed.analyze_all(api);
    let mut selected: BTreeMap<String, Selected> = BTreeMap::new();
    for a in &analyses {
        select_in(a, &mut selected);
    }
    selected
        .into_iter()
        .map(|(name, s)| Symbol {
            name,
            kind: s.kind.unwrap_or(SymbolKind::Unknown),
            roles: s.roles.into_iter().collect(),
            arches: s.arches.into_iter().collect(),
            defined_in: Vec::new(),
            file_local: s.home_local && !s.home.is_empty(),
            home: s.home.into_iter().collect(),
            references: 0,
        })
        .collect()
}

fn select_in(a: &Analysis<'_>, selected: &mut BTreeMap<String, Selected>) {
    let arch = a.program.arch.clone().unwrap_or_else(|| "common".to_string());
    let mut add = |name: &str, kind: SymbolKind, role: &str| {
        let s =
            selected.entry(name.to_string()).or_insert_with(|| Selected { home_local: true, ..Selected::default() });
        s.kind = Some(kind);
        s.roles.insert(role.to_string());
        s.arches.insert(arch.clone());
        let mut defs: Vec<(&str, bool)> = Vec::new();
        match kind {
            SymbolKind::Function => {
                for id in a.program.lookup_any(name) {
                    defs.push((a.program.file(id).path.as_str(), a.program.func(id).is_static));
                }
            }
            _ => {
                for (fi, g) in a.program.globals.get(name).into_iter().flatten() {
                    if !g.is_extern {
                        defs.push((a.program.files[*fi as usize].path.as_str(), g.is_static));
                    }
                }
            }
        }
        for (path, is_static) in defs {
            s.home_local &= is_static && path.ends_with(".c");
            s.home.insert(path.to_string());
        }
    };
    let ep = EnablePath::find(a);
    let name = |id: FnId| a.program.func(id).name.as_str();
    for (ids, role) in [
        (&ep.enable_hooks, "enable hook"),
        (&ep.disable_hooks, "disable hook"),
        (&ep.enable_primitives, "enable primitive"),
        (&ep.disable_primitives, "disable primitive"),
    ] {
        for &id in ids {
            add(name(id), SymbolKind::Function, role);
        }
    }
    let is_common = |id: FnId| !is_arch_path(&a.program.file(id).path);
    // The common code of the path: the hotplug callbacks and what they
    // reach without entering arch code.
    let mut common: BTreeSet<FnId> = BTreeSet::new();
    let mut stack: Vec<FnId> = Vec::new();
    for &r in ep.startup_roots.iter().chain(&ep.teardown_roots) {
        let id = a.roots[r].function;
        add(name(id), SymbolKind::Function, "hotplug callback");
        stack.push(id);
    }
    while let Some(id) = stack.pop() {
        if !common.insert(id) {
            continue;
        }
        for e in a.program.calls.get(&id).into_iter().flatten() {
            if is_common(e.callee) {
                stack.push(e.callee);
            }
        }
    }
    for &id in &common {
        add(name(id), SymbolKind::Function, "reached from a hotplug callback");
    }
    // Common functions invoking a primitive directly or as a callback.
    let primitives: BTreeSet<FnId> = ep.enable_primitives.iter().chain(&ep.disable_primitives).copied().collect();
    let mut invokers: BTreeSet<FnId> = BTreeSet::new();
    for (&caller, edges) in &a.program.calls {
        if is_common(caller) && edges.iter().any(|e| primitives.contains(&e.callee)) {
            invokers.insert(caller);
        }
    }
    for cb in &a.callback_edges {
        if is_common(cb.caller) && primitives.contains(&cb.callee) {
            invokers.insert(cb.caller);
        }
    }
    // Only those reached at run time: module init/exit code (`kvm_exit()`)
    // tears everything down and would bring its unrelated globals.
    invokers.retain(|&id| a.reaches(id).iter().any(|r| a.roots[r.key.root].context != "module_init"));
    for &id in &invokers {
        add(name(id), SymbolKind::Function, "invokes a primitive");
    }
    // The globals these common functions touch.
    let mut globals: BTreeSet<&str> = BTreeSet::new();
    for &id in common.iter().chain(&invokers) {
        visit_events(&a.program.func(id).body.stmts, &mut |e| {
            if let Event::Access(acc) = e {
                if a.program.globals.contains_key(acc.name.as_str()) {
                    globals.insert(acc.name.as_str());
                }
            }
        });
    }
    for g in globals {
        add(g, SymbolKind::Variable, "global touched by the path");
    }
}

/// Find every reference to the symbols in the tree at `dir`.
///
/// With no [`RefsOptions::symbols`], the KVM subset is analyzed first to
/// select the hardware-enable path ([`enable_path_symbols`]).
pub fn find_refs(dir: &Path, opts: &RefsOptions, progress: &dyn Progress) -> Result<RefsReport, RefsError> {
    for s in &opts.symbols {
        if !is_identifier(s) {
            return Err(RefsError::InvalidSymbol(s.clone()));
        }
    }
    let spec = SourceSpec::Dir(dir.to_path_buf());
    let tree = dir.display().to_string();
    // The KVM file set, when needed (to select symbols, or as the scope).
    let (source, symbols, selection) = if opts.symbols.is_empty() {
        progress.stage("analyzing the KVM code", None);
        let parsed = ParsedTree::load(&spec, &SourceOptions::default())?;
        let symbols = enable_path_symbols(&parsed, &ApiModel::default());
        if symbols.is_empty() {
            return Err(RefsError::NoEnablePath(tree));
        }
        let arches = parsed.source.arches.join(", ");
        (
            Some(parsed.source),
            symbols,
            format!(
                "hardware-enable path of the KVM code ({}): enable/disable hooks and primitives, common hotplug \
                 callbacks and what they reach, common invokers of the primitives, globals they touch",
                if arches.is_empty() { "common code only".to_string() } else { arches }
            ),
        )
    } else {
        let mut names: Vec<String> = opts.symbols.clone();
        names.sort();
        names.dedup();
        let symbols = names
            .into_iter()
            .map(|name| Symbol {
                name,
                kind: SymbolKind::Unknown,
                roles: vec!["given with --symbol".to_string()],
                arches: Vec::new(),
                defined_in: Vec::new(),
                file_local: false,
                home: Vec::new(),
                references: 0,
            })
            .collect();
        let source = match opts.scope {
            Scope::Kvm => Some(SourceTree::load(&spec, &SourceOptions::default())?),
            Scope::All => None,
        };
        (source, symbols, "named symbols".to_string())
    };
    let names: Vec<String> = symbols.iter().map(|s| s.name.clone()).collect();
    let matcher = Matcher::new(&names)?;

    let mut stats = RefsStats::default();
    let mut skipped: Vec<SkippedFile> = Vec::new();
    let results: Vec<FileScan> = match opts.scope {
        Scope::Kvm => {
            let files: Vec<_> = source.iter().flat_map(|s| &s.files).filter(|f| is_c_source(&f.path)).collect();
            progress.stage("scanning", Some(files.len() as u64));
            skipped.extend(
                source
                    .iter()
                    .flat_map(|s| &s.warnings)
                    .filter(|w| is_c_source(&w.path))
                    .map(|w| SkippedFile { path: w.path.clone(), reason: w.message.clone() }),
            );
            files
                .par_iter()
                .with_max_len(8)
                .map(|f| {
                    let r = scan_bytes(&matcher, &f.path, &f.bytes);
                    progress.advance(1);
                    r
                })
                .collect()
        }
        Scope::All => {
            drop(source);
            progress.stage("walking the tree", None);
            let meta = fs::metadata(dir).map_err(|source| RefsError::Io { path: dir.to_path_buf(), source })?;
            if !meta.is_dir() {
                return Err(SourceError::NotADirectory { path: dir.to_path_buf() }.into());
            }
            let walked = walk(dir, "");
            if let Some((path, e)) = walked.root_error {
                return Err(RefsError::Io { path, source: e });
            }
            stats.symlinks_not_followed = walked.symlinks;
            skipped.extend(walked.unreadable_dirs);
            progress.stage("scanning", Some(walked.files.len() as u64));
            walked
                .files
                .par_iter()
                .with_max_len(64)
                .map(|path| {
                    let r = match crate::source::read_source_file(&dir.join(path)) {
                        Ok(bytes) => scan_bytes(&matcher, path, &bytes),
                        Err(message) => FileScan::skipped(path, message),
                    };
                    progress.advance(1);
                    r
                })
                .collect()
        }
    };

    let mut raws: Vec<RawRef> = Vec::new();
    for r in results {
        stats.files += 1;
        stats.bytes += r.bytes;
        stats.files_matched += usize::from(r.matched);
        stats.files_parsed += usize::from(r.parsed);
        stats.mentions_in_comments_or_strings += r.in_comments_or_strings;
        stats.member_mentions += r.members;
        stats.local_names += r.local_names;
        if let Some(reason) = r.skipped {
            skipped.push(SkippedFile { path: r.path, reason });
        }
        raws.extend(r.refs);
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    skipped.dedup();
    let (symbols, references) = finish(symbols, raws);
    progress.finish();
    Ok(RefsReport { tree, scope: opts.scope, selection, symbols, references, skipped, stats })
}

// ---------------------------------------------------------------------------
// Walk

#[derive(Default)]
pub(crate) struct Walked {
    pub(crate) files: Vec<String>,
    pub(crate) unreadable_dirs: Vec<SkippedFile>,
    pub(crate) symlinks: usize,
    pub(crate) root_error: Option<(PathBuf, io::Error)>,
}

impl Walked {
    fn merge(mut self, other: Walked) -> Walked {
        self.files.extend(other.files);
        self.unreadable_dirs.extend(other.unreadable_dirs);
        self.symlinks += other.symlinks;
        self.root_error = self.root_error.or(other.root_error);
        self
    }
}

/// The `.c`/`.h` files under `root/rel`, subdirectories in parallel.
pub(crate) fn walk(root: &Path, rel: &str) -> Walked {
    let abs = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let mut out = Walked::default();
    let rd = match fs::read_dir(&abs) {
        Ok(rd) => rd,
        Err(e) if rel.is_empty() => {
            out.root_error = Some((abs, e));
            return out;
        }
        Err(e) => {
            out.unreadable_dirs
                .push(SkippedFile { path: rel.to_string(), reason: format!("cannot read directory: {e}") });
            return out;
        }
    };
    let mut dirs: Vec<String> = Vec::new();
    for entry in rd {
        let Ok(entry) = entry else { continue };
        // Non-UTF-8 names are skipped, as SourceTree does.
        let Ok(name) = entry.file_name().into_string() else { continue };
        let Ok(ft) = entry.file_type() else { continue };
        let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if ft.is_symlink() {
            out.symlinks += 1;
        } else if ft.is_dir() {
            if name != ".git" {
                dirs.push(path);
            }
        } else if ft.is_file() && is_c_source(&name) {
            out.files.push(path);
        }
    }
    dirs.into_par_iter().map(|d| walk(root, &d)).reduce(Walked::default, Walked::merge).merge(out)
}

// ---------------------------------------------------------------------------
// Pre-filter

pub(crate) struct Matcher {
    ac: AhoCorasick,
}

impl Matcher {
    pub(crate) fn new(names: &[String]) -> Result<Matcher, RefsError> {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(names)
            .map_err(|e| RefsError::Matcher(e.to_string()))?;
        Ok(Matcher { ac })
    }

    /// Whole-identifier occurrences: (offset, symbol index). Leftmost-longest
    /// matching is exact here: every pattern is an identifier, so a match
    /// hidden inside a longer one never has identifier boundaries.
    pub(crate) fn occurrences(&self, bytes: &[u8]) -> Vec<(usize, usize)> {
        self.ac
            .find_iter(bytes)
            .filter(|m| {
                let before = m.start().checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(m.end()).copied();
                !before.is_some_and(is_ident_byte) && !after.is_some_and(is_ident_byte)
            })
            .map(|m| (m.start(), m.pattern().as_usize()))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// One file

/// How facts classify a mention, before the symbol kinds are known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Raw {
    Call,
    FunctionDef { is_static: bool },
    Prototype,
    GlobalDef { is_static: bool, is_extern: bool },
    Access { kind: AccessKind, arg_of: Option<String> },
    Binding { field: String, var: String, address_of: bool },
    MacroArg { macro_name: String },
    Directive(String),
    Unclassified,
}

#[derive(Debug, Clone)]
struct RawRef {
    symbol: usize,
    path: String,
    line: u32,
    col: u32,
    function: Option<String>,
    raw: Raw,
}

#[derive(Debug, Default)]
struct FileScan {
    path: String,
    bytes: u64,
    matched: bool,
    parsed: bool,
    in_comments_or_strings: usize,
    members: usize,
    local_names: usize,
    skipped: Option<String>,
    refs: Vec<RawRef>,
}

impl FileScan {
    fn skipped(path: &str, reason: String) -> FileScan {
        FileScan { path: path.to_string(), skipped: Some(reason), ..FileScan::default() }
    }
}

fn scan_bytes(matcher: &Matcher, path: &str, bytes: &[u8]) -> FileScan {
    let mut scan = FileScan { path: path.to_string(), bytes: bytes.len() as u64, ..FileScan::default() };
    if memchr::memchr(0, &bytes[..bytes.len().min(BINARY_PROBE)]).is_some() {
        scan.skipped = Some("binary file".to_string());
        return scan;
    }
    let occurrences = matcher.occurrences(bytes);
    if occurrences.is_empty() {
        return scan;
    }
    scan.matched = true;
    let lexed = Lexed::new(bytes);
    let mut kept: Vec<(usize, usize)> = Vec::with_capacity(occurrences.len());
    for (off, sym) in occurrences {
        if lexed.in_comment_or_string(off) {
            scan.in_comments_or_strings += 1;
        } else if is_member_name(bytes, off) {
            scan.members += 1;
        } else {
            kept.push((off, sym));
        }
    }
    if kept.is_empty() {
        return scan;
    }
    scan.parsed = true;
    // The parser must not panic; should it, one file is lost, not the scan.
    let parsed = std::panic::catch_unwind(|| crate::parse::parse_file(path, arch_of(path).as_deref(), bytes));
    let Ok(facts) = parsed else {
        scan.skipped = Some("internal error while parsing (please report)".to_string());
        return scan;
    };
    let index = FactIndex::new(&facts);
    let lines = LineIndex::new(bytes);
    for (off, sym) in kept {
        let end = off + bytes[off..].iter().take_while(|&&c| is_ident_byte(c)).count();
        let name = String::from_utf8_lossy(&bytes[off..end]);
        let (line, col) = lines.line_col(off);
        let function = index.enclosing_function(off).map(str::to_string);
        let raw = match index.classify(off, &name) {
            Some(raw) => raw,
            None if index.is_local(off, &name) => {
                scan.local_names += 1;
                continue;
            }
            None => match lexed.directive_at(off) {
                Some(d) => Raw::Directive(d.to_string()),
                None => Raw::Unclassified,
            },
        };
        scan.refs.push(RawRef { symbol: sym, path: path.to_string(), line, col, function, raw });
    }
    scan
}

/// Whether the identifier at `off` follows `.` or `->` (a struct member).
fn is_member_name(bytes: &[u8], off: usize) -> bool {
    let before = bytes[..off].iter().rposition(|c| !c.is_ascii_whitespace());
    match before {
        Some(i) => bytes[i] == b'.' || (bytes[i] == b'>' && i > 0 && bytes[i - 1] == b'-'),
        None => false,
    }
}

/// 1-based line and byte column of offsets.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(bytes: &[u8]) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', bytes).map(|i| i + 1));
        LineIndex { starts }
    }

    pub(crate) fn line_col(&self, off: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= off).max(1);
        let col = off - self.starts[line - 1] + 1;
        (u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(col).unwrap_or(u32::MAX))
    }
}

/// Comments, string and character literals, and preprocessor directives of
/// a file, as sorted byte ranges.
pub(crate) struct Lexed {
    /// Comments and literals, sorted, disjoint.
    opaque: Vec<(usize, usize)>,
    /// Directives with their description (`#define X`, `#if`), sorted.
    directives: Vec<(usize, usize, String)>,
}

impl Lexed {
    pub(crate) fn new(b: &[u8]) -> Lexed {
        let mut opaque = Vec::new();
        let mut directives = Vec::new();
        let mut i = 0;
        let mut line_start = true;
        let mut directive: Option<(usize, String)> = None;
        while i < b.len() {
            let c = b[i];
            match c {
                b'\n' => {
                    let continued = i > 0 && (b[i - 1] == b'\\' || (b[i - 1] == b'\r' && i > 1 && b[i - 2] == b'\\'));
                    if !continued {
                        if let Some((start, d)) = directive.take() {
                            directives.push((start, i, d));
                        }
                        line_start = true;
                    }
                    i += 1;
                    continue;
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let end = memchr::memmem::find(&b[i + 2..], b"*/").map_or(b.len(), |e| i + 2 + e + 2);
                    opaque.push((i, end));
                    i = end;
                    continue;
                }
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    // To the end of the line, with backslash continuations.
                    let mut end = i + 2;
                    loop {
                        match memchr::memchr(b'\n', &b[end..]) {
                            Some(n) => {
                                let nl = end + n;
                                let cont = nl > 0 && b[nl - 1] == b'\\';
                                end = nl;
                                if cont {
                                    end += 1;
                                    continue;
                                }
                            }
                            None => end = b.len(),
                        }
                        break;
                    }
                    opaque.push((i, end));
                    i = end;
                    continue;
                }
                b'"' | b'\'' => {
                    let mut j = i + 1;
                    while j < b.len() && b[j] != c && b[j] != b'\n' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    // Closed by the quote, or (unterminated) by the line.
                    let end = if j < b.len() && b[j] == c { j + 1 } else { j.min(b.len()) };
                    opaque.push((i, end));
                    line_start = false;
                    i = end;
                    continue;
                }
                b'#' if line_start && directive.is_none() => {
                    directive = Some((i, describe_directive(&b[i + 1..])));
                }
                _ => {}
            }
            if !c.is_ascii_whitespace() {
                line_start = false;
            }
            i += 1;
        }
        if let Some((start, d)) = directive {
            directives.push((start, b.len(), d));
        }
        Lexed { opaque, directives }
    }

    pub(crate) fn in_comment_or_string(&self, off: usize) -> bool {
        let i = self.opaque.partition_point(|&(s, _)| s <= off);
        i > 0 && off < self.opaque[i - 1].1
    }

    /// The byte range of the directive holding `off`, if any.
    pub(crate) fn directive_range(&self, off: usize) -> Option<(usize, usize)> {
        let i = self.directives.partition_point(|&(s, _, _)| s <= off);
        (i > 0 && off < self.directives[i - 1].1).then(|| (self.directives[i - 1].0, self.directives[i - 1].1))
    }

    pub(crate) fn directive_at(&self, off: usize) -> Option<&str> {
        let i = self.directives.partition_point(|&(s, _, _)| s <= off);
        (i > 0 && off < self.directives[i - 1].1).then(|| self.directives[i - 1].2.as_str())
    }
}

/// `#define NAME` or `#if`/`#ifdef`/... from the bytes after the `#`.
fn describe_directive(rest: &[u8]) -> String {
    let skip_ws = |s: &[u8]| s.iter().position(|c| *c != b' ' && *c != b'\t').unwrap_or(s.len());
    let ident = |s: &[u8]| s.iter().position(|&c| !is_ident_byte(c)).unwrap_or(s.len());
    let s = &rest[skip_ws(rest)..];
    let n = ident(s);
    let word = String::from_utf8_lossy(&s[..n]).into_owned();
    if word == "define" {
        let t = &s[n..];
        let t = &t[skip_ws(t)..];
        let m = ident(t);
        return format!("in #define {}", String::from_utf8_lossy(&t[..m]));
    }
    format!("in #{word}")
}

/// The facts of a file, indexed by the offsets of the names they mention.
struct FactIndex<'f> {
    facts: &'f FileFacts,
    /// Exact identifier offsets: calls, accesses, definitions.
    at: HashMap<usize, Raw>,
    /// Function spans, sorted: (start, end, name).
    functions: Vec<(usize, usize, &'f str)>,
    /// Parameters and assigned locals of each function, by function start.
    locals: HashMap<usize, BTreeSet<&'f str>>,
}

impl<'f> FactIndex<'f> {
    fn new(facts: &'f FileFacts) -> FactIndex<'f> {
        let mut at: HashMap<usize, Raw> = HashMap::new();
        let mut functions = Vec::new();
        let mut locals: HashMap<usize, BTreeSet<&'f str>> = HashMap::new();
        for f in &facts.functions {
            functions.push((f.span.start as usize, f.span.end as usize, f.name.as_str()));
            let names = locals.entry(f.span.start as usize).or_default();
            names.extend(f.params.iter().map(|p| p.name.as_str()));
            visit_events(&f.body.stmts, &mut |e| {
                if let Event::LocalAssign(l) = e {
                    names.insert(l.name.as_str());
                }
            });
            at.insert(f.name_span.start as usize, Raw::FunctionDef { is_static: f.is_static });
            // Argument ranges of the calls, to say which call a value is passed to.
            let mut args: Vec<(usize, usize, String)> = Vec::new();
            visit_events(&f.body.stmts, &mut |e| {
                if let Event::Call(c) = e {
                    for a in &c.args {
                        args.push((a.span.start as usize, a.span.end as usize, c.callee.display()));
                    }
                }
            });
            visit_events(&f.body.stmts, &mut |e| match e {
                Event::Call(c) => {
                    if let Callee::Direct(_) = c.callee {
                        at.insert(c.callee_span.start as usize, Raw::Call);
                    }
                }
                Event::Access(acc) => {
                    let off = acc.span.start as usize;
                    let arg_of = args
                        .iter()
                        .filter(|(s, e, _)| *s <= off && off < *e)
                        .min_by_key(|(s, e, _)| e - s)
                        .map(|(_, _, c)| c.clone());
                    at.entry(off).or_insert(Raw::Access { kind: acc.kind, arg_of });
                }
                _ => {}
            });
        }
        functions.sort();
        for g in &facts.globals {
            at.entry(g.name_span.start as usize)
                .or_insert(Raw::GlobalDef { is_static: g.is_static, is_extern: g.is_extern });
        }
        FactIndex { facts, at, functions, locals }
    }

    /// Whether `name` at `off` is a parameter or local of the enclosing function.
    fn is_local(&self, off: usize, name: &str) -> bool {
        let i = self.functions.partition_point(|&(s, _, _)| s <= off);
        self.functions[..i]
            .iter()
            .rev()
            .find(|&&(_, e, _)| off < e)
            .and_then(|&(s, _, _)| self.locals.get(&s))
            .is_some_and(|l| l.contains(name))
    }

    fn enclosing_function(&self, off: usize) -> Option<&'f str> {
        let i = self.functions.partition_point(|&(s, _, _)| s <= off);
        self.functions[..i].iter().rev().find(|&&(_, e, _)| off < e).map(|&(_, _, n)| n)
    }

    fn classify(&self, off: usize, name: &str) -> Option<Raw> {
        if let Some(r) = self.at.get(&off) {
            return Some(r.clone());
        }
        let within = |s: u32, e: u32| (s as usize) <= off && off < e as usize;
        if self.facts.prototypes.iter().any(|p| p.name == name && within(p.span.start, p.span.end)) {
            return Some(Raw::Prototype);
        }
        for init in &self.facts.initializers {
            for b in &init.fields {
                if b.value_ident.as_deref() == Some(name) && within(b.span.start, b.span.end) {
                    return Some(Raw::Binding {
                        field: b.field.clone(),
                        var: init.var_name.clone(),
                        address_of: b.value_text.trim_start().starts_with('&'),
                    });
                }
            }
        }
        for m in &self.facts.top_level_macros {
            if m.args.iter().any(|a| a.ident.as_deref() == Some(name) && within(a.span.start, a.span.end)) {
                return Some(Raw::MacroArg { macro_name: m.name.clone() });
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Report

fn finish(mut symbols: Vec<Symbol>, raws: Vec<RawRef>) -> (Vec<Symbol>, Vec<Reference>) {
    // Kinds and definitions from what the scan found.
    let mut defs: Vec<BTreeMap<String, bool>> = vec![BTreeMap::new(); symbols.len()];
    let mut found_kind: Vec<Option<SymbolKind>> = vec![None; symbols.len()];
    for r in &raws {
        match r.raw {
            Raw::FunctionDef { is_static } => {
                found_kind[r.symbol] = Some(SymbolKind::Function);
                let s = defs[r.symbol].entry(r.path.clone()).or_insert(true);
                *s &= is_static;
            }
            Raw::Prototype => {
                found_kind[r.symbol].get_or_insert(SymbolKind::Function);
            }
            Raw::GlobalDef { is_static, is_extern } => {
                found_kind[r.symbol].get_or_insert(SymbolKind::Variable);
                if !is_extern {
                    let s = defs[r.symbol].entry(r.path.clone()).or_insert(true);
                    *s &= is_static;
                }
            }
            _ => {}
        }
    }
    for (i, s) in symbols.iter_mut().enumerate() {
        if s.kind == SymbolKind::Unknown {
            s.kind = found_kind[i].unwrap_or(SymbolKind::Unknown);
        }
        s.defined_in = defs[i].keys().cloned().collect();
        if s.home.is_empty() {
            s.file_local = !defs[i].is_empty() && defs[i].iter().all(|(p, &st)| st && p.ends_with(".c"));
        }
    }
    let homes: Vec<BTreeSet<&str>> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.home.is_empty() {
                defs[i].keys().map(String::as_str).collect()
            } else {
                s.home.iter().map(String::as_str).collect()
            }
        })
        .collect();
    let homonym: Vec<bool> = raws
        .iter()
        .map(|r| symbols[r.symbol].file_local && r.path.ends_with(".c") && !homes[r.symbol].contains(r.path.as_str()))
        .collect();
    let mut refs: Vec<Reference> = raws
        .into_iter()
        .zip(homonym)
        .map(|(r, homonym)| {
            let sym = &symbols[r.symbol];
            let (kind, detail) = describe(&r.raw, sym.kind);
            Reference {
                symbol: sym.name.clone(),
                path: r.path,
                line: r.line,
                col: r.col,
                function: r.function,
                kind,
                detail,
                homonym,
            }
        })
        .collect();
    refs.sort_by(|a, b| (&a.path, a.line, a.col, &a.symbol).cmp(&(&b.path, b.line, b.col, &b.symbol)));
    for s in &mut symbols {
        s.references = refs.iter().filter(|r| r.symbol == s.name).count();
    }
    (symbols, refs)
}

fn describe(raw: &Raw, kind: SymbolKind) -> (RefKind, String) {
    let function = kind == SymbolKind::Function;
    match raw {
        Raw::Call => (RefKind::Call, "call".into()),
        Raw::FunctionDef { is_static: true } => (RefKind::Declaration, "definition (static)".into()),
        Raw::FunctionDef { is_static: false } => (RefKind::Declaration, "definition".into()),
        Raw::Prototype => (RefKind::Declaration, "prototype".into()),
        Raw::GlobalDef { is_extern: true, .. } => (RefKind::Declaration, "extern declaration".into()),
        Raw::GlobalDef { is_static: true, .. } => (RefKind::Declaration, "definition (static)".into()),
        Raw::GlobalDef { .. } => (RefKind::Declaration, "definition".into()),
        Raw::Access { kind: k, arg_of } => {
            let passed = arg_of.as_ref().map(|c| format!(" passed to {c}")).unwrap_or_default();
            match (function, k) {
                (true, AccessKind::Read | AccessKind::AddressOf) => (
                    RefKind::AddressTaken,
                    if passed.is_empty() { "function pointer".into() } else { format!("function{passed}") },
                ),
                (_, AccessKind::AddressOf) => (RefKind::AddressTaken, format!("address{passed}")),
                (_, AccessKind::Write) => (RefKind::Use, "write".into()),
                (_, AccessKind::Read) => {
                    (RefKind::Use, format!("read{}", passed.replace(" passed to", " as argument of")))
                }
            }
        }
        Raw::Binding { field, var, address_of } => {
            let what = format!("initializer .{field} of {var}");
            if function || *address_of {
                (RefKind::AddressTaken, what)
            } else {
                (RefKind::Use, what)
            }
        }
        Raw::MacroArg { macro_name } if macro_name.starts_with("EXPORT_SYMBOL") => {
            (RefKind::Use, format!("exported by {macro_name}"))
        }
        Raw::MacroArg { macro_name } if function => (RefKind::AddressTaken, format!("argument of {macro_name}")),
        Raw::MacroArg { macro_name } => (RefKind::Use, format!("argument of {macro_name}")),
        Raw::Directive(d) => (RefKind::Use, d.clone()),
        Raw::Unclassified => (RefKind::Use, "unclassified (macro or unparsed code)".into()),
    }
}

/// The report as text: the symbols, one line per reference
/// (`path:line:col: kind: symbol in function (detail)`), and a summary.
pub fn render_text(report: &RefsReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "symbols ({}; {}):", report.symbols.len(), report.selection);
    for sym in &report.symbols {
        let kind = match sym.kind {
            SymbolKind::Function => "function",
            SymbolKind::Variable => "variable",
            SymbolKind::Unknown => "unknown",
        };
        let arches = if sym.arches.is_empty() { String::new() } else { format!(" [{}]", sym.arches.join(", ")) };
        let _ = writeln!(
            s,
            "  {:<34} {:<8} {:>4} refs  {}{}{}",
            sym.name,
            kind,
            sym.references,
            sym.roles.join(", "),
            arches,
            if sym.file_local { "  (file-local)" } else { "" }
        );
    }
    let _ = writeln!(s, "references:");
    for r in &report.references {
        let _ = writeln!(
            s,
            "{}:{}:{}: {}: {} in {} ({}){}",
            r.path,
            r.line,
            r.col,
            r.kind.as_str(),
            r.symbol,
            r.function.as_deref().unwrap_or("file scope"),
            r.detail,
            if r.homonym { " [homonym: file-local symbol of another file]" } else { "" }
        );
    }
    let st = &report.stats;
    let files_with_refs: BTreeSet<&str> = report.references.iter().map(|r| r.path.as_str()).collect();
    let _ = writeln!(
        s,
        "summary: {} references in {} files; scope {}: {} files ({:.1} MiB) read, {} matched the pre-filter, {} parsed, \
         {} skipped; ignored: {} mentions in comments or strings, {} member names, {} locals",
        report.references.len(),
        files_with_refs.len(),
        match report.scope {
            Scope::Kvm => "kvm",
            Scope::All => "all",
        },
        st.files - report.skipped.len().min(st.files),
        st.bytes as f64 / (1024.0 * 1024.0),
        st.files_matched,
        st.files_parsed,
        report.skipped.len(),
        st.mentions_in_comments_or_strings,
        st.member_mentions,
        st.local_names
    );
    for f in &report.skipped {
        let _ = writeln!(s, "skipped: {}: {}", f.path, f.reason);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("kvm_rebooting"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a-b"));
    }

    #[test]
    fn lexer_regions() {
        let src = b"int a; /* kvm_x */ // kvm_y\n#define M(x) kvm_z(x) \\\n  + kvm_w\nchar *s = \"kvm_s\"; c = 'k';\n";
        let l = Lexed::new(src);
        let find = |needle: &str| memchr::memmem::find(src, needle.as_bytes()).expect("needle");
        assert!(l.in_comment_or_string(find("kvm_x")));
        assert!(l.in_comment_or_string(find("kvm_y")));
        assert!(l.in_comment_or_string(find("kvm_s")));
        assert!(!l.in_comment_or_string(find("kvm_z")));
        assert_eq!(l.directive_at(find("kvm_z")), Some("in #define M"));
        assert_eq!(l.directive_at(find("kvm_w")), Some("in #define M"));
        assert_eq!(l.directive_at(find("char")), None);
    }

    #[test]
    fn matcher_boundaries() {
        let m = Matcher::new(&["foo".to_string(), "foo_bar".to_string()]).expect("matcher");
        let occ = m.occurrences(b"foo foo_bar foo_barx xfoo foo_ba foo");
        assert_eq!(occ, vec![(0, 0), (4, 1), (33, 0)]);
    }

    #[test]
    fn member_names() {
        let b = b"a.foo; b->foo; c = foo;";
        assert!(is_member_name(b, 2));
        assert!(is_member_name(b, 10));
        assert!(!is_member_name(b, 19));
    }
}
