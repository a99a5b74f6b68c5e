//! Model queries shared by rules: facts classified through the API model
//! (list operations and walks, lock acquisitions, per-CPU and cpumask
//! accesses) with the lock state at each site, and the questions rules ask
//! of reach states (is this lock held or serializing here? may other CPUs
//! run? is this atomic?).

use crate::api::{ApiModel, ListOpKind, LockEffect};
use crate::contexts::{Analysis, Reach};
use crate::facts::{Arg, Callee, Span};
use crate::graph::FnId;
use crate::locks::{call_lock_op, HeldLock, LockState, OccurrenceKind};

/// The struct member named by an entry argument: `&kvm->vm_list` -> `vm_list`.
pub fn member_of(arg: &Arg) -> Option<String> {
    let text = arg.ident.as_deref().unwrap_or(&arg.text);
    let t = text.trim().trim_start_matches('&');
    let last = t.rsplit(['.', '>']).next()?.trim();
    if last.is_empty() || last == t {
        None
    } else {
        Some(last.to_string())
    }
}

/// A global identifier named by an argument (`&vm_list` -> `vm_list`),
/// when it is a global of the program.
pub fn global_of(a: &Analysis<'_>, arg: &Arg) -> Option<String> {
    let name = arg.ident.as_deref()?;
    if a.program.globals.contains_key(name) {
        Some(name.to_string())
    } else {
        None
    }
}

/// A list add or delete with its place and lock state.
#[derive(Debug, Clone)]
pub struct ListWrite {
    pub function: FnId,
    pub span: Span,
    pub op: ListOpKind,
    pub call: String,
    /// The global list head, when the call names it (adds do).
    pub head: Option<String>,
    /// The member linking entries (`vm_list` of `&kvm->vm_list`).
    pub member: Option<String>,
    pub state: LockState,
}

/// A walk of a global list by an iterator macro.
#[derive(Debug, Clone)]
pub struct ListWalk {
    pub function: FnId,
    pub span: Span,
    pub macro_name: String,
    pub head: String,
    pub member: Option<String>,
    pub state: LockState,
}

/// All list adds and deletes in the program.
pub fn list_writes(a: &Analysis<'_>) -> Vec<ListWrite> {
    let api = a.api;
    let mut out = Vec::new();
    for (&id, locks) in &a.locks {
        for o in &locks.occurrences {
            let OccurrenceKind::Call(c) = o.kind else { continue };
            let Callee::Direct(name) = &c.callee else { continue };
            let Some(op) = api.list_op(name) else { continue };
            let member = c.args.get(op.entry_arg).and_then(member_of);
            let head = op.head_arg.and_then(|i| c.args.get(i)).and_then(|arg| global_of(a, arg));
            out.push(ListWrite {
                function: id,
                span: c.span,
                op: op.op,
                call: name.clone(),
                head,
                member,
                state: o.state.clone(),
            });
        }
    }
    // Deletes name only the member: give them the head their member is
    // added to elsewhere.
    let adds: Vec<(String, String)> = out
        .iter()
        .filter_map(|w| Some((w.member.clone()?, w.head.clone()?)))
        .collect();
    for w in out.iter_mut().filter(|w| w.head.is_none()) {
        if let Some(m) = &w.member {
            if let Some((_, h)) = adds.iter().find(|(am, _)| am == m) {
                w.head = Some(h.clone());
            }
        }
    }
    out.sort_by_key(|w| (w.function, w.span.start));
    out
}

/// All walks of global lists in the program.
pub fn list_walks(a: &Analysis<'_>) -> Vec<ListWalk> {
    let api = a.api;
    let mut out = Vec::new();
    for (&id, locks) in &a.locks {
        for o in &locks.occurrences {
            let OccurrenceKind::Iterate { span, macro_name, args } = o.kind else { continue };
            let Some(it) = api.list_iterator(macro_name) else { continue };
            let Some(head) = args.get(it.head_arg).and_then(|arg| global_of(a, arg)) else { continue };
            let member_idx = if it.member_arg < 0 {
                args.len().checked_sub(it.member_arg.unsigned_abs() as usize)
            } else {
                Some(it.member_arg as usize)
            };
            let member = member_idx.and_then(|i| args.get(i)).map(|m| m.text.trim().to_string());
            out.push(ListWalk {
                function: id,
                span,
                macro_name: macro_name.to_string(),
                head,
                member,
                state: o.state.clone(),
            });
        }
    }
    out.sort_by_key(|w| (w.function, w.span.start));
    out
}

/// A lock acquisition site.
#[derive(Debug, Clone)]
pub struct LockSite {
    pub function: FnId,
    pub span: Span,
    pub lock: HeldLock,
    pub call: String,
    pub state: LockState,
}

/// Every acquisition of every lock in the program.
pub fn lock_acquisitions(a: &Analysis<'_>) -> Vec<LockSite> {
    let mut out = Vec::new();
    for (&id, locks) in &a.locks {
        for o in &locks.occurrences {
            let OccurrenceKind::Call(c) = o.kind else { continue };
            if let Some((LockEffect::Acquire, lock, _)) = call_lock_op(a.api, c) {
                out.push(LockSite {
                    function: id,
                    span: c.span,
                    lock,
                    call: c.callee.display(),
                    state: o.state.clone(),
                });
            }
        }
    }
    out.sort_by_key(|s| (s.function, s.span.start));
    out
}

/// Whether `lock` is held on this CPU (must) at a site reached this way.
pub fn held_at(reach: &Reach, site: &LockState, lock: &str) -> bool {
    reach.key.held_must.contains_name(lock) || site.must.contains_name(lock)
}

/// Whether `lock` excludes its other holders here: held on this CPU, or held
/// by an initiator waiting for this code (or by the hotplug machinery).
pub fn excluded_by(reach: &Reach, site: &LockState, lock: &str) -> bool {
    held_at(reach, site, lock) || reach.key.serialized_by.contains_name(lock)
}

/// Whether code reached this way runs while other CPUs may run code.
pub fn other_cpus_run(api: &ApiModel, reach: &Reach) -> bool {
    api.context(&reach.key.context).map(|c| c.other_cpus_run).unwrap_or(true)
}

/// Why code reached this way must not sleep: the atomic context, or an
/// atomic lock held (must) on entry or at the site. `None` when it may sleep.
pub fn atomic_reason(api: &ApiModel, reach: &Reach, site: &LockState) -> Option<String> {
    if let Some(c) = api.context(&reach.key.context) {
        if c.atomic {
            return Some(format!("{} context", reach.key.context));
        }
    }
    for l in reach.key.held_must.iter().chain(site.must.iter()) {
        if api.lock_kind(&l.kind).map(|k| k.atomic).unwrap_or(false) {
            return Some(format!("{} ({}) held", l.name, l.kind));
        }
    }
    None
}

/// Whether a function's file is arch code.
pub fn is_arch(a: &Analysis<'_>, id: FnId) -> bool {
    crate::enable_path::is_arch_path(&a.program.file(id).path)
}
