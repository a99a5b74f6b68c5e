//! # HW007 sleep-in-atomic
//!
//! ## What it finds
//! A call that may sleep, reachable from code that must not sleep. Sleeping
//! calls come from the API model: the acquisition of a lock whose kind
//! sleeps (`mutex_lock()`, `down_read()`, `cpus_read_lock()`; not the
//! `*_trylock()` variants) and the model's sleeping calls (`msleep()`,
//! `synchronize_rcu()`, `vmalloc()`, allocators passed a sleeping GFP flag;
//! an allocator whose flags are a variable is not judged). Atomic code is
//! an atomic execution context (IPI callback, CPU hotplug STARTING section,
//! syscore, CPU PM notifier, stop_machine) or an atomic lock (spinlock, raw
//! spinlock, preemption or interrupts disabled, RCU read side) that is
//! definitely held on every path to the site: on entry along the witness
//! path or in the function before the call. Locks released before the call
//! do not count, nor locks held on only some paths.
//!
//! One finding per (function, sleeping site), with the shortest path from a
//! root that makes it atomic.
//!
//! ## Why is this bad?
//! Sleeping in atomic context is a bug the kernel catches only at run time
//! (`BUG: sleeping function called from invalid context`), and only when
//! the path is taken. The review thread plans to "drop kvm_count_lock and
//! instead protect kvm_usage_count with kvm_lock": a mutex. That is only
//! correct once the CPU hotplug callbacks that take it have moved out of
//! the STARTING section, which runs on the incoming CPU with interrupts
//! off. A careless refactor that swaps the lock first takes a mutex in
//! atomic context on every CPU online.
//!
//! ## Example
//! ```c
//! static int foo_cpu_starting(unsigned int cpu)    /* CPUHP_AP_FOO_STARTING */
//! {
//!     mutex_lock(&foo_users_lock);        /* sleeps, interrupts are off */
//!     if (foo_users)
//!         foo_cpu_enable();
//!     mutex_unlock(&foo_users_lock);
//!     return 0;
//! }
//! ```
//!
//! ## Fix
//! Move the callback to a context that may sleep (the ONLINE hotplug
//! section, a work item), or keep a non-sleeping lock there (a raw
//! spinlock), or allocate with `GFP_ATOMIC` / outside the atomic region.

use std::collections::BTreeMap;

use super::queries::atomic_reason;
use super::{find_rule, Finding, RuleInput};
use crate::api::LockEffect;
use crate::contexts::{Analysis, Reach};
use crate::facts::{CallSite, Callee, Event, Span, Stmt};
use crate::graph::FnId;
use crate::locks::{call_lock_op, HeldLock, LockState, OccurrenceKind};

/// What makes a call sleep, for the message; `None` when it does not.
fn sleeps(a: &Analysis<'_>, site: &CallSite) -> Option<String> {
    let api = a.api;
    let Callee::Direct(name) = &site.callee else { return None };
    if let Some((LockEffect::Acquire, lock, definitely)) = call_lock_op(api, site) {
        // A trylock never sleeps.
        if !definitely {
            return None;
        }
        if api.lock_kind(&lock.kind).map(|k| k.sleeps).unwrap_or(false) {
            return Some(format!("takes the {} `{}`", lock.kind, lock.name));
        }
        return None;
    }
    let args: Vec<&str> = site.args.iter().map(|a| a.text.as_str()).collect();
    if api.is_gfp_allocator(name) {
        // Flags passed in a variable are the caller's business.
        if !args.iter().any(|t| t.contains("GFP_")) {
            return None;
        }
        if api.call_may_sleep(name, &args) {
            let flags = args.iter().find(|t| t.contains("GFP_")).copied().unwrap_or("");
            return Some(format!("allocates with `{}`", flags.trim()));
        }
        return None;
    }
    if api.call_may_sleep(name, &args) {
        return Some("is a sleeping call".to_string());
    }
    None
}

/// Whether the call at `span` sits in a conditional branch of `stmts`
/// (an `if` arm, a `switch`, a loop body): taken on some executions only.
fn conditional_in(stmts: &[Stmt], span: Span, nested: bool) -> Option<bool> {
    let inside = |s: Span| s.start <= span.start && span.end <= s.end;
    for st in stmts {
        match st {
            Stmt::Simple { span: s, .. } | Stmt::Return { span: s, .. } if inside(*s) => return Some(nested),
            Stmt::Block(b) if inside(b.span) => return conditional_in(&b.stmts, span, nested),
            Stmt::If { cond, then_branch, else_branch, .. } => {
                if cond.iter().any(|e| matches!(e, Event::Call(c) if c.span == span)) {
                    return Some(nested);
                }
                if inside(then_branch.span) {
                    return conditional_in(&then_branch.stmts, span, true);
                }
                if let Some(e) = else_branch.as_ref().filter(|e| inside(e.span)) {
                    return conditional_in(&e.stmts, span, true);
                }
            }
            Stmt::Loop { body, .. } | Stmt::Switch { body, .. } if inside(body.span) => {
                return conditional_in(&body.stmts, span, true)
            }
            Stmt::ScopedGuard { body, .. } if inside(body.span) => return conditional_in(&body.stmts, span, nested),
            Stmt::Preproc { branches, .. } => {
                if let Some(b) = branches.iter().find(|b| inside(b.body.span)) {
                    return conditional_in(&b.body.stmts, span, nested);
                }
            }
            _ => {}
        }
    }
    None
}

