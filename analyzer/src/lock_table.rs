//! Checks the API model's table of what kernel functions outside KVM take
//! (`[[lock_order.takes]]`, HW014's external acquisitions) against a full
//! kernel tree (`kvmtk refs TREE --verify-lock-table`), so that the table
//! is verified, not folklore.
//!
//! Each entry says: the kernel functions `functions` take `lock` in `mode`;
//! the kernel takes it in `function`, defined in `file`, by the call
//! `acquire`. The check, per entry:
//!
//! 1. `file` exists in the tree and defines `function` (else *not found*).
//! 2. From `function`, calls are followed up to [`MAX_DEPTH`] levels: into
//!    functions defined in the same file, and into `acquire` wherever the
//!    tree defines it (`mmap_write_lock()` is an inline of
//!    `include/linux/mmap_lock.h`). A call that the API model's lock
//!    operations say acquires `lock` in `mode`, on a path through
//!    `acquire` (or being it), confirms the entry, with its site. The class
//!    of a lock reached through a pointer is named as HW014 names it
//!    (`down_write(&mm->mmap_lock)` with `struct mm_struct *mm` is
//!    `struct mm_struct.mmap_lock`).
//! 3. Every other name of `functions` is looked up in the tree (a function
//!    definition, or a `#define` whose body calls on: `static_branch_inc(x)`
//!    is `static_key_slow_inc(&(x)->key)`) and must reach `function` within
//!    [`MAX_DEPTH`] calls (else *not found* when it is defined nowhere,
//!    *contradicted* when it does not reach it).
//!
//! When no acquisition is reached and the walk met calls through function
//! pointers, which it does not follow, the entry is *unverifiable* with
//! that reason, not contradicted.
//!
//! Looking a name up reads the tree once (in parallel; an Aho-Corasick
//! pre-filter over raw bytes, as `refs --scope all` does) and parses only
//! the files where the name starts a line outside comments (kernel style
//! starts a function definition's return type in column 0) or is defined
//! by `#define`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::api::{AcquireMode, ApiModel, ExternTakes, LockEffect};
use crate::facts::{Arg, CallSite, Callee, Function, Param, Span};
use crate::graph::{type_tag, visit_calls};
use crate::locks::call_lock_op;
use crate::progress::Progress;
use crate::refs::{is_ident_byte, walk, Lexed, LineIndex, Matcher, RefsError};
use crate::source::{arch_of, SourceError};

/// Calls followed from an entry's function to the acquisition, and from
/// each of its names to the function.
pub const MAX_DEPTH: usize = 4;

/// The verdict on one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The function takes the lock in that mode, at [`EntryCheck::site`].
    Confirmed,
    /// The file, the function, or one of the entry's names is not in the tree.
    NotFound,
    /// The function exists but no such acquisition is reached from it (or a
    /// name does not reach the function).
    Contradicted,
    /// No acquisition reached, but the walk met calls it cannot follow
    /// (through function pointers).
    Unverifiable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::NotFound => "not found",
            Verdict::Contradicted => "contradicted",
            Verdict::Unverifiable => "unverifiable",
        }
    }
}

/// One call on a path: `function()` at `file:line` calls `call()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub file: String,
    pub line: u32,
    pub function: String,
    pub call: String,
    /// `function` is a function-like macro (`#define`).
    pub in_macro: bool,
}

/// How one of the entry's names reaches the entry's function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamePath {
    pub name: String,
    /// The calls from `name` to the function (empty when it is the function).
    pub path: Vec<Site>,
}

/// The check of one `[[lock_order.takes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryCheck {
    pub functions: Vec<String>,
    pub lock: String,
    pub mode: AcquireMode,
    pub file: String,
    pub function: String,
    pub acquire: String,
    pub verdict: Verdict,
    /// Why, in one sentence (empty when confirmed).
    pub reason: String,
    /// The lock operation taking the lock (the last call of `chain`).
    pub site: Option<Site>,
    /// The calls from `function` down to the lock operation.
    pub chain: Vec<Site>,
    /// How each other name of `functions` reaches `function`.
    pub names: Vec<NamePath>,
}

