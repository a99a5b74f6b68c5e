//! Series step 6: rename the arch hook called just before a new VM is
//! added to the global VM list to `<ns>_arch_add_<object>()`, call it with
//! the locks held at the list add, and hand it the usage count — when that
//! closes no lock-order cycle.
//!
//! The review wanted the hook "under kvm_lock, with kvm_usage_count": the
//! architecture sees a usage count that cannot change under it (to enable
//! virtualization itself when the first VM is created) and the VM is not on
//! the list before the architecture accepted it. A stable count needs the
//! count's own lock held across the hook; since step 4 that is a dedicated
//! mutex that the CPU hotplug callbacks take with `cpu_hotplug_lock` held
//! for write. Any hook implementation that takes `cpus_read_lock()`, or
//! waits for code that does, then closes a cycle through the hotplug lock.
//! On 6.1, x86's hook creates the NX-recovery worker and waits for it to
//! start (`wait_for_completion()`), while the worker first calls
//! `cgroup_attach_task_all()`, which takes `cpus_read_lock()`: a CPU coming
//! online holds the hotplug lock and waits for the count's lock in its
//! ONLINE callback, and nobody makes progress. So the transformation
//! proposes its edits only after the lock-order rule (HW014) found no cycle
//! they introduce; otherwise it refuses, citing the cycle. What stays true
//! without it: the hook already runs before the VM is added to the list; a
//! count read without its lock is not stable, so a rename that only passes
//! it would promise what it does not give.
//!
//! Targets, found mechanically:
//! - the VM-creation function: the common function that `list_add()`s to a
//!   global list with a global mutex held (6.1: `kvm_create_vm()`, adding to
//!   `vm_list` under `kvm_lock`, and after step 4 also `kvm_usage_lock`);
//! - the hook: the last call before those mutexes are taken, when it is a
//!   `__weak` function of common code (6.1: `kvm_arch_post_init_vm()`);
//! - the usage count: the int global of common code written by the
//!   functions that enable or disable virtualization on all CPUs (those
//!   that register or broadcast the per-CPU enable/disable path; 6.1:
//!   `kvm_usage_count`), and its lock: the lock held at every write of it.
//!
//! The new name keeps the hook's namespace up to `arch_`, and names the
//! object after the list it joins: `kvm_arch_` + `add_` + `vm` (from
//! `vm_list`) = `kvm_arch_add_vm`, as the seed proposes.
//!
//! Preconditions: the count's lock is one of the locks held at the list add
//! (otherwise the count handed over would not be stable: on plain 6.1 the
//! raw `kvm_count_lock` protects it, on 6.12 `kvm_usage_lock`, which VM
//! creation does not hold there); the hook is called only from the
//! VM-creation function, right before the locks, as `r = hook(...); if (r)
//! goto label;`; the edits introduce no lock-order cycle.

use std::collections::BTreeSet;

use analyzer::api::LockEffect;
use analyzer::contexts::Analysis;
use analyzer::enable_path::EnablePath;
use analyzer::facts::{AccessKind, CallSite, Callee, Event, Function, Stmt};
use analyzer::graph::{visit_calls, FnId};
use analyzer::locks::{call_lock_op, OccurrenceKind};
use analyzer::rules::queries::list_writes;

use super::util::{
    cycle_rule_registered, describe_cycle, file_bytes, gotos_to, ident_uses, indent_at, introduced_cycles,
    line_end_incl, line_start, matching_paren, stmt_span, text_of, whole_lines, wrap,
};
use super::{Change, Refusal, TransformInput};
use crate::edit::Edit;

/// Slug of this transformation (file names, `--only`).
pub const SLUG: &str = "arch-add-vm";
const NAME: &str = SLUG;

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal { transformation: NAME, reason: reason.into() }
}

/// Where a VM is added to the global VM list.
pub(crate) struct VmCreation {
    pub function: FnId,
    pub path: String,
    /// The global list head (`vm_list`).
    pub head: String,
    /// The first global mutex held around the add (`kvm_lock`).
    pub lock: String,
    /// Every global mutex held at the add (`kvm_lock`, `kvm_usage_lock`).
    pub held: Vec<String>,
    /// The `list_add()` call.
    pub add: analyzer::facts::Span,
}

