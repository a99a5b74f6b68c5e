//! # HW010 private-usage-tracking
//!
//! ## What it finds
//! An arch that keeps its own "KVM in use" count: a global counter in arch
//! code that goes up on VM creation and down on VM destruction, mirroring
//! the common usage count. VM creation and destruction are found
//! mechanically: the common functions that `list_add()` a VM to, and
//! `list_del()` it from, a global list; the arch hooks they call, and what
//! those reach in arch code, are the create and destroy paths. A counter
//! is a global of an arch file moved by the API model's counter operations
//! (`atomic_inc()` / `atomic_dec()` and friends) or written as a plain
//! integer; it is reported when it is incremented on the create path and
//! decremented on the destroy path.
//!
//! Not reported: an arch that does not build the common usage count. The
//! common count is the counter of common code moved on the create path
//! (`kvm_usage_count`); when it, or every function moving it, sits under an
//! `#ifdef CONFIG_X` whose symbol the tree's Kconfig declares and the arch's
//! KVM options never select (upstream's `KVM_GENERIC_HARDWARE_ENABLING`,
//! which PPC does not select), the arch's counter mirrors nothing.
//!
//! ## Why is this bad?
//! From the review thread: "PPC apparently didn't want to be left out of
//! the party, and despite having a nop for kvm_arch_hardware_disable(), it
//! does its own "is KVM enabled" tracking (see kvm_hv_vm_(de)activated())."
//! Two counts of the same thing drift (different locks, error paths that
//! update one but not the other), and the arch cannot use the common
//! enable/disable transitions because it does not know about them. The
//! review's plan is to pass the common count to an arch hook called under
//! `kvm_lock` (`kvm_arch_add_vm(kvm, kvm_usage_count)`), so the arch acts on
//! the 0 => 1 and 1 => 0 transitions instead of counting itself.
//!
//! ## Example
//! ```c
//! static atomic_t foo_guests_running;
//!
//! int foo_arch_guest_init(struct kvm *kvm)
//! {
//!     atomic_inc(&foo_guests_running);    /* second usage count */
//!     return 0;
//! }
//!
//! void foo_arch_guest_destroy(struct kvm *kvm)
//! {
//!     atomic_dec(&foo_guests_running);
//! }
//! ```
//!
//! ## Fix
//! Drop the private counter and act on the common usage count's transitions
//! (an arch hook told the count under the common lock), or expose the
//! common "virtualization in use" state to the code that consults the
//! private counter.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::hw009_double_enable::{frames_to_steps, Frame};
use super::queries::{global_of, is_arch, list_writes};
use super::{find_rule, Finding, Related, RuleInput};
use crate::api::ListOpKind;
use crate::contexts::Analysis;
use crate::facts::{AccessKind, Span};
use crate::graph::FnId;
use crate::locks::OccurrenceKind;

/// One move of a counter.
#[derive(Debug, Clone)]
struct Move {
    function: FnId,
    span: Span,
    how: String,
}

/// Integer-like types a counter can have.
fn counter_type(ty: &str) -> bool {
    let t = ty.trim();
    t.starts_with("atomic")
        || t.starts_with("refcount_t")
        || t.starts_with("local_t")
        || matches!(
            t,
            "int"
                | "unsigned"
                | "unsigned int"
                | "long"
                | "unsigned long"
                | "u8"
                | "u16"
                | "u32"
                | "u64"
                | "s32"
                | "s64"
        )
}

