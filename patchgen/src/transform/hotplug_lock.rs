//! Series step 3: disable CPU hotplug while enabling/disabling
//! virtualization on all CPUs.
//!
//! HW004 reports broadcasts to the online CPUs (`on_each_cpu()`) that run
//! without the CPU hotplug lock while a hotplug callback maintains the same
//! per-CPU state. For each reported site the transformation finds the
//! function that takes the locks held there (walking up the callers when
//! the reported function runs under its callers' lock), and takes
//! `cpus_read_lock()` before the outermost of those locks and releases it
//! after each release (upstream commit e4aa7f88af1a's shape). The lock may
//! sleep, so every place it is introduced is checked to be reached only
//! in sleepable context with no atomic lock held.

use std::collections::BTreeMap;

use analyzer::api::LockEffect;
use analyzer::contexts::Analysis;
use analyzer::graph::FnId;
use analyzer::locks::{call_lock_op, LockState, OccurrenceKind};
use analyzer::rules::queries::atomic_reason;

use super::util::{alone_on_lines, and_list, file_bytes, indent_at, line_end_incl, line_start, wrap};
use super::{Change, Refusal, TransformInput};
use crate::edit::Edit;

pub const SLUG: &str = "hotplug-lock";
const NAME: &str = "disable CPU hotplug during enable/disable on all CPUs";

/// The hotplug lock's name in the API model and the calls taking it for read.
pub(crate) const HOTPLUG_LOCK: &str = "cpu_hotplug_lock";
pub(crate) const READ_LOCK: &str = "cpus_read_lock";
const READ_UNLOCK: &str = "cpus_read_unlock";

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal { transformation: NAME, reason: reason.into() }
}

/// Locks held (must) at the first call of `id` at `line` (1-based).
fn state_at_line(a: &Analysis<'_>, id: FnId, line: u32) -> Option<LockState> {
    let locks = a.locks.get(&id)?;
    locks.occurrences.iter().find_map(|o| match o.kind {
        OccurrenceKind::Call(c) if c.span.line == line => Some(o.state.clone()),
        _ => None,
    })
}

fn state_at_start(a: &Analysis<'_>, id: FnId, start: u32) -> Option<LockState> {
    let locks = a.locks.get(&id)?;
    locks.occurrences.iter().find_map(|o| match o.kind {
        OccurrenceKind::Call(c) if c.span.start == start => Some(o.state.clone()),
        _ => None,
    })
}

/// The functions to wrap for a broadcast site in `id` with lock state
/// `state`: `id` itself when it takes the locks held there (or none are
/// held), else its callers, recursively.
fn targets(a: &Analysis<'_>, id: FnId, state: &LockState, out: &mut Vec<(FnId, Option<String>)>, depth: u32) {
    if depth > 8 {
        return;
    }
    if let Some(first) = first_acquisition(a, id, state) {
        if !out.contains(&(id, Some(first.clone()))) {
            out.push((id, Some(first)));
        }
        return;
    }
    let callers = a.program.callers.get(&id).cloned().unwrap_or_default();
    let mut any = false;
    for (c, ei) in callers {
        let site = a.program.calls[&c][ei].site;
        let Some(st) = state_at_start(a, c, site.span.start) else { continue };
        if st.must.iter().next().is_none() {
            continue;
        }
        any = true;
        targets(a, c, &st, out, depth + 1);
    }
    if !any && !out.iter().any(|(t, _)| *t == id) {
        out.push((id, None));
    }
}