/// Counters of the check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockTableStats {
    /// `.c`/`.h` files of the tree.
    pub files: usize,
    /// Passes over the tree's files to look names up.
    pub tree_scans: usize,
    /// Files parsed.
    pub files_parsed: usize,
}

/// The result of [`verify_lock_table`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockTableReport {
    pub tree: String,
    pub entries: Vec<EntryCheck>,
    pub stats: LockTableStats,
}

impl LockTableReport {
    /// Whether every entry is confirmed.
    pub fn all_confirmed(&self) -> bool {
        self.entries.iter().all(|e| e.verdict == Verdict::Confirmed)
    }

    /// The check of the entry whose `function` is `name`.
    pub fn entry(&self, function: &str) -> Option<&EntryCheck> {
        self.entries.iter().find(|e| e.function == function)
    }
}

/// A definition found in the tree: a function, or a function-like macro.
#[derive(Debug, Clone)]
struct Def {
    path: String,
    name: String,
    line: u32,
    is_macro: bool,
    params: Vec<Param>,
    locals: Vec<Param>,
    calls: Vec<CallSite>,
}

impl Def {
    fn of_function(path: &str, f: &Function) -> Def {
        let mut calls = Vec::new();
        visit_calls(&f.body.stmts, &mut |c| calls.push(c.clone()));
        Def {
            path: path.to_string(),
            name: f.name.clone(),
            line: f.name_span.line,
            is_macro: false,
            params: f.params.clone(),
            locals: f.locals.clone(),
            calls,
        }
    }
}

/// The tree's files and the definitions looked up so far.
struct DefIndex<'t> {
    dir: &'t Path,
    files: Vec<String>,
    by_name: HashMap<String, Vec<Def>>,
    by_file: HashMap<String, Option<Vec<Def>>>,
    stats: LockTableStats,
}

impl<'t> DefIndex<'t> {
    /// The functions `path` defines (`None`: no such file).
    fn file(&mut self, path: &str) -> Option<&[Def]> {
        if !self.by_file.contains_key(path) {
            let defs = crate::source::read_source_file(&self.dir.join(path)).ok().map(|bytes| {
                self.stats.files_parsed += 1;
                let facts = crate::parse::parse_file(path, arch_of(path).as_deref(), &bytes);
                facts.functions.iter().map(|f| Def::of_function(path, f)).collect()
            });
            self.by_file.insert(path.to_string(), defs);
        }
        self.by_file.get(path).and_then(|d| d.as_deref())
    }

    /// Looks up every name not looked up yet, in one pass over the tree.
    fn lookup(&mut self, names: &BTreeSet<String>) -> Result<(), RefsError> {
        let missing: Vec<String> = names.iter().filter(|n| !self.by_name.contains_key(*n)).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let matcher = Matcher::new(&missing)?;
        self.stats.tree_scans += 1;
        let dir = self.dir;
        let found: Vec<(Vec<Def>, bool)> = self
            .files
            .par_iter()
            .with_max_len(64)
            .filter_map(|path| {
                let bytes = crate::source::read_source_file(&dir.join(path)).ok()?;
                let (defs, parsed) = definitions_in(&matcher, &missing, path, &bytes);
                (!defs.is_empty() || parsed).then_some((defs, parsed))
            })
            .collect();
        for n in &missing {
            self.by_name.insert(n.clone(), Vec::new());
        }
        for (defs, parsed) in found {
            self.stats.files_parsed += usize::from(parsed);
            for d in defs {
                self.by_name.entry(d.name.clone()).or_default().push(d);
            }
        }
        for v in self.by_name.values_mut() {
            v.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        }
        Ok(())
    }

