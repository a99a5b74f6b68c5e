//! # HW012 spurious-heavy-enable
//!
//! ## What it finds
//! A costly per-CPU enable: an arch enable hook (derived from the common
//! hotplug startup callbacks) that reaches, directly or through the vendor
//! callbacks it dispatches to (a few calls deep), heavy work, as the code
//! does it: a whole-machine TLB or cache maintenance primitive (the API
//! model's `heavy.functions`: `local_flush_tlb_all()`, `wbinvd()`), or a
//! loop over hardware entries maintaining them one by one (a loop whose
//! body calls one of `heavy.per_entry`: `tlb_write_indexed()`), in the
//! hook or any helper it reaches; the model names kernel primitives only,
//! so renaming the helpers changes nothing. It is reported together with
//! every path that runs it:
//! - **warning** when one of those paths starts in a context that runs
//!   whether or not a VM exists (API-model contexts with `runs_without_vm`:
//!   module load, e.g. a "temporary" enable of all CPUs in module init, or
//!   6.12's `enable_virt_at_load` installing the hotplug state, which runs
//!   the online callback on every CPU at once);
//! - **note** when every path needs a VM (VM creation, or the hotplug and
//!   resume callbacks that re-enable CPUs while VMs exist): nothing is
//!   wrong yet, but the hook is one a reviewer must keep off spurious paths,
//!   and the finding lists the paths that reach it today.
//!
//! Linux 6.1 MIPS gets the note: `kvm_vz_hardware_enable()` is heavy but is
//! reached only from VM creation and from the hotplug/resume callbacks
//! gated by the usage count (6.1's module-init compatibility check does not
//! enable). 6.12 MIPS gets the warning: `kvm_init()` enables virtualization
//! at load by default.
//!
//! ## Why is this bad?
//! From the review thread: "MIPS doesn't appear to have any shenanigans,
//! but kvm_vz_hardware_enable() appears to be a "heavy" operation, i.e.
//! ideally not something that should be done spuriously." Enabling when no
//! VM needs it (at module load, for a compatibility check) costs a TLB
//! flush and a reconfiguration of every CPU, and fixes global parameters
//! (the guest TLB size) before any guest exists.
//!
//! ## Example
//! ```c
//! static int vz_cpu_enable(void)
//! {
//!         if (cmpxchg(&vz_guest_tlb_size, 0, size) && size != vz_guest_tlb_size)
//!                 return -EINVAL;
//!         local_flush_tlb_all();
//!         return 0;
//! }
//!
//! static int __init mips_foo_init(void)
//! {
//!         ...
//!         virt_get_all();         /* on_each_cpu(virt_cpu_up) -> vz_cpu_enable() */
//!         virt_put_all();
//! }
//! ```
//!
//! ## Fix
//! Enable only when the first VM is created (and on hotplug/resume while
//! VMs exist). Per-CPU compatibility checks at module load should read
//! the hardware, not enable it; with 6.12's common code, an arch whose
//! enable is heavy can leave `kvm.enable_virt_at_load` off.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{find_rule, Finding, Related, RuleInput, Severity};
use crate::facts::{Callee, Stmt};
use crate::graph::FnId;

