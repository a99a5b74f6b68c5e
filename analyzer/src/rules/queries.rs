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

/// What the whole tree (every arch's files, not only the analyzed arch's)
/// uses of locks and data: the lock expressions passed to lock
/// operations, the member names in call arguments, the globals defined.
/// Summed once per tree from per-file parts; rules read only the answers
/// it gives ([`TreeAnswers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeUsage {
    pub taken: std::collections::BTreeSet<String>,
    pub fields: std::collections::BTreeSet<String>,
    pub globals: std::collections::BTreeSet<String>,
}

impl TreeUsage {
    /// The usage of every file's facts.
    pub fn of(files: &[std::sync::Arc<crate::facts::FileFacts>], api: &ApiModel) -> TreeUsage {
        let mut u = TreeUsage::default();
        for f in files {
            u.add(&TreeUsage::of_file(f, api));
        }
        u
    }

    /// Add another part of the tree (the usage of a tree is the union of
    /// its files' usages).
    pub fn add(&mut self, other: &TreeUsage) {
        self.taken.extend(other.taken.iter().cloned());
        self.fields.extend(other.fields.iter().cloned());
        self.globals.extend(other.globals.iter().cloned());
    }

    /// The usage of one file's facts.
    pub fn of_file(f: &crate::facts::FileFacts, api: &ApiModel) -> TreeUsage {
        let mut u = TreeUsage::default();
        for g in &f.globals {
            u.globals.insert(g.name.clone());
        }
        for func in &f.functions {
            crate::graph::visit_calls(&func.body.stmts, &mut |c| {
                if let Some((_, l, _)) = call_lock_op(api, c) {
                    u.taken.insert(l.name);
                }
                for arg in &c.args {
                    // Most arguments name no member: skip them cheaply.
                    if !arg.text.contains("->") && !arg.text.contains('.') {
                        continue;
                    }
                    let t = arg.text.replace(' ', "");
                    for part in t.split("->").skip(1).chain(t.split('.').skip(1)) {
                        let field: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if !field.is_empty() {
                            u.fields.insert(field);
                        }
                    }
                }
            });
        }
        u
    }

    /// Whether some file defines or takes the lock `locking.rst` names
    /// `doc_name`: a global by its name, a member by its last component
    /// (as a member name in some call, or ending a lock expression).
    pub fn has_documented_lock(&self, api: &ApiModel, doc_name: &str) -> bool {
        let name = lock_code_name(api, doc_name);
        if is_global_lock_name(&name) {
            self.globals.contains(&name) || self.taken.contains(&name)
        } else {
            let last = *lock_name_components(&name).last().unwrap_or(&"");
            self.fields.contains(last) || self.taken.iter().any(|t| lock_name_components(t).last() == Some(&last))
        }
    }
}

/// What the rules ask of the whole tree, beyond the files of the arch they
/// analyze (HW013: is a documented lock still defined or taken anywhere?).
///
/// An arch's result depends on the rest of the tree only through these
/// answers, so their [`TreeAnswers::digest`], not the whole usage's, is part
/// of its cache key: a commit that adds a global or a lock call in one arch
/// re-analyzes the others only when it changes an answer. A rule that needs
/// more of the tree asks it here, so that the key covers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeAnswers {
    /// For each lock of `locking.rst`, in the document's order: whether
    /// some file of the tree defines or takes it.
    pub documented_lock_exists: Vec<bool>,
}

impl TreeAnswers {
    /// The answers for a tree's usage and its `locking.rst`.
    pub fn of(usage: &TreeUsage, doc: Option<&crate::kernel_docs::LockingDoc>, api: &ApiModel) -> TreeAnswers {
        let documented_lock_exists =
            doc.map(|d| d.locks.iter().map(|l| usage.has_documented_lock(api, &l.name)).collect()).unwrap_or_default();
        TreeAnswers { documented_lock_exists }
    }

    /// A hash of the answers (stable across runs).
    pub fn digest(&self) -> u64 {
        let bits: Vec<u8> = self.documented_lock_exists.iter().map(|&b| b as u8).collect();
        crate::hash::fnv(&[b"documented_lock_exists", &bits])
    }
}

/// The components of a lock name: `kvm->arch.tsc_write_lock` ->
/// `kvm`, `arch`, `tsc_write_lock`; `kvm_arch::tsc_write_lock` ->
/// `kvm_arch`, `tsc_write_lock`.
pub fn lock_name_components(name: &str) -> Vec<&str> {
    name.split("->").flat_map(|p| p.split("::")).flat_map(|p| p.split('.')).map(str::trim).collect()
}

/// A lock named by one identifier (`kvm_lock`), not a member.
pub fn is_global_lock_name(name: &str) -> bool {
    lock_name_components(name).len() == 1
}

