//! # HW002 irq-state-snapshot
//!
//! ## What it finds
//! Host hardware state snapshotted into per-CPU data (an API-model
//! `state_reads` call such as `rdmsrl_safe()` whose destination is, or is
//! then stored into, data obtained through a per-CPU accessor:
//! `this_cpu_ptr()`, `per_cpu_ptr(x, smp_processor_id())`, ...) in code
//! reachable from a context that runs as an interrupt of whatever the CPU
//! was executing (contexts with `interrupts_running_code` in the API
//! model: IPI callbacks of `on_each_cpu()` / `smp_call_function*()`).
//! The same snapshot taken from a CPU hotplug ONLINE or STARTING callback,
//! from syscore resume or from process context interrupts nothing and is
//! not reported.
//!
//! ## Why is this bad?
//! What the CPU holds when the IPI lands is not necessarily the host's
//! state. From the review thread: "The user-return MSRs code is subtly
//! very, very nasty, as it means that KVM snaphots MSRs from IRQ context,
//! e.g. if an out-of-tree module is running VMs, the IRQ can interrupt the
//! _guest_ and cause KVM to snapshot guest registers. VMX and SVM kinda
//! sorta guard against this by refusing to load if VMX/SVM are already
//! enabled, but it's not foolproof." The snapshot is later restored as the
//! host's value.
//!
//! ## Example
//! ```c
//! static void foo_save_host_msrs(void *unused)
//! {
//!         struct foo_host_msrs *m = this_cpu_ptr(&host_msr_cache);
//!
//!         rdmsrl_safe(MSR_STAR, &m->star);        /* may read a guest's value */
//! }
//!
//!         on_each_cpu(foo_save_host_msrs, NULL, 1);
//! ```
//!
//! ## Fix
//! Snapshot on first use, from the task that is about to change the
//! register (the seed's step 1: a flag in the per-CPU struct, set by the
//! first `kvm_set_user_return_msr()` on that CPU, with preemption
//! disabled), not from a callback that interrupts arbitrary code.

use std::collections::BTreeMap;

use super::queries::percpu_snapshots;
use super::{find_rule, Finding, Related, RuleInput};

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW002") else { return Vec::new() };
    let a = input.analysis;
    let interrupts = |ctx: &str| a.api.context(ctx).map(|c| c.interrupts_running_code).unwrap_or(false);
    // One finding per function, at its first snapshot.
    let mut by_fn: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for s in percpu_snapshots(a) {
        by_fn.entry(s.function).or_default().push(s);
    }
    let mut out = Vec::new();
    for (id, snaps) in by_fn {
        let reaches = a.reaches(id);
        let Some(ri) = reaches.iter().position(|r| interrupts(&r.key.context)) else { continue };
        let ctx = &reaches[ri].key.context;
        let first = &snaps[0];
        let name = &a.program.func(id).name;
        let mut vars: Vec<&str> = snaps.iter().map(|s| s.percpu.as_str()).collect();
        vars.dedup();
        let through = match &first.via_local {
            Some(l) => format!(" (through `{l}`)"),
            None => String::new(),
        };
        let message = format!(
            "`{name}()` snapshots host state with `{}()` into per-CPU `{}`{through} and is reachable from {ctx} context, \
             which interrupts whatever the CPU was running: if that is a guest of another hypervisor, its value is \
             saved as the host's",
            first.call,
            vars.join("`, `"),
        );
        let file = a.program.file(id).path.clone();
        let related = snaps
            .iter()
            .skip(1)
            .map(|s| Related {
                file: file.clone(),
                line: s.span.line,
                col: s.span.col,
                message: format!("also snapshotted here with `{}()` into `{}`", s.call, s.percpu),
            })
            .collect();
        let mut symbols: Vec<String> = vars.iter().map(|v| v.to_string()).collect();
        symbols.push(first.call.clone());
        out.push(
            Finding::new(
                info,
                input,
                id,
                first.span.line,
                first.span.col,
                message,
                a.witness(id, ri, Some(first.span)),
                symbols,
            )
            .with_related(related),
        );
    }
    out
}
