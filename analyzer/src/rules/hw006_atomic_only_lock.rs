//! # HW006 atomic-only-lock
//!
//! ## What it finds
//! A global raw spinlock (`DEFINE_RAW_SPINLOCK`, taken with
//! `raw_spin_lock*()`) whose atomicity is needed only because some of its
//! holders are CPU hotplug callbacks of the atomic STARTING section: every
//! other holder runs in a context that may sleep (no atomic context, no
//! atomic lock held on entry or at the acquisition). The finding names the
//! data the raw spinlock guards (globals accessed only under it, apart from
//! contexts in which no other CPU runs), the lock's entry in
//! `Documentation/virt/kvm/locking.rst`, and the lock that can replace it:
//! a dedicated mutex, ordered inside the CPU hotplug lock, since the
//! hotplug callbacks take it with that lock held for write. It does not
//! recommend an existing mutex of those paths (a mutex held at every other
//! acquisition, or taken by the holders or their callers): the callbacks
//! would then take it under the hotplug lock, which orders everything its
//! other holders take or wait for inside the hotplug lock; the finding
//! names such a mutex as the one not to reuse.
//!
//! A raw spinlock that any other atomic context takes (an IPI callback, a
//! holder under another spinlock or with interrupts off) is legitimate and
//! not reported.
//!
//! ## Why is this bad?
//! The review thread on `kvm_count_lock`: "Drop kvm_count_lock and instead
//! protect kvm_usage_count with kvm_lock and cpu_read_lock()", and the
//! reply: "Agreed spinlock should/can be removed/replaced. It seems there's
//! no need to use spinlock." (Upstream did exactly that in 6.3 and had to
//! undo half of it in 44d17459626, "KVM: Use dedicated mutex to protect
//! kvm_usage_count to avoid deadlock": with the hotplug callbacks taking
//! `kvm_lock` under `cpu_hotplug_lock`, x86 closed cpu_hotplug_lock ->
//! kvm_lock -> kvm->slots_lock -> kvm->srcu -> cpu_hotplug_lock.) A raw
//! spinlock makes every holder atomic: the
//! process-context holders cannot sleep, allocate or take a mutex under
//! it, all to accommodate one callback that could as well run in the ONLINE
//! section. locking.rst justified it with "'raw' because hardware
//! enabling/disabling must be atomic /wrt migration", which upstream later
//! called wrong when it dropped the lock.
//!
//! ## Example
//! ```c
//! static DEFINE_RAW_SPINLOCK(foo_count_lock);
//! static int foo_users;
//!
//! static int foo_cpu_starting(unsigned int cpu)    /* CPUHP_AP_FOO_STARTING */
//! {
//!     raw_spin_lock(&foo_count_lock);
//!     if (foo_users)
//!         foo_cpu_enable(NULL);
//!     raw_spin_unlock(&foo_count_lock);
//!     return 0;
//! }
//!
//! static int foo_get(void)        /* from an ioctl, may sleep */
//! {
//!     raw_spin_lock(&foo_count_lock);
//!     if (!foo_users++)
//!         on_each_cpu(foo_cpu_enable, NULL, 1);
//!     raw_spin_unlock(&foo_count_lock);
//!     return 0;
//! }
//! ```
//! while `foo_create_guest()`, which calls `foo_get()`, takes the mutex
//! `foo_guests_lock` (which the finding says not to reuse).
//!
//! ## Fix
//! Move the hotplug callbacks to the ONLINE section (process context), then
//! protect the data with a dedicated mutex instead of the raw spinlock,
//! taken inside `cpus_read_lock()` wherever both are held (the callbacks
//! hold the hotplug lock for write), with nothing taken or waited for under
//! it; drop the raw spinlock and update locking.rst (the new entry and the
//! acquisition order).

use std::collections::{BTreeMap, BTreeSet};

