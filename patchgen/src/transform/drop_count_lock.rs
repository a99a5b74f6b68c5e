//! Series step 4: replace the raw spinlock that guards the usage count
//! with a mutex of its own, ordered inside the CPU hotplug lock.
//!
//! The lock is the raw spinlock HW006 reports (6.1: `kvm_count_lock`), or,
//! when no HW006 finding names one, the raw spinlock of common code taken
//! by a CPU hotplug callback. The mutex that replaces it is new and
//! dedicated to the usage count (the global written under the raw lock),
//! named after it: `kvm_usage_count` -> `kvm_usage_lock`. An existing mutex
//! (the review proposed `kvm_lock`) would put everything its other holders
//! take under the CPU hotplug lock, since the hotplug callbacks take the
//! count's lock with `cpu_hotplug_lock` held for write: on 6.1 that closes
//! cpu_hotplug_lock -> kvm_lock -> kvm->slots_lock -> kvm->srcu ->
//! cpu_hotplug_lock, the deadlock upstream fixed in 44d17459626. When the
//! lock-order rule (HW014) is available, the transformation checks both:
//! its own edits must introduce no cycle (else it refuses, citing it), and
//! the cycle that reusing the existing mutex would close is cited in the
//! commit message.
//!
//! Lists walked by code that runs under the raw lock but not under the
//! list's own lock (HW001: x86's `kvm_arch_hardware_enable()` walks
//! `vm_list` from the ONLINE callback) get their writers to take the new
//! mutex too, inside the list's lock: the list is then changed with both
//! held and may be walked with either, and the new mutex stays a leaf (no
//! lock is taken or waited for under it).
//!
//! Preconditions: no holder of the raw spinlock runs in an atomic context
//! (STARTING section, IPI, syscore, under another spinlock) — a lock that
//! may sleep is never introduced where the path is still atomic, so on 6.1
//! this refuses until the hotplug callbacks moved to the ONLINE section;
//! every reference to the spinlock is a plain lock/unlock or a lockdep
//! assertion (anything else would not compile once the definition is gone);
//! the raw lock is defined with `DEFINE_RAW_SPINLOCK()`; the new name is
//! free; no list writer that must take the new mutex is atomic.
//!
//! Edits: the definition becomes `static DEFINE_MUTEX(<new>);`,
//! `raw_spin_lock(&L)` -> `mutex_lock(&N)`, `raw_spin_unlock(&L)` ->
//! `mutex_unlock(&N)`, other calls naming `&L` (lockdep assertions) get
//! `&N`; the list writers are wrapped in `mutex_lock(&N)`/`mutex_unlock(&N)`;
//! locking.rst's entry for `L` becomes the entry for `N` (what it protects,
//! why it is a mutex of its own) and the acquisition orders are documented
//! ("cpus_read_lock() is taken outside N", "kvm_lock is taken outside N"),
//! so HW013 stays quiet.

use std::collections::{BTreeMap, BTreeSet};

use analyzer::api::LockEffect;
use analyzer::contexts::Analysis;
use analyzer::facts::{AccessKind, Callee, Global};
use analyzer::graph::{visit_calls, FnId};
use analyzer::locks::{call_lock_op, OccurrenceKind};
use analyzer::pipeline::LOCKING_RST;
use analyzer::rules::queries::{
    atomic_reason, excluded_by, held_at, list_walks, list_writes, lock_acquisitions, other_cpus_run,
};

use super::hotplug_lock::HOTPLUG_LOCK;
use super::util::{
    alone_on_lines, describe_cycle, file_bytes, ident_uses, indent_at, introduced_cycles, line_end_incl, line_start,
    text_of, whole_lines, wrap,
};
use super::{Change, Refusal, TransformInput};
use crate::edit::Edit;

/// Slug of this transformation (file names, `--only`).
pub const SLUG: &str = "drop-count-lock";
const NAME: &str = SLUG;

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal { transformation: NAME, reason: reason.into() }
}

/// A global of common code (not under `arch/`), with its file.
fn common_global<'a>(a: &Analysis<'a>, name: &str) -> Option<(u32, &'a Global)> {
    a.program
        .globals
        .get(name)?
        .iter()
        .find(|(fi, g)| !a.program.files[*fi as usize].path.starts_with("arch/") && !g.is_extern)
        .copied()
}

