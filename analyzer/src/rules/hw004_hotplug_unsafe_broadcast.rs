//! # HW004 hotplug-unsafe-broadcast
//!
//! ## What it finds
//! A broadcast to the online CPUs (`on_each_cpu()`, `smp_call_function()`,
//! a cross-CPU call given `cpu_online_mask`, or a `for_each_online_cpu()`
//! loop making per-CPU calls) made without the CPU hotplug lock
//! (`cpus_read_lock()`, held on entry or at the site, or by the hotplug
//! machinery around a hotplug callback), whose callback reaches per-CPU state
//! that a CPU hotplug callback also maintains: the callback and a hotplug
//! startup or teardown callback reach a common function that reads or
//! writes per-CPU data (a per-CPU variable, a cpumask indexed by CPU) or is
//! the per-CPU enable/disable primitive.
//!
//! Not reported:
//! - broadcasts on the way down of a reboot after CPU hotplug is disabled
//!   (a context with `system_shutdown` in the API model: syscore
//!   `.shutdown`, which runs after `migrate_to_reboot_cpu()`); reboot
//!   notifiers run before that, with hotplug still enabled, and are
//!   reported like any other context;
//! - broadcasts in contexts where no other CPU runs (syscore, stop machine);
//! - hotplug callbacks that cannot run at the time of the broadcast: their
//!   state was removed (`cpuhp_remove_state*()`) before the broadcast on
//!   every path, or the broadcast's root registers them only later on the
//!   same path (module init broadcasting before `cpuhp_setup_state*()`).
//!
//! ## Why is this bad?
//! The targets of a broadcast are the CPUs in the online mask at the time of
//! the call. A CPU whose hotplug callback has already run (and found nothing
//! to do) but which is not yet marked online is left out; a CPU marked online
//! whose callback has not run yet is handled twice, concurrently. The review
//! thread on the hardware enabling path: "needs to prevent CPUs from going
//! on/off-line when KVM is enabling hardware", which upstream did with
//! "KVM: Disable CPU hotplug during hardware enabling/disabling".
//!
//! ## Example
//! ```c
//! static int foo_get_all(void)
//! {
//!     raw_spin_lock(&foo_users_lock);
//!     if (!foo_users++)
//!         on_each_cpu(foo_cpu_enable, NULL, 1);    /* hotplug not held */
//!     raw_spin_unlock(&foo_users_lock);
//!     return 0;
//! }
//!
//! static int foo_cpu_starting(unsigned int cpu)    /* CPUHP_AP_FOO_STARTING */
//! {
//!     raw_spin_lock(&foo_users_lock);
//!     if (foo_users)
//!         foo_cpu_enable(NULL);
//!     raw_spin_unlock(&foo_users_lock);
//!     return 0;
//! }
//! ```
//! A CPU that ran `foo_cpu_starting()` while `foo_users` was 0, but is not
//! yet in `cpu_online_mask` when `foo_get_all()` broadcasts, never enables.
//!
//! ## Fix
//! Hold `cpus_read_lock()` around the broadcast (outside the lock that
//! guards the usage count, which the hotplug callback takes), or let the
//! hotplug machinery do the broadcast: `cpuhp_setup_state()` runs the
//! startup callback on every online CPU under the hotplug lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::{find_rule, Finding, Related, RuleInput};
use crate::api::ApiModel;
use crate::contexts::{Analysis, Reach, Root};
use crate::facts::{CallSite, Callee, Span, Stmt};
use crate::graph::FnId;
use crate::locks::{LockState, OccurrenceKind};

use super::queries::excluded_by;

/// How deep the search for a common function goes from each side.
const MAX_DEPTH: u32 = 8;