    fn defs(&self, name: &str) -> &[Def] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Definitions of `names` in one file: functions (the file is parsed when
/// a name starts a line outside comments) and function-like macros.
fn definitions_in(matcher: &Matcher, names: &[String], path: &str, bytes: &[u8]) -> (Vec<Def>, bool) {
    let occurrences = matcher.occurrences(bytes);
    if occurrences.is_empty() {
        return (Vec::new(), false);
    }
    let lexed = Lexed::new(bytes);
    let lines = LineIndex::new(bytes);
    let mut defs = Vec::new();
    let mut wanted: BTreeSet<usize> = BTreeSet::new();
    for (off, sym) in occurrences {
        if lexed.in_comment_or_string(off) {
            continue;
        }
        if let Some((start, end)) = lexed.directive_range(off) {
            // The name right after `#define` (not a mention in a body).
            let head: String = String::from_utf8_lossy(&bytes[start..off]).split_whitespace().collect();
            if head == "#define" {
                if let Some(d) = macro_def(path, &names[sym], bytes, off, end, &lines) {
                    defs.push(d);
                }
            }
            continue;
        }
        let line_start = bytes[..off].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        if !bytes.get(line_start).is_some_and(|c| c.is_ascii_whitespace()) {
            wanted.insert(sym);
        }
    }
    if wanted.is_empty() {
        return (defs, false);
    }
    let facts = crate::parse::parse_file(path, arch_of(path).as_deref(), bytes);
    for f in &facts.functions {
        if wanted.iter().any(|&i| names[i] == f.name) {
            defs.push(Def::of_function(path, f));
        }
    }
    (defs, true)
}

/// `#define name(params) body`: the calls of its body (`ident(...)`, with
/// their arguments split at top-level commas).
fn macro_def(path: &str, name: &str, bytes: &[u8], name_off: usize, end: usize, lines: &LineIndex) -> Option<Def> {
    let after = name_off + name.len();
    if bytes.get(after) != Some(&b'(') {
        return None;
    }
    let close = after + bytes[after..end].iter().position(|&c| c == b')')?;
    let params: Vec<Param> = String::from_utf8_lossy(&bytes[after + 1..close])
        .split(',')
        .map(|p| Param { name: p.trim().to_string(), type_text: String::new() })
        .filter(|p| !p.name.is_empty())
        .collect();
    let body = &bytes[close + 1..end];
    let base = close + 1;
    let mut calls = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if !is_ident_byte(body[i]) || (i > 0 && is_ident_byte(body[i - 1])) || body[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let s = i;
        while i < body.len() && is_ident_byte(body[i]) {
            i += 1;
        }
        let mut j = i;
        while j < body.len() && (body[j] == b' ' || body[j] == b'\t') {
            j += 1;
        }
        if body.get(j) != Some(&b'(') {
            continue;
        }
        let ident = String::from_utf8_lossy(&body[s..i]).into_owned();
        let (args, close) = split_args(body, j);
        let (line, col) = lines.line_col(base + s);
        let span = Span { start: (base + s) as u32, end: (base + close) as u32, line, col };
        calls.push(CallSite {
            callee: Callee::Direct(ident),
            args: args
                .into_iter()
                .map(|text| {
                    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                    let address_of = t.starts_with('&');
                    let ident = t.trim_start_matches('&').to_string();
                    let simple = !ident.is_empty() && ident.bytes().all(is_ident_byte);
                    Arg { text, span, ident: simple.then_some(ident), address_of }
                })
                .collect(),
            span,
            callee_span: span,
            condition: Default::default(),
        });
    }
    let (line, _) = lines.line_col(name_off);
    Some(Def {
        path: path.to_string(),
        name: name.to_string(),
        line,
        is_macro: true,
        params,
        locals: Vec::new(),
        calls,
    })
}

/// The arguments of the call whose `(` is at `open`, split at top-level
/// commas, and the offset after its `)`.
fn split_args(b: &[u8], open: usize) -> (Vec<String>, usize) {
    let mut depth = 0usize;
    let mut args = Vec::new();
    let mut start = open + 1;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let last = String::from_utf8_lossy(&b[start..k]).trim().to_string();
                    if !last.is_empty() || !args.is_empty() {
                        args.push(last);
                    }
                    return (args, k + 1);
                }
            }
            b',' if depth == 1 => {
                args.push(String::from_utf8_lossy(&b[start..k]).trim().to_string());
                start = k + 1;
            }
            _ => {}
        }
    }
    (args, b.len())
}