fn is_raw_spinlock(g: &Global) -> bool {
    g.define_macro.as_deref().is_some_and(|m| m.contains("RAW_SPINLOCK")) || g.type_text.contains("raw_spinlock")
}

fn is_mutex(g: &Global) -> bool {
    g.define_macro.as_deref() == Some("DEFINE_MUTEX") || g.type_text.trim() == "struct mutex"
}

/// The raw spinlock to drop: named by an HW006 finding, else the raw
/// spinlock of common code that a CPU hotplug callback takes.
fn find_raw_lock(input: &TransformInput<'_>, analyses: &[Analysis<'_>]) -> Result<String, Refusal> {
    let a = &analyses[0];
    let mut named: BTreeSet<String> = BTreeSet::new();
    for f in input.findings.findings.iter().filter(|f| f.rule == "HW006") {
        for s in &f.symbols {
            if common_global(a, s).is_some_and(|(_, g)| is_raw_spinlock(g)) {
                named.insert(s.clone());
            }
        }
    }
    if named.is_empty() {
        for a in analyses {
            let hotplug: BTreeSet<FnId> =
                a.roots.iter().filter(|r| r.context.starts_with("cpuhp_")).map(|r| r.function).collect();
            for s in lock_acquisitions(a) {
                if s.lock.kind != "raw_spinlock" {
                    continue;
                }
                let from_hotplug = hotplug.contains(&s.function)
                    || a.reaches(s.function).iter().any(|r| a.roots[r.key.root].context.starts_with("cpuhp_"));
                if from_hotplug && common_global(a, &s.lock.name).is_some_and(|(_, g)| is_raw_spinlock(g)) {
                    named.insert(s.lock.name.clone());
                }
            }
        }
    }
    match named.len() {
        1 => Ok(named.into_iter().next().unwrap_or_default()),
        0 => {
            // Say what the usage count's hotplug callbacks take instead.
            let mut taken: BTreeSet<String> = BTreeSet::new();
            for a in analyses {
                for s in lock_acquisitions(a) {
                    let hp = a.reaches(s.function).iter().any(|r| a.roots[r.key.root].context.starts_with("cpuhp_"));
                    if hp
                        && !a.program.file(s.function).path.starts_with("arch/")
                        && common_global(a, &s.lock.name).is_some()
                    {
                        taken.insert(format!("`{}` ({})", s.lock.name, s.lock.kind));
                    }
                }
            }
            Err(refuse(format!(
                "no raw spinlock of common code is taken by a CPU hotplug callback and no HW006 finding names one: \
                 the usage-count lock has already been dropped or replaced{}",
                if taken.is_empty() {
                    String::new()
                } else {
                    format!(" (the hotplug callbacks take {})", taken.into_iter().collect::<Vec<_>>().join(", "))
                }
            )))
        }
        _ => Err(refuse(format!(
            "several raw spinlocks qualify ({}); cannot tell which one guards the usage count",
            named.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The mutex that takes over: named by an HW006 finding, else the global
/// mutex held by every writer of a global list of the raw lock's file.
fn find_mutex(input: &TransformInput<'_>, a: &Analysis<'_>, raw: &str, raw_file: u32) -> Result<String, Refusal> {
    let mut named: BTreeSet<String> = BTreeSet::new();
    for f in input.findings.findings.iter().filter(|f| f.rule == "HW006" && f.symbols.iter().any(|s| s == raw)) {
        for s in &f.symbols {
            if common_global(a, s).is_some_and(|(_, g)| is_mutex(g)) {
                named.insert(s.clone());
            }
        }
    }
    if named.is_empty() {
        let writes: Vec<_> =
            list_writes(a).into_iter().filter(|w| w.function.file == raw_file && w.head.is_some()).collect();
        let mut common: Option<BTreeSet<String>> = None;
        for w in &writes {
            let held: BTreeSet<String> = w
                .state
                .must
                .iter()
                .filter(|l| l.kind == "mutex" && common_global(a, &l.name).is_some_and(|(_, g)| is_mutex(g)))
                .map(|l| l.name.clone())
                .collect();
            common = Some(match common {
                None => held,
                Some(c) => c.intersection(&held).cloned().collect(),
            });
        }
        named = common.unwrap_or_default();
    }
    match named.len() {
        1 => Ok(named.into_iter().next().unwrap_or_default()),
        0 => Err(refuse(format!(
            "no existing mutex can take over from `{raw}`: no HW006 finding names one and no global mutex of its \
             file guards the writers of a global list"
        ))),
        _ => Err(refuse(format!(
            "several mutexes could take over from `{raw}` ({}); cannot tell which one",
            named.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// What the holders of the raw lock tell about its order against the CPU
/// hotplug lock.
struct Holders {
    /// Functions that take the raw lock (for the commit message).
    names: BTreeSet<String>,
    /// Some acquisition runs with the CPU hotplug lock held or serializing it.
    inside_hotplug: bool,
    /// The call that takes the hotplug lock in a holder (`cpus_read_lock`).
    hotplug_call: Option<String>,
}

/// Every holder may sleep: no acquisition of `raw` in an atomic context.
fn check_holders(input: &TransformInput<'_>, analyses: &[Analysis<'_>], raw: &str) -> Result<Holders, Refusal> {
    let mut h = Holders { names: BTreeSet::new(), inside_hotplug: false, hotplug_call: None };
    for a in analyses {
        for s in lock_acquisitions(a).into_iter().filter(|s| s.lock.name == raw) {
            let func = a.program.func(s.function);
            let path = &a.program.file(s.function).path;
            h.names.insert(func.name.clone());
            for r in a.reaches(s.function) {
                let root = &a.roots[r.key.root];
                // The raw lock itself is not a reason: it is what goes away.
                let mut site = s.state.clone();
                site.must = analyzer::locks::LockSet(std::sync::Arc::new(
                    site.must.iter().filter(|l| l.name != raw).cloned().collect(),
                ));
                if let Some(why) = atomic_reason(input.api, r, &site) {
                    return Err(refuse(format!(
                        "{}() ({}:{}) takes `{raw}` in atomic context ({why}; root {}() via {}): a mutex may sleep, \
                         so `{raw}` cannot become a mutex while this holder is atomic (move the CPU hotplug \
                         callbacks to the ONLINE section first)",
                        func.name, path, s.span.line, root.function_name, root.origin
                    )));
                }
                if excluded_by(r, &s.state, HOTPLUG_LOCK) {
                    h.inside_hotplug = true;
                }
            }
            if h.hotplug_call.is_none() {
                visit_calls(&func.body.stmts, &mut |c| {
                    if let Some((LockEffect::Acquire, l, _)) = call_lock_op(input.api, c) {
                        if l.name == HOTPLUG_LOCK && h.hotplug_call.is_none() {
                            h.hotplug_call = Some(c.callee.display());
                        }
                    }
                });
            }
        }
    }
    Ok(h)
}

/// Globals of common code written with `raw` held.
fn guarded_data(a: &Analysis<'_>, raw: &str) -> BTreeSet<String> {
    let mut guarded = BTreeSet::new();
    for (id, locks) in &a.locks {
        for o in &locks.occurrences {
            let OccurrenceKind::Access(acc) = o.kind else { continue };
            if acc.kind != AccessKind::Write || common_global(a, &acc.name).is_none() {
                continue;
            }
            if o.state.must.contains_name(raw) || a.reaches(*id).iter().any(|r| held_at(r, &o.state, raw)) {
                guarded.insert(acc.name.clone());
            }
        }
    }
    guarded
}

/// The usage count among the guarded globals: the one named `*_count`, or
/// the only one.
fn usage_count(guarded: &BTreeSet<String>, raw: &str) -> Result<String, Refusal> {
    let counts: Vec<&String> = guarded.iter().filter(|g| g.ends_with("_count")).collect();
    match (counts.as_slice(), guarded.len()) {
        ([one], _) => Ok((*one).clone()),
        (_, 1) => Ok(guarded.iter().next().cloned().unwrap_or_default()),
        _ => Err(refuse(format!(
            "cannot tell which global `{raw}` protects as the usage count ({}); the dedicated mutex is named after it",
            if guarded.is_empty() {
                "none is written under it".to_string()
            } else {
                guarded.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
            }
        ))),
    }
}

/// The dedicated mutex's name: the count's, `_count` -> `_lock`.
fn dedicated_name(count: &str) -> String {
    match count.strip_suffix("_count") {
        Some(stem) => format!("{stem}_lock"),
        None => format!("{count}_lock"),
    }
}

/// A list write that must take the new mutex too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Writer {
    path: String,
    function: String,
    /// The list call's span (`list_add(...)`).
    start: usize,
    end: usize,
    line: u32,
}

/// A walk of a global list that runs under `raw` but not under the list's
/// writers' locks, with the writers to extend.
struct ProtectedWalks {
    heads: BTreeSet<String>,
    /// The locks every writer already holds (`kvm_lock`).
    writer_locks: BTreeSet<String>,
    writers: BTreeSet<Writer>,
    /// Walking functions (for the message).
    walkers: BTreeSet<String>,
}

/// Walks of global lists whose unguarded reaches all run with `raw` held
/// (or serializing them): replacing `raw` by a mutex the writers do not
/// take would leave them racing, so the writers take it too.
fn walks_under(input: &TransformInput<'_>, analyses: &[Analysis<'_>], raw: &str) -> Result<ProtectedWalks, Refusal> {
    let mut out = ProtectedWalks {
        heads: BTreeSet::new(),
        writer_locks: BTreeSet::new(),
        writers: BTreeSet::new(),
        walkers: BTreeSet::new(),
    };
    for a in analyses {
        let writes = list_writes(a);
        for walk in list_walks(a) {
            let writers: Vec<_> = writes.iter().filter(|w| w.head.as_deref() == Some(walk.head.as_str())).collect();
            if writers.is_empty() {
                continue;
            }
            // Locks held at every write, on the site or on every entry.
            let mut guard: Option<BTreeSet<String>> = None;
            for w in &writers {
                let mut held: BTreeSet<String> = w.state.must.names().iter().map(|s| s.to_string()).collect();
                let common = a
                    .reaches(w.function)
                    .iter()
                    .map(|r| r.key.held_must.names().iter().map(|s| s.to_string()).collect::<BTreeSet<_>>())
                    .reduce(|x, y| x.intersection(&y).cloned().collect())
                    .unwrap_or_default();
                held.extend(common);
                guard = Some(match guard {
                    None => held,
                    Some(g) => g.intersection(&held).cloned().collect(),
                });
            }
            let guard = guard.unwrap_or_default();
            let unguarded: Vec<_> = a
                .reaches(walk.function)
                .iter()
                .filter(|r| other_cpus_run(a.api, r))
                .filter(|r| !guard.iter().any(|g| excluded_by(r, &walk.state, g)))
                .collect();
            if unguarded.is_empty() || !unguarded.iter().all(|r| excluded_by(r, &walk.state, raw)) {
                continue;
            }
            out.heads.insert(walk.head.clone());
            out.walkers.insert(a.program.func(walk.function).name.clone());
            out.writer_locks.extend(guard.iter().cloned());
            for w in writers {
                let func = a.program.func(w.function);
                let path = a.program.file(w.function).path.clone();
                for r in a.reaches(w.function) {
                    if let Some(why) = atomic_reason(input.api, r, &w.state) {
                        return Err(refuse(format!(
                            "{}() ({path}:{}) changes `{}`, which is walked under `{raw}`, in atomic context \
                             ({why}): it cannot take a mutex to keep the walk safe",
                            func.name, w.span.line, walk.head
                        )));
                    }
                }
                out.writers.insert(Writer {
                    path,
                    function: func.name.clone(),
                    start: w.span.start as usize,
                    end: w.span.end as usize,
                    line: w.span.line,
                });
            }
        }
    }
    Ok(out)
}

/// Rewrite every reference to `raw` into one to the mutex `mutex`; the
/// names of the functions that take it. Refuses when a reference has no
/// mutex equivalent.
fn rewrite_references(
    input: &TransformInput<'_>,
    raw: &str,
    mutex: &str,
    handled: &mut BTreeMap<String, BTreeSet<usize>>,
) -> Result<Vec<Edit>, Refusal> {
    let mut edits: Vec<Edit> = Vec::new();
    for file in &input.tree.files {
        for func in &file.functions {
            let mut problem: Option<String> = None;
            visit_calls(&func.body.stmts, &mut |c| {
                let Some(arg) = c.args.iter().find(|a| a.ident.as_deref() == Some(raw)) else { return };
                let Callee::Direct(name) = &c.callee else { return };
                handled
                    .entry(file.path.clone())
                    .or_default()
                    .insert(arg.span.start as usize + arg.text.find(raw).unwrap_or(0));
                let new_arg =
                    Edit::replace(&file.path, arg.span.start as usize, arg.span.end as usize, format!("&{mutex}"));
                let callee =
                    |to: &str| Edit::replace(&file.path, c.callee_span.start as usize, c.callee_span.end as usize, to);
                match call_lock_op(input.api, c) {
                    Some((LockEffect::Acquire, _, _)) if name == "raw_spin_lock" => {
                        edits.push(callee("mutex_lock"));
                        edits.push(new_arg);
                    }
                    Some((LockEffect::Release, _, _)) if name == "raw_spin_unlock" => {
                        edits.push(callee("mutex_unlock"));
                        edits.push(new_arg);
                    }
                    Some(_) => {
                        problem = Some(format!(
                            "{}() ({}:{}) uses `{name}()` on `{raw}`: only plain raw_spin_lock()/raw_spin_unlock() \
                             have a mutex equivalent",
                            func.name, file.path, c.span.line
                        ));
                    }
                    None => edits.push(new_arg),
                }
            });
            if let Some(p) = problem {
                return Err(refuse(p));
            }
        }
    }
    Ok(edits)
}

/// Every reference to `raw` in the tree's C files is one `handled` knows.
fn all_references_handled(
    input: &TransformInput<'_>,
    raw: &str,
    handled: &BTreeMap<String, BTreeSet<usize>>,
) -> Result<(), Refusal> {
    for f in &input.tree.source.files {
        if !(f.path.ends_with(".c") || f.path.ends_with(".h")) {
            continue;
        }
        for at in ident_uses(&f.bytes, 0, f.bytes.len(), raw) {
            if !handled.get(&f.path).is_some_and(|h| h.contains(&at)) {
                let line = f.bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(refuse(format!(
                    "{}:{line} refers to `{raw}` in a way this transformation does not rewrite",
                    f.path
                )));
            }
        }
    }
    Ok(())
}

/// The header line declaring one of `locks` `extern` (its path and the end
/// of its line), to declare the new mutex after it.
fn extern_declaration(
    input: &TransformInput<'_>,
    a: &Analysis<'_>,
    locks: &BTreeSet<String>,
) -> Option<(String, usize)> {
    locks.iter().find_map(|l| {
        a.program.globals.get(l.as_str())?.iter().find_map(|(fi, g)| {
            let path = &a.program.files[*fi as usize].path;
            (g.is_extern && path.ends_with(".h"))
                .then(|| (path.clone(), line_end_incl(file_bytes(input.tree, path), g.span.end as usize)))
        })
    })
}

/// `mutex_lock(&N);` before and `mutex_unlock(&N);` after a writer's
/// statement (the list call alone on its line(s), ending with `;`).
fn wrap_writer(input: &TransformInput<'_>, w: &Writer, mutex: &str) -> Result<Vec<Edit>, Refusal> {
    let src = file_bytes(input.tree, &w.path);
    if src.get(w.end) != Some(&b';') || !alone_on_lines(src, w.start, w.end + 1) {
        return Err(refuse(format!(
            "{}:{}: the list change in {}() shares its line; cannot take `{mutex}` around it",
            w.path, w.line, w.function
        )));
    }
    let ind = indent_at(src, w.start);
    Ok(vec![
        Edit::insert(&w.path, line_start(src, w.start), format!("{ind}mutex_lock(&{mutex});\n")),
        Edit::insert(&w.path, line_end_incl(src, w.end), format!("{ind}mutex_unlock(&{mutex});\n")),
    ])
}

fn names(v: &BTreeSet<String>, call: bool) -> String {
    let v: Vec<String> = v.iter().map(|n| if call { format!("{n}()") } else { n.clone() }).collect();
    match v.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let analyses = input.tree.analyze_all(input.api);
    let Some(a0) = analyses.first() else { return Err(refuse("the tree has no code to analyze")) };
    let raw = find_raw_lock(input, &analyses)?;
    let Some((raw_file, raw_global)) = common_global(a0, &raw) else {
        return Err(refuse(format!("`{raw}` is not defined in common code")));
    };
    if raw_global.define_macro.as_deref() != Some("DEFINE_RAW_SPINLOCK") {
        return Err(refuse(format!("`{raw}` is not defined with DEFINE_RAW_SPINLOCK(); cannot make it a mutex")));
    }
    let raw_path = a0.program.files[raw_file as usize].path.clone();
    let holders = check_holders(input, &analyses, &raw)?;
    let guarded = guarded_data(a0, &raw);
    let count = usage_count(&guarded, &raw)?;
    let new = dedicated_name(&count);
    for f in &input.tree.source.files {
        if (f.path.ends_with(".c") || f.path.ends_with(".h"))
            && !ident_uses(&f.bytes, 0, f.bytes.len(), &new).is_empty()
        {
            return Err(refuse(format!("the name of the dedicated mutex, `{new}`, is already used in {}", f.path)));
        }
    }
    let walks = walks_under(input, &analyses, &raw)?;

    // The definition, the lock calls, the list writers.
    let src = file_bytes(input.tree, &raw_path);
    let (ds, de) = (raw_global.span.start as usize, raw_global.span.end as usize);
    let def = text_of(src, ds, de).replacen("DEFINE_RAW_SPINLOCK", "DEFINE_MUTEX", 1);
    let Some(at) = def.find(raw.as_str()) else { return Err(refuse(format!("cannot read the definition of `{raw}`"))) };
    let mut def = format!("{}{new}{}", &def[..at], &def[at + raw.len()..]);
    // Writers in other files see the mutex through the header that
    // declares the lock they already hold.
    let mut decl_edits = Vec::new();
    if walks.writers.iter().any(|w| w.path != raw_path) {
        let Some((hpath, hline_end)) = extern_declaration(input, a0, &walks.writer_locks) else {
            return Err(refuse(format!(
                "the writers of {} outside {raw_path} cannot see `{new}`: no header declares {} extern to \
                 declare it next to",
                names(&walks.heads, false),
                names(&walks.writer_locks, false)
            )));
        };
        def = def.trim_start().strip_prefix("static ").map(str::to_string).unwrap_or(def);
        decl_edits.push(Edit::insert(&hpath, hline_end, format!("extern struct mutex {new};\n")));
    }
    let mut handled: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    handled.entry(raw_path.clone()).or_default().insert(raw_global.name_span.start as usize);
    let calls = rewrite_references(input, &raw, &new, &mut handled)?;
    all_references_handled(input, &raw, &handled)?;
    let mut code_edits = vec![Edit::replace(&raw_path, ds, de, def)];
    code_edits.extend(decl_edits);
    code_edits.extend(calls);
    for w in &walks.writers {
        code_edits.extend(wrap_writer(input, w, &new)?);
    }

    // locking.rst.
    let hotplug_call = holders.hotplug_call.clone().unwrap_or_else(|| super::hotplug_lock::READ_LOCK.to_string());
    let mut outside: Vec<String> = Vec::new();
    if holders.inside_hotplug {
        outside.push(format!("{hotplug_call}()"));
    }
    outside.extend(walks.writer_locks.iter().cloned());
    let doc_edits = document(input, &raw, &new, &count, &walks, &outside)?;
    let doc_touched = !doc_edits.is_empty();
    let mut edits = code_edits.clone();
    edits.extend(doc_edits);

    // The lock-order check: this design must close no cycle.
    let cycles = introduced_cycles(input.tree, input.api, input.findings, &edits).map_err(refuse)?;
    if let Some(c) = cycles.first() {
        return Err(refuse(format!(
            "replacing `{raw}` with the mutex `{new}` would close a lock-order cycle: {}",
            describe_cycle(c)
        )));
    }
    // What reusing the existing mutex would do, for the commit message.
    let existing = find_mutex(input, a0, &raw, raw_file).ok();
    let existing_cycle = match &existing {
        Some(m) => {
            let mut handled = BTreeMap::new();
            let mut alt = rewrite_references(input, &raw, m, &mut handled)?;
            let (ls, le) = whole_lines(src, ds, de);
            alt.push(Edit::delete(&raw_path, ls, le));
            introduced_cycles(input.tree, input.api, input.findings, &alt).ok().and_then(|c| c.into_iter().next())
        }
        None => None,
    };

    let mut removes: Vec<String> = input
        .findings
        .findings
        .iter()
        .filter(|f| f.rule == "HW006" && f.symbols.first().is_some_and(|s| s == &raw))
        .map(|f| f.fingerprint.clone())
        .collect();
    removes.extend(
        input
            .findings
            .findings
            .iter()
            .filter(|f| {
                f.rule == "HW001"
                    && walks.walkers.contains(&f.function)
                    && f.symbols.first().is_some_and(|h| walks.heads.contains(h))
            })
            .map(|f| f.fingerprint.clone()),
    );

    let body = message(
        &raw,
        &new,
        &count,
        &holders,
        &hotplug_call,
        &walks,
        existing.as_deref(),
        existing_cycle.as_ref(),
        doc_touched,
    );
    Ok(Change {
        subject: format!("KVM: Use a dedicated mutex to protect {count}"),
        body: wrap(body.trim_end(), 72),
        edits,
        removes,
    })
}

/// The commit message: what, the lock order and why, what it avoids.
#[allow(clippy::too_many_arguments)]
fn message(
    raw: &str,
    new: &str,
    count: &str,
    holders: &Holders,
    hotplug_call: &str,
    walks: &ProtectedWalks,
    existing: Option<&str>,
    existing_cycle: Option<&analyzer::rules::Finding>,
    doc_touched: bool,
) -> String {
    let mut body = format!(
        "Replace the raw spinlock {raw} with a mutex of its own, {new}, to protect {count}.\n\n\
         {raw} is a raw spinlock only because some of its holders used to be CPU hotplug callbacks of \
         the atomic STARTING section. They now run in the ONLINE section, in process context, so none of \
         its holders ({}) is atomic any more, and enabling or disabling virtualization on all CPUs may \
         sleep.\n\n",
        names(&holders.names, true)
    );
    if holders.inside_hotplug {
        body.push_str(&format!(
            "Lock order: the hotplug callbacks run with {HOTPLUG_LOCK} held for write and take {new}, and the \
             paths that enable or disable virtualization on all CPUs take {hotplug_call}() before it, so \
             {hotplug_call}() is always taken outside {new}. Nothing is taken or waited for with {new} held, \
             so it cannot be part of a circular dependency. The callbacks stay registered for as long as KVM \
             is loaded and test {count}, which is why its lock nests inside {HOTPLUG_LOCK}; the opposite \
             order would need them registered only while {count} is non-zero.\n\n"
        ));
    }
    if let Some(m) = existing {
        body.push_str(&format!(
            "Do not reuse {m}, as the review suggested: the hotplug callbacks would take it with \
             {HOTPLUG_LOCK} held, which orders everything {m}'s other holders take or wait for inside \
             {HOTPLUG_LOCK}."
        ));
        match existing_cycle {
            Some(c) => body.push_str(&format!(
                " Here that closes a circular dependency, a deadlock once a CPU comes online at the wrong time: \
                 {}.\n\n",
                describe_cycle(c)
            )),
            None => body.push_str("\n\n"),
        }
    }
    if !walks.writers.is_empty() {
        let writers: BTreeSet<String> = walks.writers.iter().map(|w| w.function.clone()).collect();
        body.push_str(&format!(
            "{} walk{} {} with {new} held but not {}, when a CPU comes online or virtualization is enabled \
             on all CPUs. So that the list cannot change under {}, its writers ({}) take {new} as well, inside \
             {}: {} is changed with both locks held and may be walked with either.\n\n",
            names(&walks.walkers, true),
            if walks.walkers.len() == 1 { "s" } else { "" },
            names(&walks.heads, false),
            names(&walks.writer_locks, false),
            if walks.walkers.len() == 1 { "it" } else { "them" },
            names(&writers, true),
            names(&walks.writer_locks, false),
            names(&walks.heads, false),
        ));
    }
    if doc_touched {
        body.push_str(&format!(
            "Update Documentation/virt/kvm/locking.rst: the {raw} entry (its rationale, atomicity with respect \
             to migration, no longer applies) becomes the {new} entry, and the acquisition order is \
             documented.\n\n"
        ));
    }
    body
}

/// Visual column of byte `pos` on its line (tabs to multiples of 8).
fn column(src: &[u8], pos: usize) -> usize {
    let mut col = 0;
    for &b in &src[line_start(src, pos)..pos] {
        col = if b == b'\t' { (col / 8 + 1) * 8 } else { col + 1 };
    }
    col
}

/// Whitespace from visual column `from` to column `to` (tabs, then spaces).
fn pad(from: usize, to: usize) -> String {
    let mut out = String::new();
    let mut col = from;
    while (col / 8 + 1) * 8 <= to {
        out.push('\t');
        col = (col / 8 + 1) * 8;
    }
    out.push_str(&" ".repeat(to.saturating_sub(col)));
    if out.is_empty() {
        out.push(' ');
    }
    out
}

/// Edits of locking.rst: the raw lock's entry becomes the new mutex's, and
/// the acquisition orders (`outside` are taken outside the new mutex) are
/// stated before the first documented common order. Nothing when the tree
/// has no locking.rst.
fn document(
    input: &TransformInput<'_>,
    raw: &str,
    new: &str,
    count: &str,
    walks: &ProtectedWalks,
    outside: &[String],
) -> Result<Vec<Edit>, Refusal> {
    let Some(doc) = input.tree.locking.as_ref() else { return Ok(Vec::new()) };
    let src = file_bytes(input.tree, LOCKING_RST);
    let line_offsets: Vec<usize> =
        std::iter::once(0).chain(src.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1)).collect();
    let off = |line: u32| line_offsets.get(line.saturating_sub(1) as usize).copied().unwrap_or(src.len());
    let Some(i) = doc.locks.iter().position(|l| l.name == raw) else {
        return Err(refuse(format!("locking.rst has no entry for `{raw}` to turn into the entry for `{new}`")));
    };
    let entry = &doc.locks[i];
    let start = off(entry.line);
    let end = match doc.locks.get(i + 1) {
        Some(next) => off(next.line),
        None => src.len(),
    };
    let text = text_of(src, start, end);
    // The column the field values start at, and the :Arch: value, as the entry has them.
    let field = |name: &str| text.lines().find(|l| l.starts_with(name)).map(str::to_string);
    let value_col = field(":Type:")
        .and_then(|l| {
            let n = ":Type:".len() + l[":Type:".len()..].chars().take_while(|c| c.is_whitespace()).count();
            let k = start + text.find(&l)? + n;
            Some(column(src, k))
        })
        .unwrap_or(16);
    let arch = field(":Arch:").map(|l| l[":Arch:".len()..].trim().to_string()).unwrap_or_else(|| "any".into());
    let title = format!("``{new}``");
    let mut e = format!("{title}\n{}\n\n", "^".repeat(title.len()));
    e.push_str(&format!(":Type:{}mutex\n", pad(":Type:".len(), value_col)));
    e.push_str(&format!(":Arch:{}{arch}\n", pad(":Arch:".len(), value_col)));
    let mut items = vec![count.to_string()];
    items.extend(entry.protects.iter().filter(|p| *p != count).cloned());
    for h in &walks.heads {
        items.push(format!("{h} changes, together with {}", names(&walks.writer_locks, false)));
    }
    for (k, it) in items.iter().enumerate() {
        if k == 0 {
            e.push_str(&format!(":Protects:{}- {it}\n", pad(":Protects:".len(), value_col)));
        } else {
            e.push_str(&format!("{}- {it}\n", pad(0, value_col)));
        }
    }
    let mut comment = format!(
        "A mutex of its own: the CPU hotplug callbacks take it with {HOTPLUG_LOCK} held for write, and \
         nothing is taken or waited for while it is held."
    );
    if !walks.heads.is_empty() {
        comment.push_str(&format!(
            " {} is changed with {} and {new} held, so it may be walked with either.",
            names(&walks.heads, false),
            names(&walks.writer_locks, false)
        ));
    }
    for (k, l) in wrap(&comment, 80 - value_col).lines().enumerate() {
        if k == 0 {
            e.push_str(&format!(":Comment:{}{l}\n", pad(":Comment:".len(), value_col)));
        } else {
            e.push_str(&format!("{}{l}\n", pad(0, value_col)));
        }
    }
    // Keep the blank line that separated the entry from the next one.
    if text.ends_with("\n\n") {
        e.push('\n');
    }
    let mut edits = vec![Edit::replace(LOCKING_RST, start, end, e)];
    // The acquisition orders, before the first documented common order.
    let mut orders = String::new();
    for o in outside {
        let bare = o.trim_end_matches("()");
        let stated = doc.orderings.iter().any(|d| d.inner == new && (d.outer == *o || d.outer == bare));
        if !stated {
            orders.push_str(&format!("- {o} is taken outside {new}\n\n"));
        }
    }
    if !orders.is_empty() {
        match doc.orderings.iter().find(|o| o.arch.is_none()) {
            Some(first) => edits.push(Edit::insert(LOCKING_RST, off(first.line), orders)),
            None => return Err(refuse("locking.rst states no acquisition order to add the new mutex's next to")),
        }
    }
    Ok(edits)
}