/// The common function that adds to a global list under a global mutex.
pub(crate) fn find_vm_creation(a: &Analysis<'_>) -> Result<VmCreation, String> {
    let mut found: Vec<VmCreation> = Vec::new();
    for w in list_writes(a) {
        let path = &a.program.file(w.function).path;
        if path.starts_with("arch/") || w.op != analyzer::api::ListOpKind::Add {
            continue;
        }
        let Some(head) = w.head.clone() else { continue };
        let held: Vec<String> = w
            .state
            .must
            .iter()
            .filter(|l| l.kind == "mutex" && a.program.globals.contains_key(l.name.as_str()))
            .map(|l| l.name.clone())
            .collect();
        let Some(lock) = held.first().cloned() else { continue };
        found.push(VmCreation { function: w.function, path: path.clone(), head, lock, held, add: w.span });
    }
    match found.len() {
        0 => Err("no common function adds to a global list with a global mutex held (no VM-creation function)".into()),
        1 => Ok(found.remove(0)),
        _ => {
            // Several: the one whose function has a teardown twin that deletes
            // from the same list is VM creation; keep those with a weak hook.
            let names: Vec<String> = found.iter().map(|f| a.program.func(f.function).name.clone()).collect();
            let with_hook: Vec<VmCreation> =
                found.into_iter().filter(|c| hook_before_lock(a, c).ok().flatten().is_some()).collect();
            match with_hook.len() {
                1 => Ok(with_hook.into_iter().next().expect("one")),
                _ => Err(format!(
                    "several common functions add to a global list under a mutex ({}); cannot tell which creates VMs",
                    names.join(", ")
                )),
            }
        }
    }
}

/// The calls of a function in source order.
fn calls_of(func: &Function) -> Vec<&CallSite> {
    let mut out = Vec::new();
    visit_calls(&func.body.stmts, &mut |c| out.push(c));
    out.sort_by_key(|c| c.span.start);
    out
}

/// The acquisitions of the mutexes held at the list add, just before it
/// (consecutive calls, first one first), and the hook called just before
/// them (a `__weak` common function), if any. `Err` names a hook already
/// called under the locks.
pub(crate) fn hook_before_lock<'a>(
    a: &Analysis<'a>,
    c: &VmCreation,
) -> Result<Option<(&'a CallSite, Vec<&'a CallSite>)>, String> {
    let func = a.program.func(c.function);
    let calls = calls_of(func);
    let Some(add_i) = calls.iter().position(|k| k.span == c.add) else { return Ok(None) };
    let acquires =
        |k: &CallSite| matches!(call_lock_op(a.api, k), Some((LockEffect::Acquire, l, _)) if c.held.contains(&l.name));
    // The last acquisition of the outermost lock before the add.
    let Some(lock_i) = calls[..add_i]
        .iter()
        .rposition(|k| matches!(call_lock_op(a.api, k), Some((LockEffect::Acquire, l, _)) if l.name == c.lock))
    else {
        return Ok(None);
    };
    let is_weak_hook = |k: &CallSite| match &k.callee {
        Callee::Direct(n) => a
            .program
            .files
            .iter()
            .any(|f| !f.path.starts_with("arch/") && f.functions.iter().any(|g| &g.name == n && g.is_weak())),
        _ => false,
    };
    // Already under the lock?
    if let Some(inside) = calls[lock_i + 1..add_i].iter().find(|k| is_weak_hook(k)) {
        return Err(format!(
            "{}() already calls the arch hook `{}()` with `{}` held, just before adding the VM to `{}`",
            func.name,
            inside.callee.display(),
            c.lock,
            c.head
        ));
    }
    let lock_calls: Vec<&CallSite> = calls[lock_i..add_i].iter().copied().filter(|k| acquires(k)).collect();
    let Some(prev) = calls[..lock_i].iter().rev().find(|k| call_lock_op(a.api, k).is_none()) else { return Ok(None) };
    Ok(is_weak_hook(prev).then_some((*prev, lock_calls)))
}