/// One broadcast site.
struct Broadcast<'a> {
    function: FnId,
    span: Span,
    /// `on_each_cpu(hardware_enable_nolock)`, `for_each_online_cpu + smp_call_function_single(f)`.
    what: String,
    /// The kind of broadcast (a cross-CPU call to the online CPUs, or a
    /// loop over them), for the fingerprint: `on_each_cpu(f)` and
    /// `on_each_cpu_mask(cpu_online_mask, f)` are one, and never the
    /// callback's name.
    primitive: String,
    callbacks: Vec<FnId>,
    state: &'a LockState,
}

/// A hotplug callback with its registration.
struct HotplugCallback<'r> {
    root: &'r Root,
    /// The `enum cpuhp_state` value as written.
    state: String,
    /// The function holding the registration call and its span.
    registered_in: Option<(FnId, Span)>,
    /// Calls removing the state.
    removals: Vec<String>,
    /// Functions reachable from the callback, with their depth.
    reachable: HashMap<FnId, u32>,
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW004") else { return Vec::new() };
    let a = input.analysis;
    let api = a.api;
    let hotplug_locks = hotplug_locks(api);
    if hotplug_locks.is_empty() {
        return Vec::new();
    }
    let callbacks = hotplug_callbacks(a);
    if callbacks.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for b in broadcasts(a) {
        let reaches = a.reaches(b.function);
        let mut reported = false;
        for (ri, r) in reaches.iter().enumerate() {
            if reported {
                break;
            }
            let Some(ctx) = api.context(&r.key.context) else { continue };
            if !ctx.other_cpus_run || ctx.system_shutdown {
                continue;
            }
            if hotplug_locks.iter().any(|l| excluded_by(r, b.state, l)) {
                continue;
            }
            let path = path_of(a, b.function, ri, b.span);
            // The first callback sharing state with a live hotplug callback.
            let mut best: Option<(u32, FnId, &HotplugCallback<'_>)> = None;
            for cb in &callbacks {
                if !is_live(a, cb, &path) {
                    continue;
                }
                for &c in &b.callbacks {
                    let from_cb = reachable_from(a, c);
                    for (&g, &d) in &from_cb {
                        if !cb.reachable.contains_key(&g) || !touches_percpu_state(input, g) {
                            continue;
                        }
                        let better = match &best {
                            None => true,
                            Some((bd, bg, _)) => {
                                (d, a.program.func(g).name.as_str()) < (*bd, a.program.func(*bg).name.as_str())
                            }
                        };
                        if better {
                            best = Some((d, g, cb));
                        }
                    }
                }
            }
            let Some((_, shared, cb)) = best else { continue };
            let state_names = percpu_state_names(a, shared);
            let state_desc = if state_names.is_empty() {
                format!("`{}()`", a.program.func(shared).name)
            } else {
                format!(
                    "`{}()` ({})",
                    a.program.func(shared).name,
                    state_names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                )
            };
            let section = section_of(&cb.root.context);
            let message = format!(
                "`{}` targets the online CPUs without `{}` held, while hotplug callback `{}()` ({}{}) maintains the same per-CPU state through {}: a CPU coming online or going offline meanwhile can be left out of the broadcast",
                b.what,
                hotplug_locks.iter().next().map(String::as_str).unwrap_or("cpu_hotplug_lock"),
                cb.root.function_name,
                cb.state,
                section.map(|s| format!(", {s} section")).unwrap_or_default(),
                state_desc,
            );
            let mut related = Vec::new();
            if let Some((file, span)) = &cb.root.registered_at {
                related.push(Related {
                    file: file.clone(),
                    line: span.line,
                    col: span.col,
                    message: format!(
                        "`{}()` registered here as the {} callback of `{}`",
                        cb.root.function_name,
                        cb.root.role.as_deref().unwrap_or("hotplug"),
                        cb.state
                    ),
                });
            }
            let sf = a.program.func(shared);
            related.push(Related {
                file: a.program.file(shared).path.clone(),
                line: sf.name_span.line,
                col: sf.name_span.col,
                message: format!(
                    "`{}()` is reached both from the broadcast and from `{}()`",
                    sf.name, cb.root.function_name
                ),
            });
            // What it is about: the broadcast primitive, the hotplug side it
            // races with (startup or teardown, not the callback's name nor its
            // section: moving the callbacks, as the series does, is no fix),
            // and the context broadcasting. Neither function names nor the
            // per-CPU state's name: renaming the callback, extracting a
            // helper or changing how the state is kept (a cpumask becoming a
            // per-CPU flag) keeps the finding; two broadcasts alike in one
            // file are told apart by their order (`distinct_fingerprints`).
            let symbols = vec![
                b.primitive.clone(),
                format!("hotplug {}", cb.root.role.as_deref().unwrap_or("callback")),
                format!("from {}", r.key.context),
            ];
            out.push(
                Finding::new(
                    info,
                    input,
                    b.function,
                    b.span.line,
                    b.span.col,
                    message,
                    a.witness(b.function, ri, Some(b.span)),
                    symbols,
                )
                .with_related(related),
            );
            reported = true;
        }
    }
    out
}