/// How deep calls are followed from the hook (hook -> vendor enable ->
/// its helpers).
const MAX_DEPTH: u32 = 3;

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW012") else { return Vec::new() };
    let a = input.analysis;
    let p = &a.program;
    let mut out = Vec::new();
    for &hook in &input.enable_path.enable_hooks {
        // Breadth-first from the hook, through ops and static calls too;
        // each function's depth and the call that reached it first.
        let mut seen: BTreeMap<FnId, (u32, Option<(FnId, crate::facts::Span)>)> = BTreeMap::new();
        let mut queue = VecDeque::from([(hook, 0u32, None)]);
        let mut heavy: Vec<(FnId, crate::facts::Span, String)> = Vec::new();
        while let Some((f, depth, parent)) = queue.pop_front() {
            if seen.contains_key(&f) {
                continue;
            }
            seen.insert(f, (depth, parent));
            for (span, what) in heavy_work(a.api, &p.func(f).body.stmts) {
                // Work in a helper is reported at the call of the per-CPU
                // enable the hook runs (depth 1), where a reviewer sees it.
                let (mut g, mut site, mut d) = (f, span, depth);
                let mut via = None;
                while d > 1 {
                    let Some((caller, call)) = seen.get(&g).and_then(|s| s.1) else { break };
                    via = Some(g);
                    g = caller;
                    site = call;
                    d -= 1;
                }
                let what = match via {
                    Some(h) => format!("`{}()` ({what})", p.func(h).name),
                    None => what,
                };
                heavy.push((g, site, what));
            }
            if depth < MAX_DEPTH {
                for e in p.calls.get(&f).into_iter().flatten() {
                    queue.push_back((e.callee, depth + 1, Some((f, e.site.span))));
                }
            }
        }
        let Some(&(at, first_span, _)) = heavy.first() else { continue };
        // Every path into the hook, one per root.
        let mut paths: BTreeMap<usize, usize> = BTreeMap::new();
        for (ri, r) in a.reaches(hook).iter().enumerate() {
            paths.entry(r.key.root).or_insert(ri);
        }
        if paths.is_empty() {
            continue;
        }
        let without_vm =
            |root: usize| a.api.context(&a.roots[root].context).map(|c| c.runs_without_vm).unwrap_or(false);
        let spurious: Vec<usize> = paths.keys().copied().filter(|&r| without_vm(r)).collect();
        // Evidence: the heavy function reached along a spurious path when
        // there is one, else along the first path.
        let chosen_root = spurious.first().copied().unwrap_or(*paths.keys().next().unwrap());
        let evidence = a
            .reaches(at)
            .iter()
            .position(|r| r.key.root == chosen_root)
            .map(|ri| a.witness(at, ri, Some(first_span)))
            .unwrap_or_default();
        let calls: BTreeSet<&str> = heavy.iter().filter(|h| h.0 == at).map(|h| h.2.as_str()).collect();
        let calls = calls.into_iter().collect::<Vec<_>>().join(", ");
        let name = &p.func(at).name;
        let hook_name = &p.func(hook).name;
        let via_hook = if at == hook { String::new() } else { format!(" (run by the enable hook `{hook_name}()`)") };
        let contexts: BTreeSet<&str> = paths.keys().map(|&r| a.roots[r].context.as_str()).collect();
        let message = if let Some(&r) = spurious.first() {
            format!(
                "heavy per-CPU enable `{name}()`{via_hook} does {calls} and runs from `{}()` ({}), when no VM needs it",
                a.roots[r].function_name, a.roots[r].context
            )
        } else {
            format!(
                "heavy per-CPU enable `{name}()`{via_hook} does {calls}; it runs only on paths that need a VM today ({}), \
                 keep it off module load and compatibility checks",
                contexts.iter().copied().collect::<Vec<_>>().join(", ")
            )
        };
        let mut related: Vec<Related> = Vec::new();
        for &(f, span, ref n) in heavy.iter().skip(1).take(8) {
            related.push(Related {
                file: p.file(f).path.clone(),
                line: span.line,
                col: span.col,
                message: format!("also heavy: {n} in `{}()`", p.func(f).name),
            });
        }
        for (&root, &ri) in &paths {
            let steps = a.witness(hook, ri, None);
            let chain = steps.iter().map(|s| format!("{}()", s.function)).collect::<Vec<_>>().join(" -> ");
            let r = &a.roots[root];
            let (file, line, col) = match steps.first() {
                Some(s) => (s.file.clone(), s.line, s.col),
                None => (p.file(hook).path.clone(), 0, 0),
            };
            related.push(Related {
                file,
                line,
                col,
                message: format!(
                    "path from {} [{}]{}: {chain}",
                    r.origin,
                    r.context,
                    if without_vm(root) { ", without a VM" } else { "" }
                ),
            });
        }
        // The arch's heavy enable (one per arch), not the hook's name.
        let mut symbols = vec!["heavy enable".to_string()];
        if !spurious.is_empty() {
            symbols.push("without-vm".to_string());
        }
        let mut f = Finding::new(info, input, at, first_span.line, first_span.col, message, evidence, symbols)
            .with_related(related);
        if !spurious.is_empty() {
            f = f.with_severity(Severity::Warning);
        }
        out.push(f);
    }
    out
}

/// The heavy work done directly in `stmts`: calls of whole-machine
/// maintenance primitives, and loops whose body calls a per-entry one
/// (described as done: "`local_flush_tlb_all()`", "a loop of
/// `tlb_write_indexed()`").
fn heavy_work(api: &crate::api::ApiModel, stmts: &[Stmt]) -> Vec<(crate::facts::Span, String)> {
    let mut out = Vec::new();
    crate::graph::visit_calls(stmts, &mut |s| {
        if let Callee::Direct(n) = &s.callee {
            if api.is_heavy(n) {
                out.push((s.span, format!("`{n}()`")));
            }
        }
    });
    loops_of_entry_maintenance(api, stmts, &mut out);
    out.sort_by_key(|(span, _)| span.start);
    out
}

/// Loops (at any nesting) whose body calls a per-entry maintenance primitive.
fn loops_of_entry_maintenance(api: &crate::api::ApiModel, stmts: &[Stmt], out: &mut Vec<(crate::facts::Span, String)>) {
    for s in stmts {
        match s {
            Stmt::Loop { span, body, .. } => {
                let mut prim = None;
                crate::graph::visit_calls(&body.stmts, &mut |c| {
                    if let Callee::Direct(n) = &c.callee {
                        if prim.is_none() && api.is_per_entry_maintenance(n) {
                            prim = Some(n.clone());
                        }
                    }
                });
                match prim {
                    Some(n) => out.push((*span, format!("a loop of `{n}()` over hardware entries"))),
                    None => loops_of_entry_maintenance(api, &body.stmts, out),
                }
            }
            Stmt::Block(b) | Stmt::Switch { body: b, .. } | Stmt::ScopedGuard { body: b, .. } => {
                loops_of_entry_maintenance(api, &b.stmts, out)
            }
            Stmt::If { then_branch, else_branch, .. } => {
                loops_of_entry_maintenance(api, &then_branch.stmts, out);
                if let Some(b) = else_branch {
                    loops_of_entry_maintenance(api, &b.stmts, out);
                }
            }
            Stmt::Preproc { branches, .. } => {
                for b in branches {
                    loops_of_entry_maintenance(api, &b.body.stmts, out);
                }
            }
            _ => {}
        }
    }
}
