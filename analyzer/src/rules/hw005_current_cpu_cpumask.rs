//! # HW005 current-cpu-cpumask
//!
//! ## What it finds
//! A global cpumask (a variable of a cpumask type of the API model,
//! `cpumask_var_t`, `cpumask_t`, `struct cpumask`) whose every CPU-indexed
//! access (`cpumask_test_cpu()`, `cpumask_set_cpu()`, `cpumask_clear_cpu()`,
//! ...) is indexed by the current CPU: the result of `smp_processor_id()` /
//! `raw_smp_processor_id()` written inline, or a local assigned only from
//! such a call. Its allocation and free do not count. Any access by another
//! CPU's index, any whole-mask operation (`cpumask_weight()`, `for_each_cpu()`,
//! passing the mask to `on_each_cpu_mask()` or any other function) makes the
//! mask legitimate.
//!
//! ## Why is this bad?
//! A mask only ever touched by its own CPU is per-CPU data in disguise: it
//! needs an allocation (and a failure path and a free), its bits share cache
//! lines between CPUs, and a reader cannot tell that no CPU looks at another
//! CPU's bit. The review thread on `cpus_hardware_enabled`: "I don't see any
//! reason KVM needs to use a global mask, a per-cpu variable a la
//! kvm_arm_hardware_enabled would do just fine."
//!
//! ## Example
//! ```c
//! static cpumask_var_t foo_enabled_cpus;
//!
//! static void foo_cpu_enable(void *unused)
//! {
//!     int cpu = raw_smp_processor_id();
//!
//!     if (cpumask_test_cpu(cpu, foo_enabled_cpus))
//!         return;
//!     cpumask_set_cpu(cpu, foo_enabled_cpus);
//!     foo_hw_enable();
//! }
//! ```
//! with `zalloc_cpumask_var(&foo_enabled_cpus, GFP_KERNEL)` in module init
//! and no other use.
//!
//! ## Fix
//! Use a per-CPU variable: `static DEFINE_PER_CPU(bool, foo_enabled);` with
//! `__this_cpu_read()` / `__this_cpu_write()`, and drop the allocation, the
//! free and their error label.

use std::collections::{BTreeMap, BTreeSet};

use super::{find_rule, Finding, Related, RuleInput};
use crate::api::CpumaskOpKind;
use crate::contexts::Analysis;
use crate::facts::{Arg, Callee, Global, Span};
use crate::graph::FnId;
use crate::locks::OccurrenceKind;

/// One use of a mask.
struct Use {
    function: FnId,
    span: Span,
    call: String,
    kind: UseKind,
}