/// The class of a lock expression in a kernel function, as HW014 names it:
/// a global's symbol, `struct TYPE.member` for a member of a declared
/// pointer or struct; anything else is unknown (`?function:expression`).
fn class_in(def: &Def, expr: &str) -> String {
    if expr.starts_with("struct ") {
        return expr.to_string();
    }
    let unknown = || format!("?{}:{expr}", def.name);
    let Some(parts) = crate::lock_order::split_path(expr) else { return unknown() };
    let declared = |n: &str| def.params.iter().chain(&def.locals).find(|p| p.name == n);
    match parts.as_slice() {
        [global] if declared(global).is_none() => global.to_string(),
        [base, member] => match declared(base).map(|p| type_tag(&p.type_text)) {
            Some(tag) if !tag.is_empty() => format!("struct {tag}.{member}"),
            _ => unknown(),
        },
        _ => unknown(),
    }
}

/// What a call acquires, per the API model: (class, mode).
fn acquisition(api: &ApiModel, def: &Def, site: &CallSite) -> Option<(String, AcquireMode)> {
    let (LockEffect::Acquire, lock, true) = call_lock_op(api, site)? else { return None };
    let Callee::Direct(name) = &site.callee else { return None };
    let mode = if name == "guard" {
        api.acquire_mode(site.args.first().map(|a| a.text.trim()).unwrap_or(""), true)
    } else {
        api.acquire_mode(name, false)
    };
    Some((class_in(def, &lock.name), mode))
}

fn site_of(def: &Def, call: &CallSite) -> Site {
    Site {
        file: def.path.clone(),
        line: call.span.line,
        function: def.name.clone(),
        call: call.callee.display(),
        in_macro: def.is_macro,
    }
}

fn mode_text(m: AcquireMode) -> &'static str {
    match m {
        AcquireMode::Write => "write",
        AcquireMode::Read => "read",
        AcquireMode::RecursiveRead => "recursive read",
    }
}

/// Checks every `[[lock_order.takes]]` entry of `api` against the full
/// kernel tree at `dir`.
pub fn verify_lock_table(dir: &Path, api: &ApiModel, progress: &dyn Progress) -> Result<LockTableReport, RefsError> {
    let meta = std::fs::metadata(dir).map_err(|source| RefsError::Io { path: dir.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory { path: dir.to_path_buf() }.into());
    }
    progress.stage("walking the tree", None);
    let walked = walk(dir, "");
    if let Some((path, source)) = walked.root_error {
        return Err(RefsError::Io { path, source });
    }
    let mut files = walked.files;
    files.sort();
    let stats = LockTableStats { files: files.len(), ..LockTableStats::default() };
    let mut index = DefIndex { dir, files, by_name: HashMap::new(), by_file: HashMap::new(), stats };
    let entries = &api.table.lock_order.takes;
    // Every name that may have to be found outside the entry's file, in one pass.
    let mut first: BTreeSet<String> = BTreeSet::new();
    for e in entries {
        first.extend(e.functions.iter().filter(|f| **f != e.function).cloned());
        if api.lock_op(&e.acquire).is_none() {
            first.insert(e.acquire.clone());
        }
    }
    progress.stage("looking up the table's functions", Some(entries.len() as u64));
    index.lookup(&first)?;
    let mut checks = Vec::new();
    for e in entries {
        checks.push(check_entry(api, &mut index, e)?);
        progress.advance(1);
    }
    progress.finish();
    Ok(LockTableReport { tree: dir.display().to_string(), entries: checks, stats: index.stats })
}