/// The counter moves in `f`: (counter, inc?, move).
fn moves(a: &Analysis<'_>, f: FnId) -> Vec<(String, Option<bool>, Move)> {
    let mut out = Vec::new();
    let arch_global = |name: &str| {
        a.program.globals.get(name).and_then(|gs| {
            gs.iter()
                .find(|(fi, g)| {
                    crate::enable_path::is_arch_path(&a.program.files[*fi as usize].path) && counter_type(&g.type_text)
                })
                .map(|(_, g)| g.name.clone())
        })
    };
    let Some(locks) = a.locks.get(&f) else { return out };
    for o in &locks.occurrences {
        match o.kind {
            OccurrenceKind::Call(c) => {
                let crate::facts::Callee::Direct(name) = &c.callee else { continue };
                let Some(op) = a.api.counter_op(name) else { continue };
                let Some(var) = c.args.get(op.var_arg).and_then(|x| global_of(a, x)) else { continue };
                let Some(g) = arch_global(&var) else { continue };
                out.push((g, Some(op.op == "inc"), Move { function: f, span: c.span, how: format!("{name}()") }));
            }
            OccurrenceKind::Access(acc) if acc.kind == AccessKind::Write => {
                let Some(g) = arch_global(&acc.name) else { continue };
                if g.starts_with("atomic") {
                    continue;
                }
                out.push((g, None, Move { function: f, span: acc.span, how: "a write".to_string() }));
            }
            _ => {}
        }
    }
    out
}