#[derive(PartialEq)]
enum UseKind {
    /// A CPU-indexed operation with the current CPU.
    CurrentCpu,
    AllocFree,
    /// Anything else: another CPU's bit, the whole mask, an unknown use.
    Other,
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW005") else { return Vec::new() };
    let a = input.analysis;
    let api = a.api;
    // Global cpumasks defined in this program (not per-CPU, not extern).
    let mut masks: BTreeMap<&str, (u32, &Global)> = BTreeMap::new();
    for (name, defs) in &a.program.globals {
        for &(fi, g) in defs {
            if g.is_extern || g.define_macro.as_deref().is_some_and(|m| api.is_percpu_define(m)) {
                continue;
            }
            if api.is_cpumask_type(&g.type_text) {
                masks.entry(name).or_insert((fi, g));
            }
        }
    }
    if masks.is_empty() {
        return Vec::new();
    }
    let mut uses: BTreeMap<&str, Vec<Use>> = BTreeMap::new();
    let mut ids: Vec<FnId> = a.locks.keys().copied().collect();
    ids.sort();
    for id in ids {
        let func = a.program.func(id);
        let locks = &a.locks[&id];
        // Locals assigned in this function, and whether every assignment is
        // a current-CPU call.
        let mut locals: BTreeMap<&str, bool> = BTreeMap::new();
        for o in &locks.occurrences {
            if let OccurrenceKind::LocalAssign(la) = o.kind {
                let cur = la.value_call.as_deref().is_some_and(|c| api.is_current_cpu_call(c));
                let e = locals.entry(la.name.as_str()).or_insert(true);
                *e = *e && cur;
            }
        }
        let is_param = |n: &str| func.params.iter().any(|p| p.name == n);
        let is_current = |arg: &Arg| {
            let t = arg.text.trim();
            if let Some(name) = t.strip_suffix("()") {
                return api.is_current_cpu_call(name.trim());
            }
            match &arg.ident {
                Some(n) => !is_param(n) && locals.get(n.as_str()).copied().unwrap_or(false),
                None => false,
            }
        };
        // Argument spans naming a mask directly, per mask.
        let mut direct: Vec<(Span, &str)> = Vec::new();
        for o in &locks.occurrences {
            let OccurrenceKind::Call(c) = o.kind else { continue };
            let name = match &c.callee {
                Callee::Direct(n) => n.clone(),
                other => other.display(),
            };
            for (pos, arg) in c.args.iter().enumerate() {
                let Some(m) = mask_named(&masks, arg) else { continue };
                direct.push((arg.span, m));
                let kind = match api.cpumask_op(&name).filter(|op| op.mask_arg == pos) {
                    Some(op) => match (op.op, op.cpu_arg) {
                        (CpumaskOpKind::Alloc | CpumaskOpKind::Free, _) => UseKind::AllocFree,
                        (CpumaskOpKind::Whole, _) | (_, None) => UseKind::Other,
                        (_, Some(ci)) => match c.args.get(ci) {
                            Some(cpu) if is_current(cpu) => UseKind::CurrentCpu,
                            _ => UseKind::Other,
                        },
                    },
                    None => UseKind::Other,
                };
                uses.entry(m).or_default().push(Use { function: id, span: c.span, call: name.clone(), kind });
            }
        }
        // Any other mention of a mask (assignment, comparison, a field of
        // it) is a use this rule cannot judge.
        for o in &locks.occurrences {
            let OccurrenceKind::Access(acc) = o.kind else { continue };
            let Some((&m, _)) = masks.get_key_value(acc.name.as_str()) else { continue };
            let inside = direct.iter().any(|(s, dm)| *dm == m && s.start <= acc.span.start && acc.span.end <= s.end);
            if !inside {
                uses.entry(m).or_default().push(Use {
                    function: id,
                    span: acc.span,
                    call: String::new(),
                    kind: UseKind::Other,
                });
            }
        }
    }
    let mut out = Vec::new();
    for (m, (fi, g)) in &masks {
        let Some(us) = uses.get(m) else { continue };
        if us.iter().any(|u| u.kind == UseKind::Other) {
            continue;
        }
        let indexed: Vec<&Use> = us.iter().filter(|u| u.kind == UseKind::CurrentCpu).collect();
        let Some(first) = indexed.first() else { continue };
        let functions: BTreeSet<&str> = indexed.iter().map(|u| a.program.func(u.function).name.as_str()).collect();
        let alloc = us.iter().any(|u| u.kind == UseKind::AllocFree);
        let message = format!(
            "global cpumask `{m}` is only ever indexed by the current CPU ({} access{} in {}){}: a per-CPU variable does the job",
            indexed.len(),
            if indexed.len() == 1 { "" } else { "es" },
            functions.iter().map(|f| format!("`{f}()`")).collect::<Vec<_>>().join(", "),
            if !alloc {
                String::new()
            } else {
                ", besides allocating and freeing it".to_string()
            },
        );
        let related: Vec<Related> = us
            .iter()
            .map(|u| Related {
                file: a.program.file(u.function).path.clone(),
                line: u.span.line,
                col: u.span.col,
                message: match u.kind {
                    UseKind::CurrentCpu => {
                        format!("`{}()` on the current CPU's bit in `{}()`", u.call, a.program.func(u.function).name)
                    }
                    _ => format!("`{}()` in `{}()`", u.call, a.program.func(u.function).name),
                },
            })
            .collect();
        let evidence = evidence_for(a, first.function, first.span);
        let mut f = Finding::new(
            info,
            input,
            first.function,
            g.name_span.line,
            g.name_span.col,
            message,
            evidence,
            vec![m.to_string()],
        )
        .with_related(related);
        // The finding sits on the declaration.
        f.file = a.program.files[*fi as usize].path.clone();
        out.push(f);
    }
    out
}

/// The global mask an argument names (`mask`, `&mask`).
fn mask_named<'m>(masks: &BTreeMap<&'m str, (u32, &Global)>, arg: &Arg) -> Option<&'m str> {
    let name = match &arg.ident {
        Some(i) => i.as_str(),
        None => arg.text.trim().trim_start_matches('&').trim(),
    };
    masks.get_key_value(name).map(|(k, _)| *k)
}

/// The witness of the first reach of an access, when it is reachable.
fn evidence_for(a: &Analysis<'_>, f: FnId, span: Span) -> Vec<crate::contexts::Step> {
    if a.reaches(f).is_empty() {
        return Vec::new();
    }
    a.witness(f, 0, Some(span))
}