/// The locks the hotplug machinery holds around hotplug callbacks (from the
/// API model's hotplug contexts).
fn hotplug_locks(api: &ApiModel) -> BTreeSet<String> {
    api.table
        .contexts
        .iter()
        .filter(|(name, _)| name.starts_with("cpuhp_"))
        .flat_map(|(_, c)| c.serialized_by.iter().cloned())
        .collect()
}

fn section_of(context: &str) -> Option<&'static str> {
    match context {
        "cpuhp_prepare" => Some("PREPARE"),
        "cpuhp_starting" => Some("STARTING"),
        "cpuhp_online" => Some("ONLINE"),
        _ => None,
    }
}

/// Every hotplug root with its registration and what it reaches.
fn hotplug_callbacks<'r>(a: &'r Analysis<'_>) -> Vec<HotplugCallback<'r>> {
    let mut out = Vec::new();
    for root in a.roots.iter().filter(|r| r.context.starts_with("cpuhp_")) {
        let mut state = String::new();
        let mut registered_in = None;
        let mut removals = Vec::new();
        if let Some((_, span)) = &root.registered_at {
            if let Some(e) = a.callback_edges.iter().find(|e| e.callee == root.function && e.span == *span) {
                registered_in = Some((e.caller, e.span));
                if let Some(reg) = a.api.registration(&e.via) {
                    if let Some(site) = call_at(a, e.caller, e.span) {
                        if let Some(arg) = reg.cpuhp_state_arg.and_then(|i| site.args.get(i)) {
                            state = arg.text.trim().to_string();
                        }
                    }
                }
                removals = a.api.undo_of(&e.via);
            }
        }
        out.push(HotplugCallback { root, state, registered_in, removals, reachable: reachable_from(a, root.function) });
    }
    out
}

fn call_at<'a>(a: &Analysis<'a>, f: FnId, span: Span) -> Option<&'a CallSite> {
    let mut found = None;
    crate::graph::visit_calls(&a.program.func(f).body.stmts, &mut |c| {
        if c.span == span && found.is_none() {
            found = Some(c);
        }
    });
    found
}

/// Functions reachable by direct and resolved calls, with their depth.
fn reachable_from(a: &Analysis<'_>, start: FnId) -> HashMap<FnId, u32> {
    let mut seen = HashMap::new();
    let mut queue = VecDeque::new();
    seen.insert(start, 0);
    queue.push_back(start);
    while let Some(id) = queue.pop_front() {
        let d = seen[&id];
        if d >= MAX_DEPTH {
            continue;
        }
        for e in a.program.calls.get(&id).into_iter().flatten() {
            if let std::collections::hash_map::Entry::Vacant(v) = seen.entry(e.callee) {
                v.insert(d + 1);
                queue.push_back(e.callee);
            }
        }
    }
    seen
}