fn check_entry(api: &ApiModel, index: &mut DefIndex<'_>, e: &ExternTakes) -> Result<EntryCheck, RefsError> {
    let mut out = EntryCheck {
        functions: e.functions.clone(),
        lock: e.lock.clone(),
        mode: e.mode,
        file: e.file.clone(),
        function: e.function.clone(),
        acquire: e.acquire.clone(),
        verdict: Verdict::Confirmed,
        reason: String::new(),
        site: None,
        chain: Vec::new(),
        names: Vec::new(),
    };
    let set = |out: &mut EntryCheck, v: Verdict, reason: String| {
        out.verdict = v;
        out.reason = reason;
    };
    let Some(file_defs) = index.file(&e.file) else {
        set(&mut out, Verdict::NotFound, format!("`{}` is not a file of the tree", e.file));
        return Ok(out);
    };
    let starts: Vec<Def> = file_defs.iter().filter(|d| d.name == e.function).cloned().collect();
    if starts.is_empty() {
        set(&mut out, Verdict::NotFound, format!("`{}` defines no function `{}`", e.file, e.function));
        return Ok(out);
    }
    match find_acquisition(api, index, e, &starts) {
        Walk::Found(chain) => {
            out.site = chain.last().cloned();
            out.chain = chain;
        }
        Walk::Missing { other, indirect } => {
            let seen = if other.is_empty() {
                "no lock operation".to_string()
            } else {
                other.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
            };
            let what = format!(
                "no acquisition of {} ({}) through {}() is reached from {}() within {MAX_DEPTH} calls (it reaches {seen})",
                e.lock,
                mode_text(e.mode),
                e.acquire,
                e.function
            );
            match indirect.first() {
                Some(at) => set(
                    &mut out,
                    Verdict::Unverifiable,
                    format!("{what}; calls through function pointers are not followed ({at})"),
                ),
                None => set(&mut out, Verdict::Contradicted, what),
            }
            return Ok(out);
        }
    }
    for name in e.functions.iter().filter(|n| **n != e.function) {
        match path_to(index, name, &e.function)? {
            NameWalk::Reaches(path) => out.names.push(NamePath { name: name.clone(), path }),
            NameWalk::Undefined => {
                set(&mut out, Verdict::NotFound, format!("`{name}` is defined nowhere in the tree"));
                return Ok(out);
            }
            NameWalk::NotReached => {
                set(
                    &mut out,
                    Verdict::Contradicted,
                    format!("`{name}` does not reach {}() within {MAX_DEPTH} calls", e.function),
                );
                return Ok(out);
            }
        }
    }
    Ok(out)
}

enum Walk {
    /// The calls from the entry's function to the lock operation.
    Found(Vec<Site>),
    /// Acquisitions of other classes seen, and calls through pointers met.
    Missing { other: BTreeSet<String>, indirect: Vec<String> },
}

/// Breadth first from the entry's function: same-file callees, and the
/// entry's `acquire` wherever the tree defines it.
fn find_acquisition(api: &ApiModel, index: &mut DefIndex<'_>, e: &ExternTakes, starts: &[Def]) -> Walk {
    let mut queue: VecDeque<(Def, Vec<Site>, bool)> = starts.iter().map(|d| (d.clone(), Vec::new(), false)).collect();
    let mut seen: BTreeSet<(String, String, u32)> = BTreeSet::new();
    let mut other = BTreeSet::new();
    let mut indirect = Vec::new();
    while let Some((def, chain, through_acquire)) = queue.pop_front() {
        if !seen.insert((def.path.clone(), def.name.clone(), def.line)) {
            continue;
        }
        for call in &def.calls {
            let mut here = chain.clone();
            here.push(site_of(&def, call));
            let Callee::Direct(callee) = &call.callee else {
                if !matches!(call.callee, Callee::StaticCall { .. }) {
                    indirect.push(format!("{}:{} in {}()", def.path, call.span.line, def.name));
                }
                continue;
            };
            let via = through_acquire || *callee == e.acquire;
            if let Some((class, mode)) = acquisition(api, &def, call) {
                if class == e.lock && mode == e.mode && via {
                    return Walk::Found(here);
                }
                other.insert(format!("{class} ({}) by {callee}() at {}:{}", mode_text(mode), def.path, call.span.line));
                continue;
            }
            if here.len() >= MAX_DEPTH {
                continue;
            }
            let next: Vec<Def> = if *callee == e.acquire {
                index.defs(callee).to_vec()
            } else {
                index.file(&def.path).unwrap_or(&[]).iter().filter(|d| d.name == *callee).cloned().collect()
            };
            queue.extend(next.into_iter().map(|d| (d, here.clone(), via)));
        }
    }
    Walk::Missing { other, indirect }
}

enum NameWalk {
    Reaches(Vec<Site>),
    Undefined,
    NotReached,
}