use super::queries::{atomic_reason, excluded_by, lock_acquisitions, LockSite};
use super::{find_rule, Finding, Related, RuleInput};
use crate::api::ApiModel;
use crate::contexts::Analysis;
use crate::facts::AccessKind;
use crate::graph::FnId;
use crate::locks::OccurrenceKind;
use crate::pipeline::LOCKING_RST;

/// The API model's lock kind of raw spinlocks.
const RAW_KIND: &str = "raw_spinlock";
/// How far up the callers of a holder the search for a mutex goes.
const CALLER_DEPTH: usize = 2;

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW006") else { return Vec::new() };
    let a = input.analysis;
    let api = a.api;
    let hotplug_locks: BTreeSet<String> = api
        .table
        .contexts
        .iter()
        .filter(|(n, _)| n.starts_with("cpuhp_"))
        .flat_map(|(_, c)| c.serialized_by.iter().cloned())
        .collect();
    let sites = lock_acquisitions(a);
    let mut by_lock: BTreeMap<&str, Vec<&LockSite>> = BTreeMap::new();
    for s in &sites {
        by_lock.entry(s.lock.name.as_str()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (&lock, holders) in &by_lock {
        if !holders.iter().all(|s| s.lock.kind == RAW_KIND) || !a.program.globals.contains_key(lock) {
            continue;
        }
        // Classify every reach of every acquisition.
        let mut hotplug: Vec<(&LockSite, usize)> = Vec::new();
        let mut sleepable: Vec<(&LockSite, usize)> = Vec::new();
        let mut other_atomic = false;
        for &s in holders {
            for (ri, r) in a.reaches(s.function).iter().enumerate() {
                let ctx = api.context(&r.key.context);
                let atomic_ctx = ctx.is_some_and(|c| c.atomic);
                if atomic_ctx && r.key.context.starts_with("cpuhp_") {
                    hotplug.push((s, ri));
                } else if atomic_reason(api, r, &s.state).is_some() {
                    other_atomic = true;
                } else {
                    sleepable.push((s, ri));
                }
            }
        }
        // Also reported once no holder is atomic at all (the callbacks moved
        // to the ONLINE section): the lock is then raw for nothing, and the
        // finding keeps its identity until the lock is replaced.
        if other_atomic || sleepable.is_empty() {
            continue;
        }
        // Hotplug callbacks that already run where they may sleep (ONLINE)
        // would take the mutex once the raw spinlock goes: the candidates
        // come from the other holders.
        let non_hotplug: Vec<(&LockSite, usize)> = sleepable
            .iter()
            .copied()
            .filter(|(s, ri)| !a.reaches(s.function)[*ri].key.context.starts_with("cpuhp_"))
            .collect();
        let from = if non_hotplug.is_empty() { &sleepable } else { &non_hotplug };
        let (mutexes, scope) = candidate_mutexes(a, api, from, &hotplug_locks);
        let guarded = guarded_data(a, lock);
        let hotplug_fns: BTreeSet<&str> =
            hotplug.iter().map(|(s, _)| a.program.func(s.function).name.as_str()).collect();
        let sleepable_fns: BTreeSet<&str> =
            sleepable.iter().map(|(s, _)| a.program.func(s.function).name.as_str()).collect();
        let sections: BTreeSet<&str> =
            hotplug.iter().map(|(s, ri)| section_name(&a.reaches(s.function)[*ri].key.context)).collect();
        let list = |names: &BTreeSet<&str>| names.iter().map(|n| format!("`{n}()`")).collect::<Vec<_>>().join(", ");
        let protected = if guarded.is_empty() {
            format!("what `{lock}` protects")
        } else {
            guarded.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
        };
        let hotplug_lock = hotplug_locks.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
        let hotplug_lock = if hotplug_lock.is_empty() { "the CPU hotplug lock".to_string() } else { hotplug_lock };
        let replacement = format!(
            "a dedicated mutex can protect {protected} instead, ordered inside {hotplug_lock} (the hotplug callbacks hold it for write) with nothing taken under it"
        );
        let not_reuse = match mutexes.first() {
            Some(m) => format!("; not `{m}`, already taken on those paths: the callbacks would take it under {hotplug_lock}, ordering everything its other holders take or wait for inside {hotplug_lock}"),
            None => String::new(),
        };
        let message = if hotplug.is_empty() {
            format!(
                "raw spinlock `{lock}` is taken only where sleeping is allowed ({}): nothing needs it to be atomic; {replacement}{not_reuse}",
                list(&sleepable_fns),
            )
        } else {
            format!(
                "raw spinlock `{lock}` is atomic only for its holders in the {} hotplug section ({}); every other holder ({}) may sleep. With the callbacks in the ONLINE section, {replacement}{not_reuse}",
                sections.into_iter().collect::<Vec<_>>().join("/"),
                list(&hotplug_fns),
                list(&sleepable_fns),
            )
        };
        let mut related = Vec::new();
        for (s, ri) in hotplug.iter().chain(sleepable.iter()) {
            let r = &a.reaches(s.function)[*ri];
            related.push(Related {
                file: a.program.file(s.function).path.clone(),
                line: s.span.line,
                col: s.span.col,
                message: format!(
                    "`{}()` takes `{lock}` in {} context{}",
                    a.program.func(s.function).name,
                    r.key.context,
                    if r.key.held_must.is_empty() { String::new() } else { format!(" with {} held", r.key.held_must) }
                ),
            });
        }
        related.dedup();
        if let Some(mutex) = mutexes.first() {
            for m in sites.iter().filter(|s| s.lock.name == *mutex && scope.contains(&s.function)) {
                related.push(Related {
                    file: a.program.file(m.function).path.clone(),
                    line: m.span.line,
                    col: m.span.col,
                    message: format!(
                        "mutex `{mutex}` taken here in `{}()` (not to be reused for this data)",
                        a.program.func(m.function).name
                    ),
                });
            }
        }
        if let Some(doc) = input.locking_doc.and_then(|d| d.lock(lock)) {
            related.push(Related {
                file: LOCKING_RST.to_string(),
                line: doc.line,
                col: 1,
                message: if doc.comment.is_empty() {
                    format!("documented as `{}`", doc.lock_type)
                } else {
                    format!("documented as `{}`: \"{}\"", doc.lock_type, doc.comment)
                },
            });
        }
        let (first, fri) = hotplug.first().or(sleepable.first()).copied().expect("a holder");
        let (gfi, g) = a.program.globals[lock][0];
        // The lock and its data: the finding is about them, not about
        // which lock the message recommends.
        let mut symbols = vec![lock.to_string()];
        symbols.extend(guarded.iter().cloned());
        let mut f = Finding::new(
            info,
            input,
            first.function,
            g.name_span.line,
            g.name_span.col,
            message,
            a.witness(first.function, fri, Some(first.span)),
            symbols,
        )
        .with_related(related);
        // The finding sits on the lock's definition, and is identified by the
        // lock rather than by whichever holder came first: moving or renaming
        // the hotplug callbacks keeps it the same finding.
        f.file = a.program.files[gfi as usize].path.clone();
        f.fingerprint = super::fingerprint(info.id, &f.arch, lock, &f.symbols);
        out.push(f);
    }
    out
}

fn section_name(context: &str) -> &str {
    match context {
        "cpuhp_starting" => "STARTING",
        "cpuhp_prepare" => "PREPARE",
        "cpuhp_online" => "ONLINE",
        other => other,
    }
}

/// Sleeping global locks that could protect what the raw spinlock protects:
/// first those held at every sleepable acquisition (they already serialize
/// those paths), then those taken in every holder function or its callers
/// (up to `CALLER_DEPTH` levels). The CPU hotplug lock is no candidate: the
/// hotplug callbacks run under it.
fn candidate_mutexes(
    a: &Analysis<'_>,
    api: &ApiModel,
    sleepable: &[(&LockSite, usize)],
    hotplug_locks: &BTreeSet<String>,
) -> (Vec<String>, BTreeSet<FnId>) {
    let sleeps = |kind: &str| api.lock_kind(kind).is_some_and(|k| k.sleeps);
    let global = |n: &str| !n.contains("->") && !n.contains('.') && a.program.globals.contains_key(n);
    let usable = |name: &str, kind: &str| sleeps(kind) && global(name) && !hotplug_locks.contains(name);
    // Held everywhere already.
    let mut held: Option<BTreeSet<String>> = None;
    for (s, ri) in sleepable {
        let r = &a.reaches(s.function)[*ri];
        let here: BTreeSet<String> = r
            .key
            .held_must
            .iter()
            .chain(s.state.must.iter())
            .filter(|l| usable(&l.name, &l.kind))
            .map(|l| l.name.clone())
            .collect();
        held = Some(match held {
            None => here,
            Some(h) => h.intersection(&here).cloned().collect(),
        });
    }
    let mut out: Vec<String> = held.unwrap_or_default().into_iter().collect();
    // Taken nearby on every path.
    let mut near: Option<BTreeSet<String>> = None;
    let mut all_scope = BTreeSet::new();
    let functions: BTreeSet<FnId> = sleepable.iter().map(|(s, _)| s.function).collect();
    for f in functions {
        let mut scope = BTreeSet::from([f]);
        let mut frontier = vec![f];
        for _ in 0..CALLER_DEPTH {
            let mut next = Vec::new();
            for id in frontier {
                for (caller, _) in a.program.callers.get(&id).into_iter().flatten() {
                    if scope.insert(*caller) {
                        next.push(*caller);
                    }
                }
            }
            frontier = next;
        }
        let mut taken = BTreeSet::new();
        all_scope.extend(scope.iter().copied());
        for id in scope {
            for o in a.locks.get(&id).map(|l| l.occurrences.as_slice()).unwrap_or(&[]) {
                let OccurrenceKind::Call(c) = o.kind else { continue };
                if let Some((crate::api::LockEffect::Acquire, l, _)) = crate::locks::call_lock_op(api, c) {
                    if usable(&l.name, &l.kind) {
                        taken.insert(l.name);
                    }
                }
            }
        }
        near = Some(match near {
            None => taken,
            Some(n) => n.intersection(&taken).cloned().collect(),
        });
    }
    for n in near.unwrap_or_default() {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    (out, all_scope)
}

/// Globals accessed only under `lock` (held on this CPU, or held by an
/// initiator waiting for this code), apart from accesses in contexts where no
/// other CPU runs; at least one access under it, and written (or passed by
/// address) somewhere. Per-CPU variables are not shared data.
fn guarded_data(a: &Analysis<'_>, lock: &str) -> Vec<String> {
    // Per global: (every access guarded, some access under the lock, written).
    let mut seen: BTreeMap<String, (bool, bool, bool)> = BTreeMap::new();
    for (&id, locks) in &a.locks {
        let reaches = a.reaches(id);
        for o in &locks.occurrences {
            let OccurrenceKind::Access(acc) = o.kind else { continue };
            let name = acc.name.as_str();
            let Some(defs) = a.program.globals.get(name) else { continue };
            if name == lock
                || defs.iter().any(|(_, g)| g.define_macro.as_deref().is_some_and(|m| a.api.is_percpu_define(m)))
            {
                continue;
            }
            let locked = if reaches.is_empty() {
                o.state.must.contains_name(lock)
            } else {
                reaches.iter().all(|r| excluded_by(r, &o.state, lock))
            };
            let alone = !reaches.is_empty()
                && reaches.iter().all(|r| {
                    excluded_by(r, &o.state, lock) || a.api.context(&r.key.context).is_some_and(|c| !c.other_cpus_run)
                });
            let e = seen.entry(name.to_string()).or_insert((true, false, false));
            e.0 = e.0 && (locked || alone);
            e.1 = e.1 || locked;
            e.2 = e.2 || acc.kind != AccessKind::Read;
        }
    }
    seen.into_iter().filter(|(_, (all, some, written))| *all && *some && *written).map(|(n, _)| n).collect()
}
