//! # HW001 unguarded-list-walk
//!
//! ## What it finds
//! A global list walked (`list_for_each_entry()` and friends) without the
//! lock that guards its writers, in code reachable from a context that runs
//! concurrently with those writers. The guarding lock is learned from the
//! writers themselves (the lock held at every `list_add()`/`list_del()` of
//! the list, on entry or at the site) and from
//! `Documentation/virt/kvm/locking.rst` (a lock whose `:Protects:` names the
//! list). A walk counts as guarded when the lock is held on the walking CPU,
//! or held by an initiator that waits for the walking code (a synchronous
//! `on_each_cpu()`). Contexts in which no other CPU runs (syscore, stop
//! machine) do not race.
//!
//! ## Why is this bad?
//! From the review thread: x86's `kvm_arch_hardware_enable()` walks
//! `vm_list` to fix up TSCs for existing VMs, and it is called from the CPU
//! hotplug callback. "If CPU (un)hotplug collides with kvm_destroy_vm() or
//! kvm_create_vm(), kvm_arch_hardware_enable() could explode due to vm_list
//! being modified while it's being walked."
//!
//! ## Example
//! ```c
//! static int foo_cpu_starting(unsigned int cpu)
//! {
//! 	list_for_each_entry(g, &guest_list, link)	/* guest_list_lock not held */
//! 		g->needs_clock_update = true;
//! 	return 0;
//! }
//! ```
//! while `foo_create_guest()` does `mutex_lock(&guest_list_lock);
//! list_add(&g->link, &guest_list);`.
//!
//! ## Fix
//! Walk the list under the writers' lock (which may require moving the
//! callback to a context that can take it, e.g. the ONLINE hotplug section
//! for a mutex), or make the list RCU-protected and walk it under
//! `rcu_read_lock()`.

use std::collections::BTreeSet;

use super::queries::{excluded_by, list_walks, list_writes, other_cpus_run};
use super::{find_rule, Finding, Related, RuleInput};

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW001") else { return Vec::new() };
    let a = input.analysis;
    let writes = list_writes(a);
    let mut out = Vec::new();
    for walk in list_walks(a) {
        let writers: Vec<_> = writes.iter().filter(|w| w.head.as_deref() == Some(walk.head.as_str())).collect();
        if writers.is_empty() {
            continue;
        }
        // Locks held at every write: on the writer's CPU at the site, or on
        // entry to the writer along every path that reaches it.
        let mut guard: Option<BTreeSet<String>> = None;
        // Held states that keep no other CPU out (the API model's lock
        // kinds say which): they guard nothing against a writer elsewhere.
        let mut not_excluding: BTreeSet<String> = BTreeSet::new();
        for w in &writers {
            let mut held: BTreeSet<String> = w.state.must.names().iter().map(|s| s.to_string()).collect();
            let reaches = a.reaches(w.function);
            for l in w.state.must.iter().chain(reaches.iter().flat_map(|r| r.key.held_must.iter())) {
                if a.api.table.lock_kinds.get(&l.kind).is_some_and(|k| !k.excludes) {
                    not_excluding.insert(l.name.clone());
                }
            }
            if !reaches.is_empty() {
                let common = reaches
                    .iter()
                    .map(|r| r.key.held_must.names().iter().map(|s| s.to_string()).collect::<BTreeSet<_>>())
                    .reduce(|x, y| x.intersection(&y).cloned().collect())
                    .unwrap_or_default();
                held.extend(common);
            }
            guard = Some(match guard {
                None => held,
                Some(g) => g.intersection(&held).cloned().collect(),
            });
        }
        let mut guard = guard.unwrap_or_default();
        if let Some(doc) = input.locking_doc {
            for l in &doc.locks {
                if l.protects
                    .iter()
                    .any(|p| p.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == walk.head))
                {
                    guard.insert(l.name.clone());
                }
            }
        }
        guard.retain(|g| !not_excluding.contains(g));
        if guard.is_empty() {
            continue;
        }
        let unguarded: Vec<usize> = a
            .reaches(walk.function)
            .iter()
            .enumerate()
            .filter(|(_, r)| other_cpus_run(a.api, r))
            .filter(|(_, r)| !guard.iter().any(|g| excluded_by(r, &walk.state, g)))
            .map(|(i, _)| i)
            .collect();
        // Evidence: the least serialized path first (a path serialized by
        // some other lock, e.g. an initiator's, is a weaker witness), then
        // the shortest.
        let reaches = a.reaches(walk.function);
        let Some(&first) = unguarded.iter().min_by_key(|&&i| (reaches[i].key.serialized_by.0.len(), reaches[i].depth))
        else {
            continue;
        };
        let contexts: BTreeSet<String> = unguarded
            .iter()
            .map(|&i| {
                let r = &reaches[i];
                let others: Vec<&str> =
                    r.key.serialized_by.names().into_iter().filter(|n| !guard.contains(*n)).collect();
                if others.is_empty() || r.key.context.starts_with("cpuhp_") {
                    r.key.context.clone()
                } else {
                    format!("{} (serialized by {}, which the writers do not take)", r.key.context, others.join(", "))
                }
            })
            .collect();
        let guard_list = guard.iter().cloned().collect::<Vec<_>>().join(", ");
        let message = format!(
            "`{}` walked with `{}` without {} (held by its writers), reachable from {} context{} that run{} concurrently with them",
            walk.head,
            walk.macro_name,
            guard_list,
            contexts.iter().cloned().collect::<Vec<_>>().join(", "),
            if contexts.len() > 1 { "s" } else { "" },
            if contexts.len() > 1 { "" } else { "s" },
        );
        let related = writers
            .iter()
            .map(|w| Related {
                file: a.program.file(w.function).path.clone(),
                line: w.span.line,
                col: w.span.col,
                message: format!(
                    "`{}` modified here by {}() in {}() with {} held",
                    walk.head,
                    w.call,
                    a.program.func(w.function).name,
                    if w.state.must.is_empty() { "{}".to_string() } else { w.state.must.to_string() }
                ),
            })
            .collect();
        out.push(
            Finding::new(
                info,
                input,
                walk.function,
                walk.span.line,
                walk.span.col,
                message,
                a.witness(walk.function, first, Some(walk.span)),
                vec![walk.head.clone(), walk.macro_name.clone()],
            )
            .with_related(related),
        );
    }
    out
}