/// Breadth first over the tree, level by level (one lookup pass per level),
/// from the definitions of `name` to a call of `target`.
fn path_to(index: &mut DefIndex<'_>, name: &str, target: &str) -> Result<NameWalk, RefsError> {
    let defs = index.defs(name).to_vec();
    if defs.is_empty() {
        return Ok(NameWalk::Undefined);
    }
    let mut level: Vec<(Def, Vec<Site>)> = defs.into_iter().map(|d| (d, Vec::new())).collect();
    let mut visited: BTreeSet<String> = BTreeSet::from([name.to_string()]);
    for _ in 0..MAX_DEPTH {
        let mut next_names: BTreeMap<String, Vec<Site>> = BTreeMap::new();
        for (def, path) in &level {
            for call in &def.calls {
                let Callee::Direct(callee) = &call.callee else { continue };
                let mut here = path.clone();
                here.push(site_of(def, call));
                if callee == target {
                    return Ok(NameWalk::Reaches(here));
                }
                if visited.insert(callee.clone()) {
                    next_names.insert(callee.clone(), here);
                }
            }
        }
        if next_names.is_empty() {
            break;
        }
        index.lookup(&next_names.keys().cloned().collect())?;
        level = next_names
            .into_iter()
            .flat_map(|(n, path)| index.defs(&n).iter().map(move |d| (d.clone(), path.clone())).collect::<Vec<_>>())
            .collect();
    }
    Ok(NameWalk::NotReached)
}

/// The report as text: one block per entry.
pub fn render_text(report: &LockTableReport) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &report.entries {
        *counts.entry(e.verdict.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    let mut out = format!(
        "[lock_order.takes] checked against {}: {} entries, {}\n",
        report.tree,
        report.entries.len(),
        summary.join(", ")
    );
    for e in &report.entries {
        out.push_str(&format!(
            "\n{}: {} {} {} ({})\n",
            e.verdict.as_str(),
            e.functions.join(", "),
            if e.functions.len() == 1 { "takes" } else { "take" },
            e.lock,
            mode_text(e.mode)
        ));
        if let Some(site) = &e.site {
            out.push_str(&format!(
                "  taken at {}:{} by {}() in {}()\n",
                site.file, site.line, site.call, site.function
            ));
            if e.chain.len() > 1 {
                let path: Vec<String> =
                    e.chain.iter().map(|s| format!("{}() {}:{}", s.function, s.file, s.line)).collect();
                out.push_str(&format!("  path: {} -> {}()\n", path.join(" -> "), site.call));
            }
        }
        for n in &e.names {
            let path: Vec<String> = n
                .path
                .iter()
                .map(|s| format!("{}:{}{} {}()", s.file, s.line, if s.in_macro { " (macro)" } else { "" }, s.call))
                .collect();
            out.push_str(&format!("  {} reaches {}(): {}\n", n.name, e.function, path.join(" -> ")));
        }
        if !e.reason.is_empty() {
            out.push_str(&format!("  {}\n", e.reason));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_bodies_give_calls_with_arguments() {
        let src = b"#define static_foo_inc(x)\t\tfoo_slow_inc(&(x)->key, 1)\n#define other 3\n";
        let lines = LineIndex::new(src);
        let d =
            macro_def("a.h", "static_foo_inc", src, 8, src.iter().position(|&c| c == b'\n').unwrap(), &lines).unwrap();
        assert!(d.is_macro);
        assert_eq!(d.calls.len(), 1);
        assert_eq!(d.calls[0].callee, Callee::Direct("foo_slow_inc".into()));
        assert_eq!(d.calls[0].args.len(), 2);
        assert_eq!(d.calls[0].args[0].text, "&(x)->key");
    }

    #[test]
    fn classes_follow_declared_types() {
        let def = Def {
            path: "a.c".into(),
            name: "f".into(),
            line: 1,
            is_macro: false,
            params: vec![Param { name: "mm".into(), type_text: "struct mm_struct *".into() }],
            locals: Vec::new(),
            calls: Vec::new(),
        };
        assert_eq!(class_in(&def, "mm->mmap_lock"), "struct mm_struct.mmap_lock");
        assert_eq!(class_in(&def, "cgroup_mutex"), "cgroup_mutex");
        assert_eq!(class_in(&def, "mm"), "?f:mm");
        assert_eq!(class_in(&def, "x->y"), "?f:x->y");
    }
}
