//! Series step 4: drop the raw spinlock that guards the usage count and
//! protect the count with the mutex that already guards the VM list.
//!
//! The lock is the raw spinlock HW006 reports (6.1: `kvm_count_lock`), or,
//! when no HW006 finding names one, the raw spinlock of common code taken
//! by a CPU hotplug callback. The mutex that takes over is the one HW006
//! names, else the lock held by every writer of a global list in the same
//! file (6.1: `kvm_lock`, the writers' lock of `vm_list`).
//!
//! Preconditions: no holder of the raw spinlock runs in an atomic context
//! (STARTING section, IPI, syscore, under another spinlock) — a lock that
//! may sleep is never introduced where the path is still atomic, so on 6.1
//! this refuses until the hotplug callbacks moved to the ONLINE section;
//! the mutex is not already held where the spinlock is taken; every
//! reference to the spinlock is a plain lock/unlock or a lockdep assertion
//! (anything else would not compile once the definition is gone).
//!
//! Edits: `raw_spin_lock(&L)` -> `mutex_lock(&M)`, `raw_spin_unlock(&L)` ->
//! `mutex_unlock(&M)`, other calls naming `&L` (lockdep assertions) get
//! `&M`; the definition of `L` is removed; locking.rst loses `L`'s entry,
//! `M`'s `:Protects:` gains the data written under `L` and what `L`'s entry
//! protected, and, when the code takes the CPU hotplug lock outside `L`,
//! the acquisition order "cpus_read_lock() is taken outside M" is
//! documented (HW013 stays quiet).

use std::collections::{BTreeMap, BTreeSet};

use analyzer::api::LockEffect;
use analyzer::contexts::Analysis;
use analyzer::facts::{AccessKind, Callee, Global};
use analyzer::graph::{visit_calls, FnId};
use analyzer::locks::{call_lock_op, OccurrenceKind};
use analyzer::pipeline::LOCKING_RST;
use analyzer::rules::queries::{atomic_reason, held_at, list_writes, lock_acquisitions};