/// Every broadcast to the online CPUs in the program, in a stable order.
fn broadcasts<'a>(a: &'a Analysis<'a>) -> Vec<Broadcast<'a>> {
    let api = a.api;
    let mut ids: Vec<FnId> = a.locks.keys().copied().collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let locks = &a.locks[&id];
        // Online-CPU loops of this function: loop span -> the CPU variable.
        let mut loops: BTreeMap<Span, (String, String)> = BTreeMap::new();
        for o in &locks.occurrences {
            if let OccurrenceKind::Iterate { span, macro_name, args } = o.kind {
                if api.is_online_cpu_iterator(macro_name) {
                    let var = args.first().map(|x| x.text.trim().to_string()).unwrap_or_default();
                    loops.insert(span, (macro_name.to_string(), var));
                }
            }
        }
        for o in &locks.occurrences {
            let OccurrenceKind::Call(c) = o.kind else { continue };
            let Callee::Direct(name) = &c.callee else { continue };
            let args: Vec<&str> = c.args.iter().map(|x| x.text.as_str()).collect();
            let in_loop = o.loops.iter().rev().find_map(|s| loops.get(s));
            let reg = api.registration(name).filter(|r| r.context.as_deref() == Some("ipi"));
            let (what, primitive, cb_names): (String, String, Vec<String>) = if api.is_online_broadcast(name, &args) {
                let Some(reg) = reg else { continue };
                let names: Vec<String> =
                    reg.callback_args.iter().filter_map(|&i| c.args.get(i)?.ident.clone()).collect();
                (format!("{name}({})", names.join(", ")), "cross-CPU call".to_string(), names)
            } else if let Some((macro_name, var)) = in_loop {
                if let Some(reg) = reg {
                    let names: Vec<String> =
                        reg.callback_args.iter().filter_map(|&i| c.args.get(i)?.ident.clone()).collect();
                    (format!("{macro_name}({var}) {name}({})", names.join(", ")), "online-CPU loop".to_string(), names)
                } else if !var.is_empty() && c.args.iter().any(|x| x.text.trim() == var) {
                    (format!("{macro_name}({var}) {name}({var})"), "online-CPU loop".to_string(), vec![name.clone()])
                } else {
                    continue;
                }
            } else {
                continue;
            };
            let callbacks: Vec<FnId> =
                cb_names.iter().flat_map(|n| a.program.lookup(id.file, n).iter().copied()).collect();
            if callbacks.is_empty() {
                continue;
            }
            out.push(Broadcast { function: id, span: c.span, what, primitive, callbacks, state: &o.state });
        }
    }
    out
}

/// The call path of a reach state, root first: each function with the call
/// site in it that leads on (the last: `site`).
fn path_of(a: &Analysis<'_>, id: FnId, ri: usize, site: Span) -> Vec<(FnId, Span)> {
    let mut out = Vec::new();
    let mut cur = Some((id, ri, site));
    while let Some((f, i, s)) = cur {
        if out.len() > 10_000 {
            break;
        }
        out.push((f, s));
        let r: Option<&Reach> = a.reaches(f).get(i);
        cur = r.and_then(|r| r.parent);
    }
    out.reverse();
    out
}

/// Whether the hotplug callback may run at the time of a broadcast reached
/// along `path`: not when its state was removed before (dominating the path
/// in some function on it), nor when the path's root registers it only
/// after the broadcast.
fn is_live(a: &Analysis<'_>, cb: &HotplugCallback<'_>, path: &[(FnId, Span)]) -> bool {
    if !cb.state.is_empty() {
        for &(f, s) in path {
            if removal_dominates(a, f, s, cb) {
                return false;
            }
        }
    }
    let Some((reg_fn, reg_span)) = cb.registered_in else { return true };
    // Functions from which the registration is reachable.
    let reaches_reg = callers_closure(a, reg_fn);
    let mut later = false;
    for &(f, s) in path {
        if f == reg_fn {
            if reg_span.start < s.start {
                return true;
            }
            later = true;
        }
        for e in a.program.calls.get(&f).into_iter().flatten() {
            if !reaches_reg.contains(&e.callee) || e.site.span == s {
                continue;
            }
            if e.site.span.start < s.start {
                return true;
            }
            later = true;
        }
    }
    !later
}

