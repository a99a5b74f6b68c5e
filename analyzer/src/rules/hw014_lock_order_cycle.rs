//! # HW014 lock-order-cycle
//!
//! ## What it finds
//! A possible circular locking dependency, as lockdep reports it: lock
//! classes `A -> B -> ... -> A` where each arrow is an acquisition of (or a
//! wait on) the next class while the previous one is held, somewhere in code
//! reachable from a root. Classes are named by what a lock is, not by the
//! variable naming it: a global lock by its symbol (`kvm_lock`), a lock
//! reached through a pointer by its struct type and member
//! (`struct kvm.slots_lock`). The arrows come from:
//! - nested acquisitions in one function (`mutex_lock()`, `guard(mutex)()`,
//!   `scoped_guard(mutex, ...)`), and a lock held across a call into code
//!   that takes another;
//! - waits, which lockdep counts as acquisitions: `synchronize_srcu()` waits
//!   for every reader of that SRCU class; `wait_for_completion()` waits for
//!   what the code completing the same completion (struct type + member)
//!   takes before it completes; `flush_work()`/`cancel_work_sync()` wait for
//!   what the work function takes; a cross-CPU call that waits
//!   (`smp_call_function_single(cpu, f, info, 1)`, `stop_machine(f, ...)`)
//!   waits for what its callback takes; `kthread_stop(g->task)` waits for
//!   what the thread function stored there (`g->task = kthread_run(fn, ...)`)
//!   takes;
//! - CPU hotplug callbacks, which run while the control CPU holds
//!   `cpu_hotplug_lock` for write and waits for them, and callbacks that
//!   run under a lock on some paths only (a cpufreq notifier: under
//!   `cpus_read_lock()` when boost is toggled, under the hotplug write hold
//!   when a CPU comes online with a cpufreq driver);
//! - what kernel functions outside KVM take, from the API model
//!   (`static_branch_inc()` takes `cpus_read_lock()`).
//!
//! Readers follow lockdep: a cycle through a class that one arrow takes as a
//! recursive reader (`srcu_read_lock()`, `rcu_read_lock()`) and the next
//! holds as a reader does not deadlock, nor does a cycle through a class
//! nobody takes for write; `down_read()` and `cpus_read_lock()` wait behind a
//! pending writer and close cycles like a write. One finding per cycle,
//! smallest first, with every arrow's witness (root -> ... -> the holder ->
//! ... -> the site) and the unsafe scenario per CPU. Its identity is the set
//! of classes. An error, or a warning when some arrow exists only on paths
//! some machines never take (the message names it); an arrow with a witness
//! on every path keeps that witness, and `lint` reports a commit that turns
//! the warning into the error as introducing it.
//!
//! An order documented in `Documentation/virt/kvm/locking.rst` and violated
//! by one arrow is HW013's (one place for it); HW014 reports cycles only.
//!
//! What the graph cannot resolve is counted, never guessed: a lock reached
//! through a bare pointer (`spinlock_t *lock`) is a class of its own, a wait
//! for a completion or work item it cannot bind gives no arrow, and a cycle
//! search that hits its budget says so. `check --verbose` prints the counts
//! on standard error for each arch with something unresolved (`kvmtk: lock
//! order, x86: ...`); the JSON report carries them for every arch in
//! `statistics`. Not followed: a task pointer handed back through an
//! out-parameter (a `kthread_stop()` of it is counted).
//!
//! ## Why is this bad?
//! Each CPU of the scenario holds one lock and waits for the next: the
//! machine hangs, and only a lockdep kernel that runs every arrow's path says
//! why. Upstream's "Drop kvm_count_lock and instead protect kvm_usage_count
//! with kvm_lock" did exactly this and needed a fix a year and a half later
//! (commit 44d17459626 "KVM: Use dedicated mutex to protect kvm_usage_count
//! to avoid deadlock"): the CPU-online callback takes `kvm_lock` under
//! `cpu_hotplug_lock`, x86's `set_nx_huge_pages()` takes each VM's
//! `slots_lock` under `kvm_lock`, a memslot update waits for SRCU readers
//! under `slots_lock`, and a vCPU ioctl in the SRCU read side ends in
//! `static_branch_inc()`, which takes `cpus_read_lock()`.
//!
//! ## Example
//! ```c
//! static int foo_online_cpu(unsigned int cpu)   /* CPUHP_AP_FOO_ONLINE */
//! {
//!     mutex_lock(&foo_vm_lock);         /* cpu_hotplug_lock -> foo_vm_lock */
//!     foo_enable_cpu();
//!     mutex_unlock(&foo_vm_lock);
//!     return 0;
//! }
//!
//! static void foo_vm_set_feature(struct foo_vm *vm)
//! {
//!     mutex_lock(&foo_vm_lock);
//!     static_branch_inc(&foo_feature);  /* foo_vm_lock -> cpu_hotplug_lock */
//!     mutex_unlock(&foo_vm_lock);
//! }
//! ```
//!
//! ## Fix
//! Break one arrow: take the locks in one order everywhere (document it in
//! locking.rst), give the state the hotplug callback needs its own lock that
//! nothing else nests inside (upstream's `kvm_usage_lock`), drop the outer
//! lock before waiting, or use the `_cpuslocked` variant of a call when
//! `cpu_hotplug_lock` is already held.