/// Why the site must not sleep along reach `r`, judged precisely: an atomic
/// context (anywhere up the path), an atomic lock held in the function
/// itself before the call, or one taken by the direct caller around an
/// unconditional call. Atomic locks taken further up are not trusted: the
/// calls in between are often made only when the caller may sleep
/// (`if (!atomic)`, "already initialized" checks), which the call graph does
/// not see.
fn precise_reason(a: &Analysis<'_>, id: FnId, r: &Reach, site: &LockState, at: Span) -> Option<String> {
    let api = a.api;
    let why = atomic_reason(api, r, site)?;
    if let Some(c) = api.context(&r.key.context).filter(|c| c.atomic) {
        let _ = why;
        let root = &a.roots[r.key.root];
        if root.context == r.key.context {
            return Some(format!("`{}()` runs as a {}", root.function_name, c.description));
        }
        // The context switched on the way (a cross-CPU call): name the switch.
        let mut cur = Some(r);
        while let Some(x) = cur {
            if let Some(v) = &x.via {
                return Some(format!("it runs as an {} through `{v}`", c.description));
            }
            cur = x.parent.and_then(|(f, i, _)| a.reaches(f).get(i));
        }
        return Some(format!("it runs as {}", c.description));
    }
    let atomic = |l: &HeldLock| api.lock_kind(&l.kind).map(|k| k.atomic).unwrap_or(false);
    if let Some(l) = site.must.iter().find(|l| atomic(l)) {
        return Some(format!("`{}` ({}) held", l.name, l.kind));
    }
    // Held on entry: only from the direct caller.
    let (caller, cri, call_span) = r.parent?;
    let parent = a.reaches(caller).get(cri)?;
    // A lock the function releases before the site (`write_unlock(); cond_resched();
    // write_lock();`) is not held there.
    let released_before = |name: &str| {
        a.locks[&id].occurrences.iter().any(|o| match o.kind {
            OccurrenceKind::Call(c) if c.span.start < at.start => {
                matches!(call_lock_op(api, c), Some((LockEffect::Release, l, _)) if l.name == name)
            }
            _ => false,
        })
    };
    let l = r
        .key
        .held_must
        .iter()
        .find(|l| atomic(l) && !parent.key.held_must.contains_name(&l.name) && !released_before(&l.name))?;
    let conditional = conditional_in(&a.program.func(caller).body.stmts, call_span, false).unwrap_or(true);
    if conditional {
        return None;
    }
    Some(format!("`{}` ({}) held by the caller `{}()`", l.name, l.kind, a.program.func(caller).name))
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW007") else { return Vec::new() };
    let a = input.analysis;
    let mut out = Vec::new();
    let mut ids: Vec<_> = a.locks.keys().copied().collect();
    ids.sort();
    for id in ids {
        let reaches = a.reaches(id);
        if reaches.is_empty() {
            continue;
        }
        let locks = &a.locks[&id];
        // One finding per site (a site can occur once per #if branch).
        let mut seen: BTreeMap<u32, ()> = BTreeMap::new();
        for occ in &locks.occurrences {
            let OccurrenceKind::Call(site) = occ.kind else { continue };
            let Some(what) = sleeps(a, site) else { continue };
            if seen.insert(site.span.start, ()).is_some() {
                continue;
            }
            // The shortest atomic reach (reaches are breadth-first ordered,
            // but states of different roots interleave: pick by depth).
            let best = reaches
                .iter()
                .enumerate()
                .filter_map(|(i, r)| precise_reason(a, id, r, &occ.state, site.span).map(|why| (r.depth, i, why)))
                .min_by_key(|(d, i, _)| (*d, *i));
            let Some((_, ri, why)) = best else { continue };
            let r = &reaches[ri];
            let root = &a.roots[r.key.root];
            let callee = site.callee.display();
            let message = format!(
                "`{callee}()` {what}, which may sleep, in atomic context: {why} (root `{}()`, {})",
                root.function_name, root.origin
            );
            out.push(Finding::new(
                info,
                input,
                id,
                site.span.line,
                site.span.col,
                message,
                a.witness(id, ri, Some(site.span)),
                vec![callee, what],
            ));
        }
    }
    out
}