/// The lock among those held at `state` that `id` itself acquires first.
fn first_acquisition(a: &Analysis<'_>, id: FnId, state: &LockState) -> Option<String> {
    let locks = a.locks.get(&id)?;
    locks.occurrences.iter().find_map(|o| {
        let OccurrenceKind::Call(c) = o.kind else { return None };
        match call_lock_op(a.api, c) {
            Some((LockEffect::Acquire, l, _)) if state.must.contains_name(&l.name) => Some(l.name),
            _ => None,
        }
    })
}

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let tree = input.tree;
    let findings: Vec<_> = input.findings.findings.iter().filter(|f| f.rule == "HW004").collect();
    if findings.is_empty() {
        return Err(refuse(
            "enable/disable broadcasts already run under cpu_hotplug_lock (HW004 reports no broadcast to the online \
             CPUs racing with a hotplug callback)",
        ));
    }
    // Group the findings by the arch whose analysis can see them.
    let first_arch = tree.arches().into_iter().next().flatten();
    let mut by_arch: BTreeMap<Option<String>, Vec<_>> = BTreeMap::new();
    for f in &findings {
        let arch = if f.arch == "common" { first_arch.clone() } else { Some(f.arch.clone()) };
        by_arch.entry(arch).or_default().push(*f);
    }
    let mut edits = Vec::new();
    let mut wrapped: Vec<String> = Vec::new();
    let mut locks_inside: Vec<String> = Vec::new();
    let mut broadcasters: Vec<String> = Vec::new();
    for (arch, fs) in by_arch {
        let a = tree.analyze(arch.as_deref(), input.api);
        let p = &a.program;
        let mut all: Vec<(FnId, Option<String>)> = Vec::new();
        for f in fs {
            let id = p.lookup_any(&f.function).into_iter().find(|&id| p.file(id).path == f.file);
            let Some(id) = id else {
                return Err(refuse(format!("{}() of the HW004 finding is not in {}", f.function, f.file)));
            };
            let Some(state) = state_at_line(&a, id, f.line) else {
                return Err(refuse(format!("no call at {}:{} in {}()", f.file, f.line, f.function)));
            };
            if !broadcasters.contains(&format!("{}()", f.function)) {
                broadcasters.push(format!("{}()", f.function));
            }
            targets(&a, id, &state, &mut all, 0);
        }
        all.sort();
        all.dedup();
        for (t, lock) in all {
            let func = p.func(t);
            let path = p.file(t).path.clone();
            let src = file_bytes(tree, &path);
            // cpus_read_lock() sleeps: every way into `t` must allow it.
            for (ri, r) in a.reaches(t).iter().enumerate() {
                if let Some(why) = atomic_reason(a.api, r, &LockState::default()) {
                    let w: Vec<String> = a.witness(t, ri, None).iter().map(|s| format!("{}()", s.function)).collect();
                    return Err(refuse(format!(
                        "{}() is reached in atomic context ({why}: {}), where {READ_LOCK}() may not sleep",
                        func.name,
                        w.join(" -> ")
                    )));
                }
                if r.key.held_must.contains_name(HOTPLUG_LOCK) {
                    return Err(refuse(format!("{}() already runs under {HOTPLUG_LOCK}", func.name)));
                }
            }
            let locks = &a.locks[&t];
            let (lock_start, unlock_ends): (usize, Vec<usize>) = match &lock {
                Some(l) => {
                    let mut acq = None;
                    let mut rel = Vec::new();
                    for o in &locks.occurrences {
                        let OccurrenceKind::Call(c) = o.kind else { continue };
                        match call_lock_op(a.api, c) {
                            Some((LockEffect::Acquire, hl, _)) if &hl.name == l && acq.is_none() => {
                                if let Some(why) =
                                    o.state.must.iter().find(|h| a.api.lock_kind(&h.kind).is_some_and(|k| k.atomic))
                                {
                                    return Err(refuse(format!(
                                        "{}() holds {} ({}) where {l} is taken, where {READ_LOCK}() may not sleep",
                                        func.name, why.name, why.kind
                                    )));
                                }
                                acq = Some(c.span);
                            }
                            Some((LockEffect::Release, hl, _)) if &hl.name == l => rel.push(c.span),
                            _ => {}
                        }
                    }
                    let Some(acq) = acq else { return Err(refuse(format!("{}() does not take {l}", func.name))) };
                    if rel.is_empty() {
                        return Err(refuse(format!("{}() does not release {l}", func.name)));
                    }
                    for sp in rel.iter().chain(std::iter::once(&acq)) {
                        let e = sp.end as usize;
                        if src.get(e) != Some(&b';') || !alone_on_lines(src, sp.start as usize, e + 1) {
                            return Err(refuse(format!("a lock call of {l} in {}() shares its line", func.name)));
                        }
                    }
                    if !locks_inside.contains(l) {
                        locks_inside.push(l.clone());
                    }
                    (acq.start as usize, rel.iter().map(|s| s.end as usize + 1).collect())
                }
                None => {
                    // No lock held: wrap the broadcast statements themselves.
                    let f = findings.iter().find(|f| f.function == func.name).expect("own finding");
                    let Some(c) = locks.occurrences.iter().find_map(|o| match o.kind {
                        OccurrenceKind::Call(c) if c.span.line == f.line => Some(c),
                        _ => None,
                    }) else {
                        return Err(refuse("cannot find the broadcast call"));
                    };
                    let e = c.span.end as usize;
                    if src.get(e) != Some(&b';') || !alone_on_lines(src, c.span.start as usize, e + 1) {
                        return Err(refuse(format!("the broadcast in {}() shares its line", func.name)));
                    }
                    (c.span.start as usize, vec![e + 1])
                }
            };
            let ind = indent_at(src, lock_start);
            edits.push(Edit::insert(&path, line_start(src, lock_start), format!("{ind}{READ_LOCK}();\n")));
            for e in unlock_ends {
                let ind = indent_at(src, e);
                edits.push(Edit::insert(&path, line_end_incl(src, e), format!("{ind}{READ_UNLOCK}();\n")));
            }
            wrapped.push(format!("{}()", func.name));
        }
    }
    let removes: Vec<String> = findings.iter().map(|f| f.fingerprint.clone()).collect();
    let w = and_list(&wrapped);
    let inside = if locks_inside.is_empty() {
        String::new()
    } else {
        format!(
            " It is taken outside {}: {READ_LOCK}() may sleep, so it must be taken before the spinlock and \
             released after it.",
            locks_inside.join(", ")
        )
    };
    let body = format!(
        "{b} broadcast to the online CPUs with on_each_cpu() while the hotplug callbacks enable and disable \
         virtualization on CPUs coming online or going offline, maintaining the same per-CPU state. Nothing \
         keeps the set of online CPUs stable meanwhile: a CPU going online after the broadcast started but \
         before its callback ran can miss the broadcast, or be handled by both, and one going offline can \
         be left with virtualization enabled.\n\n\
         Disable CPU hotplug with {READ_LOCK}() in {w}.{inside} The hotplug callbacks run with \
         {HOTPLUG_LOCK} held for write, so they are now serialized against the broadcasts.\n\n\
         This removes HW004 (hotplug-unsafe-broadcast) for {b}.",
        b = and_list(&broadcasters),
    );
    let subject = "KVM: Disable CPU hotplug during hardware enabling/disabling".to_string();
    Ok(Change { subject, body: wrap(&body, 72), edits, removes })
}