/// The lock the code names for a documented lock name (`cpus_read_lock`
/// is the API model's `cpu_hotplug_lock`).
pub fn lock_code_name(api: &ApiModel, doc_name: &str) -> String {
    api.lock_op(doc_name).and_then(|o| o.fixed_lock).map(str::to_string).unwrap_or_else(|| doc_name.to_string())
}

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
    let adds: Vec<(String, String)> = out.iter().filter_map(|w| Some((w.member.clone()?, w.head.clone()?))).collect();
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
    site.held_with_entry(&reach.key.held_must).contains_name(lock)
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
    for l in site.held_with_entry(&reach.key.held_must).iter() {
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

/// A read of host hardware state (API model `state_reads`: `rdmsrl_safe()`
/// and friends) whose value lands in per-CPU data: directly (the
/// destination points into data obtained from a per-CPU accessor in the
/// same function) or through a local that is then stored there.
#[derive(Debug, Clone)]
pub struct PercpuSnapshot {
    pub function: FnId,
    /// The state-read call.
    pub span: Span,
    pub call: String,
    /// The per-CPU variable written (`user_return_msrs`).
    pub percpu: String,
    /// The local the value passes through, when it is not read in place.
    pub via_local: Option<String>,
}

/// The leading identifier of an lvalue or pointer expression:
/// `&m->star` -> `m`, `msrs->values[i]` -> `msrs`, `(*p).x` -> `p`.
pub fn root_ident(text: &str) -> Option<String> {
    let t = text.trim_start_matches(|c: char| c == '&' || c == '*' || c == '(' || c.is_whitespace());
    let id: String = t.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        None
    } else {
        Some(id)
    }
}

/// Every snapshot of host state into per-CPU data in the program.
pub fn percpu_snapshots(a: &Analysis<'_>) -> Vec<PercpuSnapshot> {
    use crate::facts::Event;
    let api = a.api;
    let mut out = Vec::new();
    for &id in &a.program.functions {
        let func = a.program.func(id);
        let mut events: Vec<&Event> = Vec::new();
        crate::graph::visit_events(&func.body.stmts, &mut |e| events.push(e));
        // The per-CPU variable behind a per-CPU accessor call.
        let accessor_var = |c: &crate::facts::CallSite| -> Option<String> {
            let Callee::Direct(name) = &c.callee else { return None };
            let acc = api.percpu_accessor(name)?;
            let arg = c.args.get(acc.var_arg)?;
            arg.ident.clone().or_else(|| root_ident(&arg.text))
        };
        // Locals pointing into per-CPU data: `m = this_cpu_ptr(&x)`.
        let mut percpu_locals: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let mut last_accessor: Option<(String, String)> = None;
        for e in &events {
            match e {
                Event::Call(c) => {
                    if let (Callee::Direct(n), Some(v)) = (&c.callee, accessor_var(c)) {
                        last_accessor = Some((n.clone(), v));
                    }
                }
                Event::LocalAssign(l) => {
                    if let (Some(f), Some((n, v))) = (&l.value_call, &last_accessor) {
                        if f == n {
                            percpu_locals.insert(l.name.clone(), v.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        for e in &events {
            let Event::Call(c) = e else { continue };
            let Callee::Direct(name) = &c.callee else { continue };
            let Some(sr) = api.state_read(name) else { continue };
            let Some(dest) = c.args.get(sr.dest_arg) else { continue };
            let mut found: Option<(String, Option<String>)> = None;
            // An accessor inside the destination: `&this_cpu_ptr(&x)->y`.
            for e2 in &events {
                if let Event::Call(inner) = e2 {
                    if inner.span.start >= dest.span.start && inner.span.end <= dest.span.end {
                        if let Some(v) = accessor_var(inner) {
                            found = Some((v, None));
                        }
                    }
                }
            }
            let root = root_ident(dest.ident.as_deref().unwrap_or(&dest.text));
            if found.is_none() {
                if let Some(r) = &root {
                    if let Some(v) = percpu_locals.get(r) {
                        found = Some((v.clone(), None));
                    } else if !a.program.globals.contains_key(r.as_str()) {
                        // Read into a local, then stored into per-CPU data.
                        for e2 in &events {
                            match e2 {
                                Event::FieldAssign(fa) if fa.value_ident.as_deref() == Some(r.as_str()) => {
                                    if let Some(v) = root_ident(&fa.base).and_then(|b| percpu_locals.get(&b)) {
                                        found = Some((v.clone(), Some(r.clone())));
                                    }
                                }
                                Event::Call(w) => {
                                    let Callee::Direct(wn) = &w.callee else { continue };
                                    let Some(acc) = api.percpu_accessor(wn) else { continue };
                                    let stores = w.args.iter().enumerate().any(|(i, arg)| {
                                        i != acc.var_arg
                                            && Some(i) != acc.cpu_arg
                                            && arg.ident.as_deref() == Some(r.as_str())
                                    });
                                    if stores {
                                        if let Some(v) = accessor_var(w) {
                                            found = Some((v, Some(r.clone())));
                                        }
                                    }
                                }
                                _ => {}
                            }
                            if found.is_some() {
                                break;
                            }
                        }
                    }
                }
            }
            if let Some((percpu, via_local)) = found {
                out.push(PercpuSnapshot { function: id, span: c.span, call: name.clone(), percpu, via_local });
            }
        }
    }
    out.sort_by_key(|s| (s.function, s.span.start));
    out
}