use super::util::{file_bytes, ident_uses, line_start, text_of, whole_lines, wrap};
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

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let analyses = input.tree.analyze_all(input.api);
    let Some(a0) = analyses.first() else { return Err(refuse("the tree has no code to analyze")) };
    let raw = find_raw_lock(input, &analyses)?;
    let Some((raw_file, raw_global)) = common_global(a0, &raw) else {
        return Err(refuse(format!("`{raw}` is not defined in common code")));
    };
    let mutex = find_mutex(input, a0, &raw, raw_file)?;
    let raw_path = a0.program.files[raw_file as usize].path.clone();

    // Every holder may sleep: no acquisition in an atomic context, and the
    // mutex is not already held there.
    let mut cpus_outside = false;
    let mut hotplug_lock_call: Option<String> = None;
    for a in &analyses {
        for s in lock_acquisitions(a).into_iter().filter(|s| s.lock.name == raw) {
            let func = a.program.func(s.function);
            let path = &a.program.file(s.function).path;
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
                         so `{raw}` cannot become `{mutex}` while this holder is atomic (move the CPU hotplug \
                         callbacks to the ONLINE section first)",
                        func.name, path, s.span.line, root.function_name, root.origin
                    )));
                }
                if held_at(r, &s.state, &mutex) {
                    return Err(refuse(format!(
                        "{}() ({}:{}) takes `{raw}` with `{mutex}` already held: replacing it would self-deadlock",
                        func.name, path, s.span.line
                    )));
                }
                if held_at(r, &s.state, "cpu_hotplug_lock") {
                    cpus_outside = true;
                }
            }
            // The call that takes the CPU hotplug lock in this function, for the document.
            if hotplug_lock_call.is_none() {
                visit_calls(&func.body.stmts, &mut |c| {
                    if let Some((LockEffect::Acquire, l, _)) = call_lock_op(input.api, c) {
                        if l.name == "cpu_hotplug_lock" && hotplug_lock_call.is_none() {
                            hotplug_lock_call = Some(c.callee.display());
                        }
                    }
                });
            }
        }
    }

    // The data written under the raw lock (for locking.rst).
    let mut guarded: BTreeSet<String> = BTreeSet::new();
    for (id, locks) in &a0.locks {
        for o in &locks.occurrences {
            let OccurrenceKind::Access(acc) = o.kind else { continue };
            if acc.kind != AccessKind::Write || common_global(a0, &acc.name).is_none() {
                continue;
            }
            let under = o.state.must.contains_name(&raw) || a0.reaches(*id).iter().any(|r| held_at(r, &o.state, &raw));
            if under {
                guarded.insert(acc.name.clone());
            }
        }
    }

    // Rewrite every reference to the raw lock.
    let mut edits: Vec<Edit> = Vec::new();
    let mut handled: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut holders: BTreeSet<String> = BTreeSet::new();
    for file in &input.tree.files {
        for func in &file.functions {
            let mut problem: Option<String> = None;
            visit_calls(&func.body.stmts, &mut |c| {
                let Some(arg) = c.args.iter().find(|a| a.ident.as_deref() == Some(raw.as_str())) else { return };
                let Callee::Direct(name) = &c.callee else { return };
                handled
                    .entry(file.path.clone())
                    .or_default()
                    .insert(arg.span.start as usize + arg.text.find(&raw).unwrap_or(0));
                let new_arg =
                    Edit::replace(&file.path, arg.span.start as usize, arg.span.end as usize, format!("&{mutex}"));
                match call_lock_op(input.api, c) {
                    Some((LockEffect::Acquire, _, _)) if name == "raw_spin_lock" => {
                        edits.push(Edit::replace(
                            &file.path,
                            c.callee_span.start as usize,
                            c.callee_span.end as usize,
                            "mutex_lock",
                        ));
                        edits.push(new_arg);
                        holders.insert(func.name.clone());
                    }
                    Some((LockEffect::Release, _, _)) if name == "raw_spin_unlock" => {
                        edits.push(Edit::replace(
                            &file.path,
                            c.callee_span.start as usize,
                            c.callee_span.end as usize,
                            "mutex_unlock",
                        ));
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
    // The definition goes; any other reference would not compile.
    let src = file_bytes(input.tree, &raw_path);
    let (ds, de) = whole_lines(src, raw_global.span.start as usize, raw_global.span.end as usize);
    edits.push(Edit::delete(&raw_path, ds, de));
    handled.entry(raw_path.clone()).or_default().insert(raw_global.name_span.start as usize);
    for f in &input.tree.source.files {
        if !(f.path.ends_with(".c") || f.path.ends_with(".h")) {
            continue;
        }
        for at in ident_uses(&f.bytes, 0, f.bytes.len(), &raw) {
            if !handled.get(&f.path).is_some_and(|h| h.contains(&at)) {
                let line = f.bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(refuse(format!(
                    "{}:{line} refers to `{raw}` in a way this transformation does not rewrite",
                    f.path
                )));
            }
        }
    }

    // locking.rst.
    let doc_edits = document(input, &raw, &mutex, &guarded, cpus_outside.then_some(hotplug_lock_call).flatten())?;
    let doc_touched = !doc_edits.is_empty();
    edits.extend(doc_edits);

    let removes: Vec<String> = input
        .findings
        .findings
        .iter()
        .filter(|f| f.rule == "HW006" && f.symbols.iter().any(|s| s == &raw))
        .map(|f| f.fingerprint.clone())
        .collect();

    let data = guarded.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ");
    let data = if data.is_empty() { "the usage count".to_string() } else { data };
    let holders = holders.into_iter().map(|h| format!("{h}()")).collect::<Vec<_>>().join(", ");
    let mut body = format!(
        "Drop `{raw}` and protect {data} with `{mutex}` instead.\n\n\
         `{raw}` is a raw spinlock only because one of its holders used to run \
         in the atomic STARTING section of CPU hotplug. The hotplug callbacks now \
         run in the ONLINE section, in process context, so none of the holders \
         ({holders}) is atomic any more and the existing mutex `{mutex}` can \
         protect the count. Enabling and disabling virtualization on all CPUs may \
         then sleep, and the VM list and the usage count are serialized by one \
         lock, which the next patches rely on to hand the usage count to \
         architecture code when a VM is added to the list.\n\n"
    );
    if doc_touched {
        body.push_str(&format!(
            "Update Documentation/virt/kvm/locking.rst: remove the `{raw}` entry \
             (its rationale, atomicity with respect to migration, no longer \
             applies), list what `{mutex}` now protects{}.\n\n",
            if cpus_outside { ", and document that cpus_read_lock() is taken outside it" } else { "" }
        ));
    }
    if !removes.is_empty() {
        body.push_str(&format!("Removes: HW006 atomic-only-lock (`{raw}`).\n"));
    }
    Ok(Change {
        subject: format!("KVM: Drop {raw} and protect the usage count with {mutex}"),
        body: wrap(body.trim_end(), 72),
        edits,
        removes,
    })
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

/// Edits of locking.rst: drop the raw lock's entry, extend the mutex's.
fn document(
    input: &TransformInput<'_>,
    raw: &str,
    mutex: &str,
    guarded: &BTreeSet<String>,
    hotplug_call: Option<String>,
) -> Result<Vec<Edit>, Refusal> {
    let Some(doc) = input.tree.locking.as_ref() else { return Ok(Vec::new()) };
    let src = file_bytes(input.tree, LOCKING_RST);
    let line_offsets: Vec<usize> =
        std::iter::once(0).chain(src.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1)).collect();
    let off = |line: u32| line_offsets.get(line.saturating_sub(1) as usize).copied().unwrap_or(src.len());
    let mut edits = Vec::new();
    let raw_entry = doc.locks.iter().position(|l| l.name == raw);
    let mut also_protects: Vec<String> = Vec::new();
    if let Some(i) = raw_entry {
        let l = &doc.locks[i];
        let start = off(l.line);
        let end = match doc.locks.get(i + 1) {
            Some(next) => off(next.line),
            None => src.len(),
        };
        edits.push(Edit::delete(LOCKING_RST, start, end));
        also_protects.extend(l.protects.iter().cloned());
    }
    let Some(m) = doc.locks.iter().find(|l| l.name == mutex) else {
        return Err(refuse(format!("locking.rst has no entry for `{mutex}` to extend")));
    };
    let mut items: Vec<String> = guarded.iter().filter(|g| !m.protects.iter().any(|p| p == *g)).cloned().collect();
    for p in also_protects {
        if !m.protects.contains(&p) && !items.contains(&p) {
            items.push(p);
        }
    }
    // The `:Protects:` field of the mutex's entry and its continuation lines.
    let entry_start = off(m.line);
    let entry_end = doc.locks.iter().find(|l| l.line > m.line).map(|l| off(l.line)).unwrap_or(src.len());
    let text = text_of(src, entry_start, entry_end);
    let Some(p) = text.find(":Protects:") else {
        return Err(refuse(format!("locking.rst: the `{mutex}` entry has no :Protects: field")));
    };
    let field_at = entry_start + p;
    let first_line_end = super::util::line_end_incl(src, field_at);
    let mut last_end = first_line_end;
    // Continuation lines: indented, non-empty, not a new field.
    loop {
        let next_end = super::util::line_end_incl(src, last_end);
        let line = text_of(src, last_end, next_end);
        if next_end <= last_end
            || line.trim().is_empty()
            || !line.starts_with([' ', '\t'])
            || line.trim_start().starts_with(':')
        {
            break;
        }
        last_end = next_end;
    }
    let item_col = src[field_at + ":Protects:".len()..first_line_end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| column(src, field_at + ":Protects:".len() + i))
        .unwrap_or(16);
    let mut add = String::new();
    for it in &items {
        add.push_str(&format!("{}- {it}\n", pad(0, item_col)));
    }
    let has_comment = text.contains(":Comment:");
    if let (Some(call), false) = (&hotplug_call, has_comment) {
        let comment = format!(
            "CPU hotplug is disabled with {call}(), taken outside {mutex}, while hardware \
             virtualization is enabled or disabled on all CPUs."
        );
        let width = 80 - item_col;
        for (k, l) in wrap(&comment, width).lines().enumerate() {
            if k == 0 {
                add.push_str(&format!(":Comment:{}{l}\n", pad(":Comment:".len(), item_col)));
            } else {
                add.push_str(&format!("{}{l}\n", pad(0, item_col)));
            }
        }
    }
    if !add.is_empty() {
        edits.push(Edit::insert(LOCKING_RST, last_end, add));
    }
    // The acquisition order, before the first documented common order.
    if let Some(call) = hotplug_call {
        let stated =
            doc.orderings.iter().any(|o| o.inner == mutex && (o.outer == call || o.outer == "cpu_hotplug_lock"));
        if !stated {
            if let Some(first) = doc.orderings.iter().find(|o| o.arch.is_none()) {
                edits.push(Edit::insert(
                    LOCKING_RST,
                    off(first.line),
                    format!("- {call}() is taken outside {mutex}\n\n"),
                ));
            }
        }
    }
    Ok(edits)
}