/// `a`, `a and b`, `a, b and c`.
fn names_and(v: &[String]) -> String {
    match v {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The new name: the hook's namespace through `arch_`, `add_`, and the
/// list's object.
pub fn add_hook_name(hook: &str, head: &str) -> String {
    let object = head.strip_suffix("_list").or_else(|| head.strip_suffix("_head")).unwrap_or(head);
    let ns = match hook.find("_arch_") {
        Some(i) => &hook[..i + "_arch_".len()],
        None => match hook.find('_') {
            Some(i) => &hook[..=i],
            None => "",
        },
    };
    let ns = if ns.ends_with("arch_") { ns.to_string() } else { format!("{ns}arch_") };
    format!("{ns}add_{object}")
}

/// The usage count: int globals of common code written by functions that
/// run the per-CPU enable/disable path on all CPUs.
fn find_usage_count(a: &Analysis<'_>) -> Result<String, String> {
    let ep = EnablePath::find(a);
    let mut path_fns: BTreeSet<FnId> = ep.enable_primitives.iter().chain(&ep.disable_primitives).copied().collect();
    path_fns.extend(ep.startup_roots.iter().chain(&ep.teardown_roots).map(|&r| a.roots[r].function));
    if path_fns.is_empty() {
        return Err("no common CPU hotplug callback enables virtualization (no enable path)".into());
    }
    // Does `f` reach the path within a few calls?
    let reaches_path = |f: FnId| {
        let mut seen = BTreeSet::new();
        let mut frontier = vec![(f, 0)];
        while let Some((g, d)) = frontier.pop() {
            if path_fns.contains(&g) {
                return true;
            }
            if d >= 3 || !seen.insert(g) {
                continue;
            }
            for e in a.program.calls.get(&g).into_iter().flatten() {
                frontier.push((e.callee, d + 1));
            }
        }
        false
    };
    let mut counts: BTreeSet<String> = BTreeSet::new();
    for &id in &a.program.functions {
        if a.program.file(id).path.starts_with("arch/") {
            continue;
        }
        let func = a.program.func(id);
        let mut runs_path = false;
        visit_calls(&func.body.stmts, &mut |c| {
            let Callee::Direct(n) = &c.callee else { return };
            let Some(reg) = a.api.registration(n) else { return };
            for &ai in &reg.callback_args {
                let Some(cb) = c.args.get(ai).and_then(|x| x.ident.as_deref()) else { continue };
                if a.program.lookup(id.file, cb).iter().copied().any(reaches_path) {
                    runs_path = true;
                }
            }
        });
        if !runs_path {
            continue;
        }
        analyzer::graph::visit_events(&func.body.stmts, &mut |e| {
            if let Event::Access(acc) = e {
                if acc.kind != AccessKind::Write {
                    return;
                }
                let int_global = a.program.globals.get(acc.name.as_str()).is_some_and(|gs| {
                    gs.iter().any(|(fi, g)| {
                        !a.program.files[*fi as usize].path.starts_with("arch/")
                            && matches!(g.type_text.trim(), "int" | "unsigned int" | "long" | "unsigned long")
                    })
                });
                if int_global {
                    counts.insert(acc.name.clone());
                }
            }
        });
    }
    match counts.len() {
        1 => Ok(counts.into_iter().next().unwrap_or_default()),
        0 => Err("no usage count: no int global is written where virtualization is enabled on all CPUs".into()),
        _ => Err(format!(
            "several globals could be the usage count ({})",
            counts.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The locks held at every write of `count` (on the site, or on every
/// entry to the writing function); `Err` when a write holds none.
fn count_locks(a: &Analysis<'_>, count: &str) -> Result<BTreeSet<String>, String> {
    let mut ids: Vec<_> = a.locks.keys().copied().collect();
    ids.sort();
    let mut common: Option<BTreeSet<String>> = None;
    for id in ids {
        for o in &a.locks[&id].occurrences {
            let OccurrenceKind::Access(acc) = o.kind else { continue };
            if acc.name != count || acc.kind != AccessKind::Write {
                continue;
            }
            let reaches = a.reaches(id);
            let mut held: BTreeSet<String> = o.state.must.names().iter().map(|s| s.to_string()).collect();
            if let Some(entry) = reaches
                .iter()
                .map(|r| r.key.held_must.names().iter().map(|s| s.to_string()).collect::<BTreeSet<_>>())
                .reduce(|x, y| x.intersection(&y).cloned().collect())
            {
                held.extend(entry);
            }
            if held.is_empty() {
                return Err(format!(
                    "`{count}` is written in {}() ({}:{}) with no lock held: no lock keeps it stable to hand it \
                     to the hook",
                    a.program.func(id).name,
                    a.program.file(id).path,
                    acc.span.line
                ));
            }
            common = Some(match common {
                None => held,
                Some(c) => c.intersection(&held).cloned().collect(),
            });
        }
    }
    Ok(common.unwrap_or_default())
}

/// The statement index in `block` of the top-level statement containing `pos`.
fn top_index(stmts: &[Stmt], pos: u32) -> Option<usize> {
    stmts.iter().position(|s| {
        let sp = stmt_span(s);
        sp.start <= pos && pos < sp.end
    })
}

/// Rename a function and add a parameter, in a definition or prototype
/// whose text starts at `start`; `name_at` is the offset of the name.
fn rename_with_param(path: &str, src: &[u8], name_at: usize, old: &str, new: &str, param: &str) -> Option<Vec<Edit>> {
    let close = matching_paren(src, name_at + old.len())?;
    let params = text_of(src, name_at + old.len(), close + 1);
    let params = params.trim();
    let inner = params.trim_start_matches('(').trim_end_matches(')').trim();
    let mut edits = vec![Edit::replace(path, name_at, name_at + old.len(), new)];
    if inner.is_empty() || inner == "void" {
        let open = name_at + old.len() + src[name_at + old.len()..].iter().position(|&b| b == b'(')?;
        edits.push(Edit::replace(path, open + 1, close, param));
    } else {
        edits.push(Edit::insert(path, close, format!(", {param}")));
    }
    Some(edits)
}

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let analyses = input.tree.analyze_all(input.api);
    let Some(a) = analyses.first() else { return Err(refuse("the tree has no code to analyze")) };
    let c = find_vm_creation(a).map_err(refuse)?;
    let creator = a.program.func(c.function);
    let (hook_call, lock_calls) = match hook_before_lock(a, &c) {
        Err(e) => return Err(refuse(e)),
        Ok(None) => {
            return Err(refuse(format!(
                "{}() calls no __weak arch hook just before taking `{}` to add the VM to `{}` (hook not found)",
                creator.name, c.lock, c.head
            )))
        }
        Ok(Some(x)) => x,
    };
    let Callee::Direct(hook) = &hook_call.callee else { return Err(refuse("the hook is not a direct call")) };
    let new = add_hook_name(hook, &c.head);
    let held_list = names_and(&c.held);
    let count = find_usage_count(a).map_err(refuse)?;
    // The count is stable in the hook only with its lock held there.
    let mut count_lock: Option<BTreeSet<String>> = None;
    for an in &analyses {
        let l = count_locks(an, &count).map_err(refuse)?;
        count_lock = Some(match count_lock {
            None => l,
            Some(k) => k.intersection(&l).cloned().collect(),
        });
    }
    let count_lock = count_lock.unwrap_or_default();
    let Some(count_lock) = count_lock.iter().find(|l| c.held.contains(l)).cloned() else {
        return Err(refuse(format!(
            "`{count}` is protected by {}, which {}() does not hold where it adds the VM to `{}` (it holds {}): \
             the count handed to the hook there would not be stable",
            if count_lock.is_empty() {
                "no single lock".to_string()
            } else {
                count_lock.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
            },
            creator.name,
            c.head,
            c.held.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
        )));
    };
    // The new name must be free.
    for f in &input.tree.files {
        if f.functions.iter().any(|g| g.name == new) || f.prototypes.iter().any(|g| g.name == new) {
            return Err(refuse(format!("`{new}()` already exists in {}", f.path)));
        }
    }

    // The creating function's statements: `r = hook(...);`, `if (r) goto X;`,
    // the lock, the add.
    let src = file_bytes(input.tree, &c.path);
    let stmts = &creator.body.stmts;
    let lock_idx: Vec<Option<usize>> = lock_calls.iter().map(|k| top_index(stmts, k.span.start)).collect();
    let (Some(hi), Some(Some(li)), Some(ai)) =
        (top_index(stmts, hook_call.span.start), lock_idx.first().copied(), top_index(stmts, c.add.start))
    else {
        return Err(refuse(format!(
            "{}(): the hook, the lock and the list add are not top-level statements",
            creator.name
        )));
    };
    // The lock statements are consecutive, one acquisition each, right before the add.
    let shape_ok =
        hi + 2 == li && li + lock_calls.len() == ai && lock_idx.iter().enumerate().all(|(k, i)| *i == Some(li + k));
    let (
        Stmt::Simple { events, span: hspan, .. },
        Stmt::If { then_branch, else_branch: None, cond_text, span: ifspan, .. },
    ) = (&stmts[hi], &stmts[hi + 1])
    else {
        return Err(refuse(format!(
            "{}(): expected `r = {hook}(...); if (r) goto ...;` before the lock",
            creator.name
        )));
    };
    let result = events.iter().find_map(|e| match e {
        Event::LocalAssign(l) if l.value_call.as_deref() == Some(hook.as_str()) => Some(l.name.clone()),
        _ => None,
    });
    let target = match then_branch.stmts.as_slice() {
        [Stmt::Goto { label, .. }] => Some(label.clone()),
        _ => None,
    };
    let (Some(result), Some(target), true) = (result, target, shape_ok) else {
        return Err(refuse(format!(
            "{}(): expected `r = {hook}(...); if (r) goto <label>;` immediately before `{}` is taken to add the VM",
            creator.name, c.lock
        )));
    };
    if cond_text.trim() != result {
        return Err(refuse(format!(
            "{}(): the hook's result is tested as `{cond_text}`, expected `{result}`",
            creator.name
        )));
    }
    // The label the failure jumps to; the new unlock label goes before it,
    // which needs the statement before it not to fall through.
    let Some(ti) = stmts.iter().position(|s| matches!(s, Stmt::Label { name, .. } if *name == target)) else {
        return Err(refuse(format!("{}(): label `{target}` is not at the top level of the function", creator.name)));
    };
    if !matches!(ti.checked_sub(1).map(|p| &stmts[p]), Some(Stmt::Return { .. } | Stmt::Goto { .. })) {
        return Err(refuse(format!(
            "{}(): the code before label `{target}` falls through into it; cannot add an unlock label there",
            creator.name
        )));
    }
    let labels: BTreeSet<String> = {
        let mut v = BTreeSet::new();
        fn collect(stmts: &[Stmt], v: &mut BTreeSet<String>) {
            for s in stmts {
                match s {
                    Stmt::Label { name, .. } => {
                        v.insert(name.clone());
                    }
                    Stmt::Block(b) => collect(&b.stmts, v),
                    Stmt::Preproc { branches, .. } => branches.iter().for_each(|b| collect(&b.body.stmts, v)),
                    _ => {}
                }
            }
        }
        collect(stmts, &mut v);
        v
    };
    let unlock_label = ["out_unlock".to_string(), format!("{target}_unlock")]
        .into_iter()
        .find(|l| !labels.contains(l))
        .ok_or_else(|| refuse(format!("{}(): no free name for the unlock label", creator.name)))?;
    let indent = indent_at(src, hspan.start as usize);
    // The releases of the locks right after the add, to copy.
    let mut unlock_text = String::new();
    for k in 0..lock_calls.len() {
        let Some(Stmt::Simple { span: sp, .. }) = stmts.get(ai + 1 + k) else {
            return Err(refuse(format!("{}(): `{}` is not released right after the list add", creator.name, c.lock)));
        };
        let t = text_of(src, sp.start as usize, sp.end as usize);
        if !c.held.iter().any(|l| t.contains(l.as_str())) {
            return Err(refuse(format!(
                "{}(): the locks are not released right after the list add (`{t}`)",
                creator.name
            )));
        }
        if k > 0 {
            unlock_text.push('\n');
            unlock_text.push_str(&indent);
        }
        unlock_text.push_str(&t);
    }
    let mut lock_text = String::new();
    for k in 0..lock_calls.len() {
        let sp = stmt_span(&stmts[li + k]);
        if k > 0 {
            lock_text.push('\n');
            lock_text.push_str(&indent);
        }
        lock_text.push_str(&text_of(src, sp.start as usize, sp.end as usize));
    }

    let mut edits: Vec<Edit> = Vec::new();
    // `r = hook(kvm);` ... `mutex_lock(&kvm_lock);` becomes
    // `mutex_lock(&kvm_lock);` `r = new(kvm, count);` `if (r) goto unlock;`.
    let hook_text = text_of(src, hspan.start as usize, hspan.end as usize);
    let call_at = hook_call.span.start as usize - hspan.start as usize;
    let call_text = text_of(src, hook_call.span.start as usize, hook_call.span.end as usize);
    let Some(rest) = call_text.strip_prefix(hook.as_str()) else {
        return Err(refuse(format!("{}(): unexpected call text `{call_text}`", creator.name)));
    };
    let Some(args) = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
        return Err(refuse(format!("{}(): unexpected call text `{call_text}`", creator.name)));
    };
    let new_call = if args.trim().is_empty() { format!("{new}({count})") } else { format!("{new}({args}, {count})") };
    let new_stmt = format!("{}{}{}", &hook_text[..call_at], new_call, &hook_text[call_at + call_text.len()..]);
    let if_text = text_of(src, ifspan.start as usize, ifspan.end as usize);
    let Some(goto_at) = if_text.rfind(target.as_str()) else {
        return Err(refuse(format!("{}(): cannot find `goto {target}`", creator.name)));
    };
    // When the hook's failure was the label's only user, the unlock goes
    // under that label instead (an unused label does not compile with -Werror).
    let mut jumps = Vec::new();
    gotos_to(&creator.body, &target, &mut jumps);
    let jump_to = if jumps.len() > 1 { unlock_label.as_str() } else { target.as_str() };
    let new_if = format!("{}{}{}", &if_text[..goto_at], jump_to, &if_text[goto_at + target.len()..]);
    let region_start = line_start(src, hspan.start as usize);
    let region_end = line_start(src, c.add.start as usize);
    edits.push(Edit::replace(
        &c.path,
        region_start,
        region_end,
        format!("{indent}{lock_text}\n{indent}{new_stmt}\n{indent}{new_if}\n"),
    ));
    // The unlock label before the failure's label.
    let tspan = stmt_span(&stmts[ti]);
    if jumps.len() > 1 {
        edits.push(Edit::insert(
            &c.path,
            line_start(src, tspan.start as usize),
            format!("{unlock_label}:\n{indent}{unlock_text}\n"),
        ));
    } else {
        edits.push(Edit::insert(&c.path, line_end_incl(src, tspan.start as usize), format!("{indent}{unlock_text}\n")));
    }

    // Every definition, prototype and call of the hook, in every file.
    let mut handled: BTreeSet<(String, usize)> = BTreeSet::new();
    handled.insert((c.path.clone(), hook_call.callee_span.start as usize));
    let param = "int usage_count";
    let mut arches: BTreeSet<String> = BTreeSet::new();
    let mut weak: Option<(String, &Function)> = None;
    for f in &input.tree.files {
        let fsrc = file_bytes(input.tree, &f.path);
        for g in f.functions.iter().filter(|g| &g.name == hook) {
            let at = g.name_span.start as usize;
            let e = rename_with_param(&f.path, fsrc, at, hook, &new, param).ok_or_else(|| {
                refuse(format!("{}:{}: cannot read the parameters of {hook}()", f.path, g.name_span.line))
            })?;
            edits.extend(e);
            handled.insert((f.path.clone(), at));
            if g.is_weak() {
                weak = Some((f.path.clone(), g));
            }
            if let Some(arch) = &f.arch {
                arches.insert(arch.clone());
            }
        }
        for p in f.prototypes.iter().filter(|p| &p.name == hook) {
            let uses = ident_uses(fsrc, p.span.start as usize, p.span.end as usize, hook);
            let Some(&at) = uses.first() else { continue };
            let e = rename_with_param(&f.path, fsrc, at, hook, &new, param)
                .ok_or_else(|| refuse(format!("{}:{}: cannot read the prototype of {hook}()", f.path, p.span.line)))?;
            edits.extend(e);
            handled.insert((f.path.clone(), at));
        }
        for g in &f.functions {
            let mut other: Option<u32> = None;
            visit_calls(&g.body.stmts, &mut |k| {
                if matches!(&k.callee, Callee::Direct(n) if n == hook) && !std::ptr::eq(k, hook_call) {
                    other = Some(k.span.line);
                }
            });
            if let Some(line) = other {
                return Err(refuse(format!(
                    "{}:{line}: {}() also calls {hook}(), where the usage count is not known",
                    f.path, g.name
                )));
            }
        }
    }
    // Nothing else may name the hook.
    for f in &input.tree.source.files {
        if !(f.path.ends_with(".c") || f.path.ends_with(".h")) {
            continue;
        }
        for at in ident_uses(&f.bytes, 0, f.bytes.len(), hook) {
            if !handled.contains(&(f.path.clone(), at)) {
                let line = f.bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(refuse(format!(
                    "{}:{line} refers to `{hook}` in a way this transformation does not rewrite",
                    f.path
                )));
            }
        }
    }
    // The weak default's comment.
    if let Some((path, g)) = &weak {
        let wsrc = file_bytes(input.tree, path);
        let start = line_start(wsrc, g.span.start as usize);
        let before = text_of(wsrc, 0, start);
        let trimmed = before.trim_end();
        if trimmed.ends_with("*/") {
            if let Some(open) = trimmed.rfind("/*") {
                let obj = g.params.first().map(|p| format!("@{}", p.name)).unwrap_or_else(|| "the VM".into());
                let text = format!(
                    "Called with {} held, after {obj} is otherwise initialized and just before it is added to {}. \
                     @usage_count is the value of {count} at that point: the number of users of hardware \
                     virtualization.",
                    held_list, c.head
                );
                let mut comment = String::from("/*\n");
                for l in wrap(&text, 77).lines() {
                    comment.push_str(&format!(" * {l}\n"));
                }
                comment.push_str(" */\n");
                let (cs, _) = whole_lines(wsrc, open, open + 1);
                edits.push(Edit::replace(path, cs, start, comment));
            }
        }
    }

    let mut updated: Vec<String> = vec!["the __weak default and its comment".into(), "the prototype".into()];
    if !arches.is_empty() {
        updated.push(format!(
            "the {} implementation{}",
            names_and(&arches.iter().cloned().collect::<Vec<_>>()),
            if arches.len() > 1 { "s" } else { "" }
        ));
    }
    let updated = names_and(&updated);
    // The lock-order check: the hook must not close a cycle under the locks.
    let cycles = introduced_cycles(input.tree, input.api, input.findings, &edits).map_err(refuse)?;
    if let Some(cy) = cycles.first() {
        return Err(refuse(format!(
            "calling {hook}() with {held_list} held (`{count_lock}` keeps `{count}` stable, as handing the \
             count to the hook requires) would close a lock-order cycle: {}. Without `{count_lock}` the count \
             is not stable, and the hook already runs before the VM is added to `{}`: no rename is proposed",
            describe_cycle(cy),
            c.head
        )));
    }
    let checked = if cycle_rule_registered() {
        format!(
            " The lock-order check finds no cycle this closes: no implementation takes, or waits for code \
             that takes, a lock ordered outside {held_list}."
        )
    } else {
        String::new()
    };
    let body = format!(
        "Rename {hook}() to {new}(), call it with {held_list} held right before the \
         VM is added to {head}, and pass in {count}.\n\n\
         As discussed on the list, architectures should get hooks for the points \
         where hardware virtualization may need to change state, and decide \
         themselves when and how to enable it, instead of common code fitting \
         every architecture's needs. Adding a VM is such a point: called with \
         {count_lock}, which protects {count}, held, the hook sees a stable usage \
         count, e.g. to enable virtualization when the first VM is created, and \
         the VM cannot be seen on {head} before the architecture accepted it.{checked}\n\n\
         If the hook fails, the locks are dropped before unwinding as before.\n\n\
         Update {updated}.",
        head = c.head,
    );
    Ok(Change {
        subject: format!("KVM: Rename {hook}() to {new}()"),
        body: wrap(&body, 72),
        edits,
        removes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::add_hook_name;

    #[test]
    fn new_names_come_from_the_namespace_and_the_list() {
        assert_eq!(add_hook_name("kvm_arch_post_init_vm", "vm_list"), "kvm_arch_add_vm");
        assert_eq!(add_hook_name("foo_arch_guest_added", "guest_list"), "foo_arch_add_guest");
        assert_eq!(add_hook_name("bar_post_init", "guests"), "bar_arch_add_guests");
    }
}