/// Arch functions bound to `field` in any arch struct initializer.
fn bound_in_arch(a: &Analysis<'_>, field: &str) -> Vec<FnId> {
    let mut out = Vec::new();
    for &fi in &a.program.in_scope {
        let file = &a.program.files[fi as usize];
        if !crate::enable_path::is_arch_path(&file.path) {
            continue;
        }
        for init in &file.initializers {
            for b in init.fields.iter().filter(|b| b.field == field) {
                if let Some(v) = &b.value_ident {
                    out.extend(a.program.lookup(fi, v).iter().copied());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The callees of `f` in arch code: resolved calls, and ops-table calls the
/// linker left unresolved (`kvm->arch.ops->init_vm(kvm)` through a member
/// whose struct type it cannot name), followed to every arch function bound
/// to that field.
fn arch_callees(a: &Analysis<'_>, f: FnId) -> Vec<(FnId, Span)> {
    let mut out: Vec<(FnId, Span)> = Vec::new();
    let edges = a.program.calls.get(&f).map(Vec::as_slice).unwrap_or(&[]);
    for e in edges {
        out.push((e.callee, e.site.span));
    }
    crate::graph::visit_calls(&a.program.func(f).body.stmts, &mut |c| {
        if let crate::facts::Callee::OpsMember { field, .. } = &c.callee {
            if a.program.edges_at(f, c).is_empty() {
                for t in bound_in_arch(a, field) {
                    out.push((t, c.span));
                }
            }
        }
    });
    out.retain(|(t, _)| is_arch(a, *t));
    out
}

/// Arch code reachable from `from` (see [`arch_callees`]).
fn closure(a: &Analysis<'_>, from: &[FnId]) -> BTreeSet<FnId> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<FnId> = from.iter().copied().filter(|&f| is_arch(a, f)).collect();
    while let Some(id) = stack.pop() {
        if seen.insert(id) {
            stack.extend(arch_callees(a, id).into_iter().map(|(t, _)| t));
        }
    }
    seen
}

/// Breadth-first paths from `starts` over arch calls: parent of each function.
fn paths(a: &Analysis<'_>, starts: &[(FnId, Span, FnId)], within: &BTreeSet<FnId>) -> HashMap<FnId, Vec<Frame>> {
    let mut out: HashMap<FnId, Vec<Frame>> = HashMap::new();
    let mut q = VecDeque::new();
    for &(common, span, hook) in starts {
        if within.contains(&hook) && !out.contains_key(&hook) {
            out.insert(hook, vec![(common, span)]);
            q.push_back(hook);
        }
    }
    while let Some(f) = q.pop_front() {
        let base = out[&f].clone();
        for (t, span) in arch_callees(a, f) {
            if within.contains(&t) && !out.contains_key(&t) {
                let mut p = base.clone();
                p.push((f, span));
                out.insert(t, p);
                q.push_back(t);
            }
        }
    }
    out
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW010") else { return Vec::new() };
    let a = input.analysis;
    // VM create / destroy: common functions adding to / deleting from a
    // global list.
    let writes = list_writes(a);
    let mut by_head: BTreeMap<String, (BTreeSet<FnId>, BTreeSet<FnId>)> = BTreeMap::new();
    for w in writes.iter().filter(|w| !is_arch(a, w.function)) {
        let Some(h) = &w.head else { continue };
        let e = by_head.entry(h.clone()).or_default();
        match w.op {
            ListOpKind::Add => e.0.insert(w.function),
            ListOpKind::Del => e.1.insert(w.function),
        };
    }
    let mut out = Vec::new();
    let mut reported = BTreeSet::new();
    let arch = input.arch();
    for (head, (creators, destroyers)) in by_head {
        if creators.is_empty() || destroyers.is_empty() {
            continue;
        }
        if !builds_common_count(a, input.kconfig, &arch, &creators) {
            continue;
        }
        let hooks_of = |fs: &BTreeSet<FnId>| -> Vec<(FnId, Span, FnId)> {
            let mut v = Vec::new();
            for &f in fs {
                for e in a.program.calls.get(&f).into_iter().flatten() {
                    if is_arch(a, e.callee) {
                        v.push((f, e.site.span, e.callee));
                    }
                }
            }
            v
        };
        let create_hooks = hooks_of(&creators);
        let destroy_hooks = hooks_of(&destroyers);
        let create = closure(a, &create_hooks.iter().map(|h| h.2).collect::<Vec<_>>());
        let destroy = closure(a, &destroy_hooks.iter().map(|h| h.2).collect::<Vec<_>>());
        let mut incs: BTreeMap<String, Move> = BTreeMap::new();
        let mut decs: BTreeMap<String, Move> = BTreeMap::new();
        let mut writes_c: BTreeMap<String, Move> = BTreeMap::new();
        let mut writes_d: BTreeMap<String, Move> = BTreeMap::new();
        for &f in &create {
            for (g, dir, mv) in moves(a, f) {
                match dir {
                    Some(true) => incs.entry(g).or_insert(mv),
                    None => writes_c.entry(g).or_insert(mv),
                    Some(false) => continue,
                };
            }
        }
        for &f in &destroy {
            for (g, dir, mv) in moves(a, f) {
                match dir {
                    Some(false) => decs.entry(g).or_insert(mv),
                    None => writes_d.entry(g).or_insert(mv),
                    Some(true) => continue,
                };
            }
        }
        let mut pairs: Vec<(String, Move, Move)> = Vec::new();
        for (g, i) in &incs {
            if let Some(d) = decs.get(g) {
                pairs.push((g.clone(), i.clone(), d.clone()));
            }
        }
        for (g, i) in &writes_c {
            if let Some(d) = writes_d.get(g) {
                if !incs.contains_key(g) {
                    pairs.push((g.clone(), i.clone(), d.clone()));
                }
            }
        }
        let cpaths = paths(a, &create_hooks, &create);
        let dpaths = paths(a, &destroy_hooks, &destroy);
        for (g, inc, dec) in pairs {
            if !reported.insert(g.clone()) {
                continue;
            }
            let inc_fn = a.program.func(inc.function).name.clone();
            let dec_fn = a.program.func(dec.function).name.clone();
            let cframes = cpaths.get(&inc.function).cloned().unwrap_or_default();
            let dframes = dpaths.get(&dec.function).cloned().unwrap_or_default();
            let create_name = cframes.first().map(|(f, _)| a.program.func(*f).name.clone()).unwrap_or_default();
            let destroy_name = dframes.first().map(|(f, _)| a.program.func(*f).name.clone()).unwrap_or_default();
            // The creating function's context (the ioctl that creates VMs).
            let ctx = cframes
                .first()
                .and_then(|(f, _)| a.reaches(*f).iter().min_by_key(|r| r.depth))
                .map(|r| r.key.context.clone())
                .unwrap_or_else(|| "process".to_string());
            let mut evidence = frames_to_steps(a, &ctx, &cframes, None);
            let mut last = frames_to_steps(a, &ctx, &[(inc.function, inc.span)], None);
            evidence.append(&mut last);
            let message = format!(
                "`{g}` counts VMs privately: {} in `{inc_fn}()` on VM creation (`{create_name}()` adds to `{head}`) \
                 and {} in `{dec_fn}()` on VM destruction (`{destroy_name}()` deletes from `{head}`), mirroring the \
                 common usage count",
                inc.how, dec.how
            );
            let mut related = Vec::new();
            if let Some((fi, gl)) = a.program.globals.get(g.as_str()).and_then(|v| v.first()) {
                related.push(Related {
                    file: a.program.files[*fi as usize].path.clone(),
                    line: gl.name_span.line,
                    col: gl.name_span.col,
                    message: format!("`{g}` declared here"),
                });
            }
            related.push(Related {
                file: a.program.file(dec.function).path.clone(),
                line: dec.span.line,
                col: dec.span.col,
                message: format!(
                    "{} here, on the destroy path {}",
                    if dec.how == "a write" { "written" } else { "decremented" },
                    dframes
                        .iter()
                        .map(|(f, _)| format!("`{}()`", a.program.func(*f).name))
                        .chain(std::iter::once(format!("`{dec_fn}()`")))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            });
            out.push(
                Finding::new(
                    info,
                    input,
                    inc.function,
                    inc.span.line,
                    inc.span.col,
                    message,
                    evidence,
                    vec![g.clone(), head.clone()],
                )
                .with_related(related),
            );
        }
    }
    out
}

/// How deep the search for the common usage count goes from VM creation.
const COMMON_COUNT_DEPTH: u32 = 6;

/// Whether `arch` builds a common usage count: a counter global of common
/// code moved in common code reachable from the VM creators. True when
/// there is none to judge (nothing says the arch opted out); false when
/// every such counter, or every function moving it, is under an `#ifdef`
/// the arch's Kconfig leaves out.
fn builds_common_count(
    a: &Analysis<'_>,
    kconfig: &crate::kconfig::Kconfig,
    arch: &str,
    creators: &BTreeSet<FnId>,
) -> bool {
    let common_global = |name: &str| {
        a.program.globals.get(name).and_then(|gs| {
            gs.iter()
                .find(|(fi, g)| {
                    !crate::enable_path::is_arch_path(&a.program.files[*fi as usize].path) && counter_type(&g.type_text)
                })
                .map(|(_, g)| *g)
        })
    };
    // Common counters moved on the create path: counter -> built for the arch.
    let mut counters: BTreeMap<String, bool> = BTreeMap::new();
    let mut seen: BTreeSet<FnId> = BTreeSet::new();
    let mut queue: VecDeque<(FnId, u32)> = creators.iter().map(|&f| (f, 0)).collect();
    while let Some((f, depth)) = queue.pop_front() {
        if !seen.insert(f) || is_arch(a, f) {
            continue;
        }
        let fn_built = !kconfig.compiled_out(arch, &a.program.func(f).condition);
        // From the body itself: a definition the linker did not pick (the
        // `#ifdef`'d one behind a header stub) has no lock facts.
        crate::graph::visit_events(&a.program.func(f).body.stmts, &mut |e| {
            let name = match e {
                crate::facts::Event::Call(c) => {
                    let crate::facts::Callee::Direct(n) = &c.callee else { return };
                    let Some(op) = a.api.counter_op(n) else { return };
                    let Some(var) = c.args.get(op.var_arg).and_then(|x| global_of(a, x)) else { return };
                    var
                }
                crate::facts::Event::Access(acc) if acc.kind == AccessKind::Write => acc.name.clone(),
                _ => return,
            };
            let Some(g) = common_global(&name) else { return };
            let built = fn_built && !kconfig.compiled_out(arch, &g.condition);
            *counters.entry(g.name.clone()).or_insert(false) |= built;
        });
        if depth < COMMON_COUNT_DEPTH {
            for e in a.program.calls.get(&f).into_iter().flatten() {
                queue.push_back((e.callee, depth + 1));
            }
            // Every definition of each callee by name: the linker may have
            // bound the call to a header's `#else` stub, or to nothing,
            // while the real one is under the `#ifdef` being judged.
            crate::graph::visit_calls(&a.program.func(f).body.stmts, &mut |c| {
                if let crate::facts::Callee::Direct(name) = &c.callee {
                    for t in a.program.lookup_any(name) {
                        queue.push_back((t, depth + 1));
                    }
                }
            });
        }
    }
    counters.is_empty() || counters.values().any(|&built| built)
}