/// `f` and every function that can call it, transitively.
fn callers_closure(a: &Analysis<'_>, f: FnId) -> BTreeSet<FnId> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![f];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for (caller, _) in a.program.callers.get(&id).into_iter().flatten() {
            stack.push(*caller);
        }
    }
    seen
}

/// Whether a call removing the callback's state runs before `site` on every
/// path through `f`: a top-level statement of `f` before the one holding
/// `site`, with no label in between.
fn removal_dominates(a: &Analysis<'_>, f: FnId, site: Span, cb: &HotplugCallback<'_>) -> bool {
    let stmts = &a.program.func(f).body.stmts;
    let Some(site_idx) = stmts.iter().position(|s| contains(stmt_span(s), site)) else { return false };
    for (i, s) in stmts.iter().enumerate().take(site_idx) {
        let (Stmt::Simple { events, .. } | Stmt::Return { events, .. }) = s else { continue };
        let removes = events.iter().any(|e| match e {
            crate::facts::Event::Call(c) => match &c.callee {
                Callee::Direct(n) => {
                    cb.removals.contains(n) && c.args.first().is_some_and(|x| x.text.trim() == cb.state)
                }
                _ => false,
            },
            _ => false,
        });
        if removes && !stmts[i + 1..=site_idx].iter().any(|s| matches!(s, Stmt::Label { .. })) {
            return true;
        }
    }
    false
}

fn contains(outer: Span, inner: Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn stmt_span(s: &Stmt) -> Span {
    match s {
        Stmt::Simple { span, .. }
        | Stmt::If { span, .. }
        | Stmt::Loop { span, .. }
        | Stmt::Switch { span, .. }
        | Stmt::Case { span }
        | Stmt::Return { span, .. }
        | Stmt::Goto { span, .. }
        | Stmt::Label { span, .. }
        | Stmt::Break { span }
        | Stmt::Continue { span }
        | Stmt::ScopedGuard { span, .. }
        | Stmt::Preproc { span, .. } => *span,
        Stmt::Block(b) => b.span,
    }
}

/// Whether a function keeps per-CPU state: it is on the enable path, or it
/// reads or writes a per-CPU variable or a cpumask bit of one CPU.
fn touches_percpu_state(input: &RuleInput<'_>, f: FnId) -> bool {
    let ep = input.enable_path;
    ep.enable_primitives.contains(&f)
        || ep.disable_primitives.contains(&f)
        || ep.enable_hooks.contains(&f)
        || ep.disable_hooks.contains(&f)
        || !percpu_state_names(input.analysis, f).is_empty()
}

/// The per-CPU variables and CPU-indexed global cpumasks a function uses.
fn percpu_state_names(a: &Analysis<'_>, f: FnId) -> Vec<String> {
    let api = a.api;
    let mut names = BTreeSet::new();
    crate::graph::visit_calls(&a.program.func(f).body.stmts, &mut |c| {
        let Callee::Direct(n) = &c.callee else { return };
        if let Some(acc) = api.percpu_accessor(n) {
            if let Some(v) = c.args.get(acc.var_arg).and_then(|x| x.ident.clone()) {
                if a.program.globals.contains_key(v.as_str()) {
                    names.insert(v);
                }
            }
        } else if let Some(op) = api.cpumask_op(n) {
            if op.cpu_arg.is_some() {
                if let Some(m) = c.args.get(op.mask_arg).and_then(|x| x.ident.clone()) {
                    if a.program.globals.contains_key(m.as_str()) {
                        names.insert(m);
                    }
                }
            }
        }
    });
    names.into_iter().collect()
}