use super::{find_rule, Finding, Related, RuleInput};
use crate::contexts::Step;
use crate::lock_order::{Cycle, LockOrder, OrderEdge};

/// `A`, `A (read)`: how a class is held or taken in the scenario.
fn mode_word(m: crate::api::AcquireMode) -> &'static str {
    match m {
        crate::api::AcquireMode::Write => "",
        crate::api::AcquireMode::Read => " for read",
        crate::api::AcquireMode::RecursiveRead => " for read (recursive)",
    }
}

/// The cycle rotated to start at its smallest class (a stable order).
fn rotated(c: &Cycle) -> Vec<&OrderEdge> {
    let n = c.edges.len();
    let start = (0..n).min_by_key(|&i| &c.edges[i].from).unwrap_or(0);
    (0..n).map(|k| &c.edges[(start + k) % n]).collect()
}

fn message(edges: &[&OrderEdge]) -> String {
    let mut chain: Vec<String> = edges.iter().map(|e| format!("`{}`", e.from)).collect();
    if let Some(first) = edges.first() {
        chain.push(format!("`{}`", first.from));
    }
    let scenario: Vec<String> = edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "CPU{i} holds `{}`{} and waits for `{}`{}",
                e.from,
                mode_word(e.held_mode),
                e.to,
                mode_word(e.acquire_mode)
            )
        })
        .collect();
    // Arrows whose lock is held on some of the paths that run the code only.
    let some_paths: Vec<String> = edges
        .iter()
        .enumerate()
        .filter(|(_, e)| e.on_some_paths)
        .map(|(i, e)| format!("#{i} (`{}` held by some callers only)", e.from))
        .collect();
    let only_where = match some_paths.len() {
        0 => String::new(),
        1 => format!(" on a machine that takes the path of arrow {}", some_paths[0]),
        _ => format!(" on a machine that takes the paths of arrows {}", some_paths.join(", ")),
    };
    format!(
        "possible circular locking dependency: {}; unsafe scenario: {}: deadlock{only_where}",
        chain.join(" -> "),
        scenario.join("; ")
    )
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW014") else { return Vec::new() };
    let mut order = LockOrder::build(input.analysis);
    let mut out = Vec::new();
    let cycles = order.cycles();
    // Set once per analysis: HW014 is the only rule that builds the graph.
    let _ = input.stats.lock_order.set(order.stats.clone());
    for cycle in cycles {
        let edges = rotated(&cycle);
        let Some(first) = edges.first() else { continue };
        // The evidence is every arrow's witness, one after the other, each
        // starting with a step that names the arrow.
        let mut evidence: Vec<Step> = Vec::new();
        for (i, e) in edges.iter().enumerate() {
            let mut w = e.witness.clone();
            if let Some(s) = w.first_mut() {
                let arrow = format!("#{i} `{}` -> `{}`: {}", e.from, e.to, e.summary);
                s.via = Some(match s.via.take() {
                    Some(v) => format!("{arrow}; {v}"),
                    None => arrow,
                });
            }
            evidence.extend(w);
        }
        let related: Vec<Related> = edges
            .iter()
            .enumerate()
            .map(|(i, e)| Related {
                file: e.site_file.clone(),
                line: e.site_line,
                col: e.site_col,
                message: format!("#{i} `{}` -> `{}`: {}", e.from, e.to, e.summary),
            })
            .collect();
        let classes = cycle.classes();
        let arch_specific =
            edges.iter().flat_map(|e| e.witness.iter()).any(|s| crate::enable_path::is_arch_path(&s.file));
        let mut f = Finding::at_file(
            info,
            input,
            &first.site_file,
            first.site_line,
            first.site_col,
            "lock-order-cycle",
            message(&edges),
            evidence,
            classes.clone(),
        )
        .with_related(related);
        f.function = first.witness.last().map(|s| s.function.clone()).unwrap_or_default();
        // A cycle that needs a path some machines never take is a warning;
        // the same classes closed on every path are the same finding, an
        // error (`lint` reports the rise).
        if cycle.on_some_paths() {
            f = f.with_severity(crate::rules::Severity::Warning);
        }
        f.arch = if arch_specific { input.arch() } else { "common".to_string() };
        f.fingerprint = super::fingerprint(info.id, &f.arch, "lock-order-cycle", &classes);
        out.push(f);
    }
    out
}
