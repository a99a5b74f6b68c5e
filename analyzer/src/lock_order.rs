//! Lock classes and the lock-order graph (HW014's input), after lockdep.
//!
//! **Classes.** A global lock is its symbol (`kvm_lock`); a lock reached
//! through a pointer is named by the struct type and member that hold it
//! (`kvm->slots_lock` with `struct kvm *kvm` is `struct kvm.slots_lock`,
//! `vcpu->kvm->srcu` is `struct kvm.srcu`), resolved from the declared types
//! of parameters, locals, globals and struct members. A lock expression that
//! cannot be resolved (a `spinlock_t *lock` parameter, a cast) is a class of
//! its own, `?function:expression`, never merged with another.
//!
//! **Acquisitions.** A lock operation of the API model, in its mode (write,
//! read, recursive read: [`AcquireMode`]); a wait for every reader of a class
//! (`synchronize_srcu()`), which lockdep models as a write acquisition; what
//! a kernel function outside KVM takes (`static_branch_inc()` takes
//! `cpus_read_lock()`), from the model's `lock_order.takes`; a wait for a
//! completion, which waits for what the code signalling it (the same
//! completion class) takes before signalling; a flush of a work item, which
//! waits for what its function takes; a call that runs a callback on other
//! CPUs and waits for it (`on_each_cpu(f, info, 1)`, `stop_machine(f, ...)`,
//! the model's `waited_callbacks`), which waits for what the callback takes
//! (lockdep has no such arrow: the callback runs on another CPU, but a CPU
//! holding what the callback needs while waiting for the caller's lock
//! deadlocks all the same). Try-locks acquire nothing (they do not wait),
//! as in lockdep; `kthread_stop()` of a task pointer, which waits for what
//! the thread function bound to it (`g->task = kthread_run(fn, ...)`) takes.
//! A task handed back through an out-parameter is not followed.
//!
//! **Edges.** `A -> B` when B is acquired (directly, in a callee, or by a
//! wait) while A is definitely held in the same function, or while the
//! machinery running a callback holds A for it (a CPU hotplug callback runs
//! while the control CPU holds `cpu_hotplug_lock` for write and waits for
//! it). Only code reachable from a root gives edges; each edge keeps one
//! witness: root -> ... -> the function holding A -> ... -> the site taking B.
//!
//! **Cycles** follow lockdep's rule for readers: a cycle does not deadlock
//! when at some class in it the incoming edge only acquires it as a
//! recursive reader and the outgoing edge only holds it as a reader (a
//! recursive reader is not blocked by a waiting writer while another reader
//! holds the lock), or when the class is never taken for write at all. A
//! non-recursive read (`down_read()`, `cpus_read_lock()`) does wait behind a
//! pending writer, so it closes cycles like a write.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};

use crate::api::{AcquireMode, ApiModel, LockEffect};
use crate::contexts::{Analysis, Step};
use crate::facts::{Arg, CallSite, Callee, Function, Span, StructDef};
use crate::graph::{type_tag, FnId, Program};
use crate::locks::{analyze_function_with, call_lock_op, lock_name, FunctionLocks, HeldLock, LockSummary};
use crate::locks::{AnomalyKind, OccurrenceKind};

/// Longest cycle searched for (edges).
pub const MAX_CYCLE_LEN: usize = 6;
/// Cycles reported at most (smallest first).
pub const MAX_CYCLES: usize = 64;
/// Steps of the cycle search before it stops (said in the statistics).
const CYCLE_SEARCH_BUDGET: usize = 2_000_000;

/// A lock class name: `kvm_lock`, `struct kvm.slots_lock`,
/// `?kvm_foo:lock` (unresolved, its own class).
pub type Class = String;

/// Whether a class name is an unresolved one.
pub fn is_unknown_class(c: &str) -> bool {
    c.starts_with('?')
}

/// Resolves lock expressions of one program to classes.
pub struct ClassResolver<'p> {
    program: &'p Program<'p>,
    structs: HashMap<&'p str, &'p StructDef>,
}

impl<'p> ClassResolver<'p> {
    pub fn new(program: &'p Program<'p>) -> ClassResolver<'p> {
        let mut structs: HashMap<&'p str, &'p StructDef> = HashMap::default();
        for &fi in &program.in_scope {
            for s in &program.files[fi as usize].structs {
                // The first definition wins; a struct defined in both branches
                // of an `#ifdef` has the same lock members in practice.
                structs.entry(s.name.as_str()).or_insert(s);
            }
        }
        ClassResolver { program, structs }
    }

    fn member_type(&self, tag: &str, member: &str) -> Option<&'p str> {
        let s = self.structs.get(tag)?;
        s.members.iter().find(|m| m.name == member).map(|m| m.type_text.as_str())
    }

    fn declared_type(&self, func: &'p Function, name: &str) -> Option<&'p str> {
        if let Some(p) = func.params.iter().find(|p| p.name == name) {
            return Some(p.type_text.as_str());
        }
        if let Some(l) = func.locals.iter().find(|l| l.name == name) {
            return Some(l.type_text.as_str());
        }
        self.program.globals.get(name).and_then(|g| g.first()).map(|(_, g)| g.type_text.as_str())
    }

    /// The class of a lock expression (as normalized by
    /// [`lock_name`]: `kvm->slots_lock`, `kvm_lock`) written in `func`.
    /// Names that are already classes (from a helper's summary) are kept.
    ///
    /// A member of an anonymous struct member is named through it
    /// (`kvm->irqfds.lock` is `struct kvm.irqfds.lock`). A struct whose
    /// definition is outside the analyzed files (`struct gfn_to_pfn_cache`
    /// of `include/linux/kvm_types.h`) still names the class when the
    /// declaration says `struct`: the code compiles, so the member exists.
    /// A per-CPU lock (`per_cpu(l, cpu)`, `this_cpu_ptr(&l)`) is one class
    /// for every CPU's instance, as lockdep keys it (one init site).
    pub fn class_of(&self, func: &'p Function, expr: &str) -> Class {
        if expr.starts_with("struct ") || is_unknown_class(expr) {
            return expr.to_string();
        }
        let unknown = || format!("?{}:{expr}", func.name);
        if let Some(var) = per_cpu_variable(expr) {
            let local = func.params.iter().any(|p| p.name == var) || func.locals.iter().any(|l| l.name == var);
            return if local { unknown() } else { var.to_string() };
        }
        let parts = split_path(expr);
        let Some(parts) = parts else { return unknown() };
        let base = parts[0];
        if parts.len() == 1 {
            // A bare name: a global lock, unless it is a local or a
            // parameter (a pointer to some lock: unknown which).
            let local = func.params.iter().any(|p| p.name == base) || func.locals.iter().any(|l| l.name == base);
            return if local { unknown() } else { base.to_string() };
        }
        let Some(mut ty) = self.declared_type(func, base) else { return unknown() };
        let mut tag = type_tag(ty);
        // The member named so far: `irqfds.lock` through an anonymous
        // struct (whose members the facts keep under dotted names).
        let mut member = parts[1].to_string();
        for next in &parts[2..] {
            match self.member_type(tag, &member) {
                Some("") => member = format!("{member}.{next}"),
                Some(t) => {
                    ty = t;
                    tag = type_tag(ty);
                    member = next.to_string();
                }
                None => return unknown(),
            }
        }
        if tag.is_empty() {
            return unknown();
        }
        let defined = self.structs.contains_key(tag);
        if (defined && self.member_type(tag, &member).is_none()) || (!defined && !names_a_struct(ty)) {
            return unknown();
        }
        format!("struct {tag}.{member}")
    }
}

/// `struct foo *`, `const struct foo`: the type is a struct or union by its
/// declaration (not a typedef, which might name anything).
fn names_a_struct(type_text: &str) -> bool {
    let mut t = type_text.trim();
    for q in ["static ", "const ", "volatile "] {
        while let Some(rest) = t.strip_prefix(q) {
            t = rest.trim_start();
        }
    }
    t.starts_with("struct ") || t.starts_with("union ")
}

/// The variable of a per-CPU lock expression: `per_cpu(l, cpu)` (as
/// [`lock_name`] leaves it, `per_cpu(l,cpu`), `per_cpu_ptr(&l, cpu)`,
/// `this_cpu_ptr(&l)`, `raw_cpu_ptr(&l)` -> `l`.
fn per_cpu_variable(expr: &str) -> Option<&str> {
    let inner =
        ["per_cpu(", "per_cpu_ptr(", "this_cpu_ptr(", "raw_cpu_ptr("].iter().find_map(|p| expr.strip_prefix(p))?;
    let first = inner.split(',').next()?.trim_end_matches(')').trim();
    let var = first.strip_prefix('&').unwrap_or(first).trim();
    (!var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(var)
}

/// `vcpu->kvm->srcu` -> [vcpu, kvm, srcu]; `kvm->arch.x[2]` -> [kvm, arch, x];
/// `None` for anything but a member path from an identifier.
pub(crate) fn split_path(expr: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    for p in expr.split("->").flat_map(|p| p.split('.')) {
        let p = p.split('[').next().unwrap_or(p).trim();
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        parts.push(p);
    }
    (!parts.is_empty()).then_some(parts)
}

/// How an acquisition happens, for the witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AcquireKind {
    /// A lock operation (`mutex_lock`).
    Lock,
    /// A wait for every reader (`synchronize_srcu_expedited`).
    ReaderWait,
    /// A kernel function outside KVM that takes the lock (`static_branch_inc`).
    External,
    /// A wait for a completion signalled by code that takes the lock.
    CompletionWait,
    /// A flush of a work item whose function takes the lock.
    WorkWait,
    /// A call that runs a callback (on other CPUs) and waits for it
    /// (`on_each_cpu(..., 1)`, `stop_machine()`), whose callback takes the lock.
    CallbackWait,
    /// A wait for a thread to exit (`kthread_stop()`) whose function takes the lock.
    ThreadWait,
    /// A CPU hotplug (or other) callback run while the machinery holds it.
    Callback,
}

/// Where a function's acquisition of (class, mode) comes from.
#[derive(Debug, Clone)]
enum Origin {
    /// At this call site, by this call (`mutex_lock`).
    Direct { span: Span, call: String, kind: AcquireKind },
    /// In a callee called at this site.
    Call { span: Span, callee: FnId },
    /// In a function this one waits for at this site (a work function, the
    /// signaller of a completion), by the wait call.
    Wait { span: Span, call: String, target: FnId, kind: AcquireKind },
}

impl Origin {
    fn span(&self) -> Span {
        match self {
            Origin::Direct { span, .. } | Origin::Call { span, .. } | Origin::Wait { span, .. } => *span,
        }
    }
}

type AcqKey = (Class, AcquireMode);

/// Per function: what it takes, where from, and the caller's locks released before.
type Trans = HashMap<FnId, BTreeMap<AcqKey, (Origin, Vec<Class>)>>;

/// One call site of a function, as lock ordering sees it.
struct SiteFacts {
    span: Span,
    /// Classes definitely held here (in this function), with their mode.
    held: Vec<(Class, AcquireMode)>,
    /// Classes of the caller's locks this function released before here
    /// (`kvm_swap_active_memslots()` drops `slots_arch_lock` before it
    /// waits for SRCU readers): acquisitions after that are not under them.
    released: Vec<Class>,
    direct: Vec<(AcqKey, String, AcquireKind)>,
    callees: Vec<FnId>,
    /// Functions waited for here: (wait call, target, kind).
    waits: Vec<(String, FnId, AcquireKind)>,
}

/// An edge `from -> to` of the order graph with one witness.
#[derive(Debug, Clone, Serialize)]
pub struct OrderEdge {
    pub from: Class,
    pub to: Class,
    /// Some witness holds `from` for write (not as a reader).
    pub held_exclusive: bool,
    /// Some witness acquires `to` in a mode a waiting writer blocks.
    pub acquires_blocking: bool,
    /// The mode `from` is held in and `to` taken in, in the witness.
    pub held_mode: AcquireMode,
    pub acquire_mode: AcquireMode,
    pub kind: AcquireKind,
    /// Every witness holds `from` only on some of the paths that run the
    /// code (a callback the API model says `may_run_under` it): the
    /// arrow exists on machines that take such a path.
    pub on_some_paths: bool,
    /// One line: `kvm_online_cpu() takes kvm_lock (mutex_lock) ...`.
    pub summary: String,
    /// root -> ... -> holder of `from` -> ... -> site taking `to`.
    pub witness: Vec<Step>,
    /// Where `to` is taken (the last step's place).
    pub site_file: String,
    pub site_line: u32,
    pub site_col: u32,
}

/// Counts of what could not be modelled, for `--verbose` / JSON: a lock
/// expression kept as an unknown class, a wait whose target is not known
/// (it gives no edge, never a made-up one), a cycle search cut short.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockOrderStats {
    pub classes: usize,
    pub unknown_classes: usize,
    pub edges: usize,
    /// Waits for a completion whose class could not be resolved, or that
    /// nothing in the program signals.
    pub unresolved_completion_waits: usize,
    /// Flushes of a work item whose class could not be resolved, or bound
    /// to no function.
    pub unresolved_work_waits: usize,
    /// `kthread_stop()` of a task pointer bound to no thread function (a
    /// task stored through an out-parameter, a list of threads).
    pub unresolved_thread_waits: usize,
    /// The cycle search hit its step budget (cycles may be missing).
    pub cycle_search_cut: bool,
}

/// A cycle of the order graph: its edges in order (`edges[i].to ==
/// edges[i+1].from`).
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    pub edges: Vec<OrderEdge>,
}

impl Cycle {
    /// Some arrow of the cycle exists on some paths only
    /// ([`OrderEdge::on_some_paths`]).
    pub fn on_some_paths(&self) -> bool {
        self.edges.iter().any(|e| e.on_some_paths)
    }

    /// The classes of the cycle, sorted (its identity).
    pub fn classes(&self) -> Vec<Class> {
        let s: BTreeSet<&Class> = self.edges.iter().map(|e| &e.from).collect();
        s.into_iter().cloned().collect()
    }
}

/// The lock-order graph of one analyzed program.
pub struct LockOrder {
    pub edges: BTreeMap<(Class, Class), OrderEdge>,
    /// Classes taken for write somewhere (or held for write by a callback's machinery).
    pub written: HashSet<Class>,
    pub stats: LockOrderStats,
}

fn is_global_lock_name(name: &str) -> bool {
    !name.contains("->") && !name.contains('.')
}

/// Per-function class facts: the lock states re-run with class summaries
/// of helpers that return holding a lock reached through a parameter
/// (`kvm_vcpu_srcu_read_lock(vcpu)`), which the name-based summaries skip.
struct ClassSummaries {
    /// (acquired (class name as held lock), releases (class names), mode)
    by_fn: HashMap<FnId, (Vec<HeldLock>, Vec<String>, AcquireMode)>,
}

impl LockOrder {
    pub fn build(a: &Analysis<'_>) -> LockOrder {
        Builder::new(a).run()
    }

    /// Elementary cycles that can deadlock, smallest first (then by
    /// classes), each once.
    pub fn cycles(&mut self) -> Vec<Cycle> {
        let mut adj: BTreeMap<&Class, Vec<&Class>> = BTreeMap::new();
        for (from, to) in self.edges.keys() {
            adj.entry(from).or_default().push(to);
        }
        let nodes: Vec<&Class> = adj.keys().copied().collect();
        let index: HashMap<&Class, usize> = nodes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let mut found: Vec<Vec<usize>> = Vec::new();
        let mut budget = CYCLE_SEARCH_BUDGET;
        for s in 0..nodes.len() {
            let mut path = vec![s];
            self.dfs(&nodes, &index, &adj, s, &mut path, &mut found, &mut budget);
            if budget == 0 {
                self.stats.cycle_search_cut = true;
                break;
            }
        }
        let mut cycles: Vec<Cycle> = found
            .into_iter()
            .map(|p| {
                let edges = (0..p.len())
                    .map(|i| self.edges[&(nodes[p[i]].clone(), nodes[p[(i + 1) % p.len()]].clone())].clone())
                    .collect();
                Cycle { edges }
            })
            .filter(|c| self.deadlocks(c))
            .collect();
        cycles.sort_by_key(|c| (c.edges.len(), c.classes()));
        cycles.truncate(MAX_CYCLES);
        cycles
    }

    #[allow(clippy::too_many_arguments)]
    fn dfs(
        &self,
        nodes: &[&Class],
        index: &HashMap<&Class, usize>,
        adj: &BTreeMap<&Class, Vec<&Class>>,
        start: usize,
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
        budget: &mut usize,
    ) {
        let Some(&last) = path.last() else { return };
        for next in adj.get(nodes[last]).map(Vec::as_slice).unwrap_or(&[]) {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let Some(&n) = index.get(next) else { continue };
            if n == start {
                found.push(path.clone());
                continue;
            }
            if n < start || path.contains(&n) || path.len() >= MAX_CYCLE_LEN {
                continue;
            }
            path.push(n);
            self.dfs(nodes, index, adj, start, path, found, budget);
            path.pop();
        }
    }

    /// lockdep's rule: the cycle is broken at a class whose incoming edge
    /// only takes it as a recursive reader and whose outgoing edge only
    /// holds it as a reader, or that nobody takes for write.
    fn deadlocks(&self, c: &Cycle) -> bool {
        let n = c.edges.len();
        for i in 0..n {
            let incoming = &c.edges[(i + n - 1) % n];
            let outgoing = &c.edges[i];
            let class = &outgoing.from;
            if !incoming.acquires_blocking && !outgoing.held_exclusive {
                return false;
            }
            if !self.written.contains(class) && incoming.acquire_mode != AcquireMode::Write {
                return false;
            }
        }
        true
    }
}

struct Builder<'b, 'a> {
    a: &'b Analysis<'a>,
    api: &'b ApiModel,
    resolver: ClassResolver<'b>,
    stats: LockOrderStats,
}

impl<'b, 'a> Builder<'b, 'a> {
    fn new(a: &'b Analysis<'a>) -> Self {
        Builder { a, api: a.api, resolver: ClassResolver::new(&a.program), stats: LockOrderStats::default() }
    }

    fn func(&self, id: FnId) -> &'a Function {
        self.a.program.func(id)
    }

    /// Helpers returning with a lock reached through a parameter held (or
    /// releasing one their caller took): their effect in class terms, valid
    /// in every caller.
    fn class_summaries(&self) -> ClassSummaries {
        let mut by_fn = HashMap::default();
        for (&id, locks) in &self.a.locks {
            let func = self.func(id);
            let mut acquires = Vec::new();
            let mut mode = AcquireMode::Write;
            if let Some(every) = &locks.held_at_every_exit {
                for l in every.iter().filter(|l| !is_global_lock_name(&l.name)) {
                    let class = self.resolver.class_of(func, &l.name);
                    if is_unknown_class(&class) {
                        continue;
                    }
                    mode = self.held_mode(locks, &l.name);
                    acquires.push(HeldLock { name: class, kind: l.kind.clone() });
                }
            }
            let mut releases: Vec<String> = locks
                .anomalies
                .iter()
                .filter(|an| an.kind == AnomalyKind::ReleaseNotHeld && !is_global_lock_name(&an.lock))
                .map(|an| self.resolver.class_of(func, &an.lock))
                .filter(|c| !is_unknown_class(c))
                .collect();
            releases.sort();
            releases.dedup();
            if !acquires.is_empty() || !releases.is_empty() {
                by_fn.insert(id, (acquires, releases, mode));
            }
        }
        ClassSummaries { by_fn }
    }

    /// The mode a function holds a lock (by held name) in: the mode of its
    /// own acquisition of that name (write when it has none: the caller's).
    fn held_mode(&self, locks: &FunctionLocks<'_>, name: &str) -> AcquireMode {
        for o in &locks.occurrences {
            match &o.kind {
                OccurrenceKind::Call(site) => {
                    if let Some((LockEffect::Acquire, l, _)) = call_lock_op(self.api, site) {
                        if l.name == name {
                            return self.site_mode(site);
                        }
                    }
                }
                OccurrenceKind::Guard { lock, guard_type, .. } if lock.name == name => {
                    return self.api.acquire_mode(guard_type, true);
                }
                _ => {}
            }
        }
        AcquireMode::Write
    }

    fn site_mode(&self, site: &CallSite) -> AcquireMode {
        let Callee::Direct(n) = &site.callee else { return AcquireMode::Write };
        if n == "guard" {
            let ty = site.args.first().map(|a| a.text.trim()).unwrap_or("");
            return self.api.acquire_mode(ty, true);
        }
        self.api.acquire_mode(n, false)
    }

    fn run(mut self) -> LockOrder {
        let class_sums = self.class_summaries();
        let program = &self.a.program;
        // Re-run the lock states of the callers of class-summary helpers.
        let mut relocked: HashMap<FnId, FunctionLocks<'a>> = HashMap::default();
        for &id in &program.functions {
            let edges = program.calls.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            if !edges.iter().any(|e| class_sums.by_fn.contains_key(&e.callee)) {
                continue;
            }
            let lookup = |site: &CallSite| {
                let mut targets = program.edges_at(id, site).iter();
                let first = targets.next()?;
                if targets.next().is_some() {
                    return None;
                }
                let mut s = self.a.locks.get(&first.callee).map(LockSummary::of).unwrap_or_default();
                if let Some((acq, rel, _)) = class_sums.by_fn.get(&first.callee) {
                    s.acquires.extend(acq.iter().cloned());
                    s.releases.extend(rel.iter().cloned());
                }
                (!s.is_empty()).then_some(s)
            };
            relocked.insert(id, analyze_function_with(self.api, program.func(id), Some(&lookup)));
        }
        let class_modes: HashMap<&str, AcquireMode> = class_sums
            .by_fn
            .values()
            .flat_map(|(acq, _, mode)| acq.iter().map(move |l| (l.name.as_str(), *mode)))
            .collect();

        let called_params = self.called_params();
        let completions = self.completion_signallers();
        let works = self.work_functions();
        let threads = self.thread_functions();

        // Per-function site facts.
        let mut sites: HashMap<FnId, Vec<SiteFacts>> = HashMap::default();
        // Completion waits: (function, index of the site, class, wait call).
        let mut pending: Vec<(FnId, usize, Class, String)> = Vec::new();
        let mut all_classes: HashSet<Class> = HashSet::default();
        let mut written: HashSet<Class> = HashSet::default();
        for &id in &program.functions {
            let Some(locks) = relocked.get(&id).or_else(|| self.a.locks.get(&id)) else { continue };
            let func = self.func(id);
            let mut out = Vec::new();
            for o in &locks.occurrences {
                // A call, or a `scoped_guard()` taking its lock.
                let (site, guard) = match &o.kind {
                    OccurrenceKind::Call(site) => (Some(*site), None),
                    OccurrenceKind::Guard { span, lock, guard_type } => (None, Some((*span, lock, *guard_type))),
                    _ => continue,
                };
                let held: Vec<(Class, AcquireMode)> = o
                    .state
                    .must
                    .iter()
                    .filter(|l| self.api.is_ordered_kind(&l.kind))
                    .map(|l| {
                        let class = self.resolver.class_of(func, &l.name);
                        let mode =
                            class_modes.get(l.name.as_str()).copied().unwrap_or_else(|| self.held_mode(locks, &l.name));
                        (class, mode)
                    })
                    .collect();
                let mut released: Vec<Class> =
                    o.state.released.iter().map(|l| self.resolver.class_of(func, &l.name)).collect();
                released.sort();
                released.dedup();
                let span = match (site, &guard) {
                    (Some(site), _) => site.span,
                    (None, Some((span, _, _))) => *span,
                    (None, None) => continue,
                };
                let mut sf =
                    SiteFacts { span, held, released, direct: Vec::new(), callees: Vec::new(), waits: Vec::new() };
                if let Some((_, lock, guard_type)) = guard {
                    if self.api.is_ordered_kind(&lock.kind) {
                        let class = self.resolver.class_of(func, &lock.name);
                        let mode = self.api.acquire_mode(guard_type, true);
                        sf.direct.push(((class, mode), format!("scoped_guard({guard_type})"), AcquireKind::Lock));
                    }
                }
                let mut completion = None;
                if let Some(site) = site {
                    self.direct_acquisitions(func, site, &mut sf);
                    for e in program.edges_at(id, site) {
                        sf.callees.push(e.callee);
                        // Functions passed as arguments that the callee calls.
                        for &pi in called_params.get(&e.callee).map(Vec::as_slice).unwrap_or(&[]) {
                            if let Some(name) = site.args.get(pi).and_then(|a| a.ident.as_deref()) {
                                sf.callees.extend(program.lookup(id.file, name).iter().copied());
                            }
                        }
                    }
                    completion = self.waits(id, site, &completions, &works, &threads, &mut sf);
                }
                for (c, m) in &sf.held {
                    all_classes.insert(c.clone());
                    if *m == AcquireMode::Write {
                        written.insert(c.clone());
                    }
                }
                for ((c, m), _, _) in &sf.direct {
                    all_classes.insert(c.clone());
                    if *m == AcquireMode::Write {
                        written.insert(c.clone());
                    }
                }
                if let Some((class, call)) = completion {
                    pending.push((id, out.len(), class, call));
                    out.push(sf);
                } else if !sf.held.is_empty() || !sf.direct.is_empty() || !sf.callees.is_empty() || !sf.waits.is_empty()
                {
                    out.push(sf);
                }
            }
            sites.insert(id, out);
        }

        // What each function takes, transitively (fixpoint over the graph);
        // then a wait for a completion takes what its signallers take before
        // signalling, and the sets are computed again with those waits.
        let mut trans = transitive(&sites);
        if !pending.is_empty() {
            let mut added: Vec<(FnId, usize, AcqKey, String)> = Vec::new();
            for (id, si, class, call) in &pending {
                for &(sig, at) in completions.get(class).map(Vec::as_slice).unwrap_or(&[]) {
                    let sig_name = &self.func(sig).name;
                    for (k, how) in self.taken_before(sig, at, &sites, &trans) {
                        added.push((*id, *si, k, format!("{call}(&{class}), completed by {sig_name}(): {how}")));
                    }
                }
            }
            for (id, si, k, how) in added {
                if let Some(sf) = sites.get_mut(&id).and_then(|v| v.get_mut(si)) {
                    all_classes.insert(k.0.clone());
                    if !sf.direct.iter().any(|(d, _, _)| d == &k) {
                        sf.direct.push((k, how, AcquireKind::CompletionWait));
                    }
                }
            }
            trans = transitive(&sites);
        }

        // Edges from every reachable function's sites.
        let mut edges: BTreeMap<(Class, Class), OrderEdge> = BTreeMap::new();
        let mut ids: Vec<FnId> =
            program.functions.iter().copied().filter(|id| !self.a.reaches(*id).is_empty()).collect();
        ids.sort();
        for id in ids {
            for sf in sites.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
                if sf.held.is_empty() {
                    continue;
                }
                let none: &[Class] = &[];
                let mut taken: Vec<(AcqKey, Origin, &[Class])> = Vec::new();
                for (k, call, kind) in &sf.direct {
                    taken.push((
                        k.clone(),
                        Origin::Direct { span: sf.span, call: call.clone(), kind: kind.clone() },
                        none,
                    ));
                }
                for &c in &sf.callees {
                    for (k, (_, rel)) in trans.get(&c).into_iter().flatten() {
                        taken.push((k.clone(), Origin::Call { span: sf.span, callee: c }, rel));
                    }
                }
                for (call, t, kind) in &sf.waits {
                    for (k, (_, rel)) in trans.get(t).into_iter().flatten() {
                        taken.push((
                            k.clone(),
                            Origin::Wait { span: sf.span, call: call.clone(), target: *t, kind: kind.clone() },
                            rel,
                        ));
                    }
                }
                for (held, held_mode) in &sf.held {
                    for ((to, mode), origin, released) in &taken {
                        if to == held || released.contains(held) {
                            continue;
                        }
                        self.add_edge(&mut edges, &trans, (held, *held_mode), (to, *mode), false, || {
                            let mut w = self.a.witness(id, 0, Some(origin.span()));
                            if let Some(last) = w.last_mut() {
                                last.via = last.via.take().or_else(|| Some(format!("holds {held}")));
                            }
                            (w, id, origin.clone())
                        });
                    }
                }
            }
        }
        // Callbacks run while the machinery holds a lock for them (CPU
        // hotplug callbacks: the control CPU holds cpu_hotplug_lock for
        // write and waits for each callback).
        // Some callbacks run under a lock on some paths only (a cpufreq
        // notifier under cpus_read_lock()): the arrow is as real on a
        // machine that takes such a path.
        for root in &self.a.roots {
            let Some(spec) = self.api.context(&root.context) else { continue };
            if spec.serialized_by.is_empty() && spec.may_run_under.is_empty() {
                continue;
            }
            let Some(t) = trans.get(&root.function) else { continue };
            let ri = self.a.reaches(root.function).iter().position(|r| r.key.root == root.id && r.parent.is_none());
            let Some(ri) = ri else { continue };
            let always = spec.serialized_by.iter().map(|l| (l, true));
            for (held, surely) in always.chain(spec.may_run_under.iter().map(|l| (l, false))) {
                written.insert(held.clone());
                all_classes.insert(held.clone());
                for ((to, mode), (origin, _)) in t {
                    if to == held {
                        continue;
                    }
                    let f = root.function;
                    self.add_edge(&mut edges, &trans, (held, AcquireMode::Write), (to, *mode), !surely, || {
                        let mut w = self.a.witness(f, ri, Some(origin.span()));
                        if let Some(first) = w.first_mut() {
                            first.via = Some(if surely {
                                format!("{} ({}): the machinery holds {held} for write", root.origin, root.context)
                            } else {
                                format!("{} ({}): may run with {held} held by its caller", root.origin, root.context)
                            });
                        }
                        (w, f, origin.clone())
                    });
                }
            }
        }
        for t in trans.values() {
            for (c, m) in t.keys() {
                all_classes.insert(c.clone());
                if *m == AcquireMode::Write {
                    written.insert(c.clone());
                }
            }
        }
        self.stats.classes = all_classes.len();
        self.stats.unknown_classes = all_classes.iter().filter(|c| is_unknown_class(c)).count();
        self.stats.edges = edges.len();
        // Finish the witnesses: the chain below the holder.
        for e in edges.values_mut() {
            if let Some(last) = e.witness.last() {
                e.site_file = last.file.clone();
                e.site_line = last.line;
                e.site_col = last.col;
            }
        }
        LockOrder { edges, written, stats: self.stats }
    }

    /// Record the arrow `from -> to` with the witness `witness` makes,
    /// unless the one kept is at least as strong: a witness on every path
    /// beats one on some paths only (whose modes it then does not merge),
    /// then holding `from` for write and taking `to` in a blocking mode.
    fn add_edge(
        &self,
        edges: &mut BTreeMap<(Class, Class), OrderEdge>,
        trans: &Trans,
        (from, held_mode): (&Class, AcquireMode),
        (to, mode): (&Class, AcquireMode),
        on_some_paths: bool,
        witness: impl FnOnce() -> (Vec<Step>, FnId, Origin),
    ) {
        let held_exclusive = held_mode == AcquireMode::Write;
        let blocking = mode != AcquireMode::RecursiveRead;
        let key = (from.clone(), to.clone());
        if let Some(e) = edges.get_mut(&key) {
            if on_some_paths && !e.on_some_paths {
                return;
            }
            if e.on_some_paths && !on_some_paths {
                edges.remove(&key);
            } else {
                let better = (held_exclusive && !e.held_exclusive) || (blocking && !e.acquires_blocking);
                e.held_exclusive |= held_exclusive;
                e.acquires_blocking |= blocking;
                if !better {
                    return;
                }
            }
        }
        let (mut steps, holder, origin) = witness();
        let context = steps.last().map(|s| s.context.clone()).unwrap_or_default();
        let (tail, kind, call) = self.descend(holder, &origin, to, mode, trans, &context, from);
        steps.extend(tail);
        let holder_name = self.func(holder).name.clone();
        let how = match kind {
            AcquireKind::ReaderWait => format!("waits for the readers of {to} ({call})"),
            AcquireKind::CompletionWait => format!("waits for {to}{}: {call}", mode_suffix(mode)),
            AcquireKind::WorkWait => {
                format!("flushes a work item whose function takes {to}{} ({call})", mode_suffix(mode))
            }
            AcquireKind::CallbackWait => {
                format!("waits for a callback that takes {to}{} ({call})", mode_suffix(mode))
            }
            AcquireKind::ThreadWait => {
                format!("waits for a thread whose function takes {to}{} to exit ({call})", mode_suffix(mode))
            }
            AcquireKind::External => format!("takes {to}{} in {call}()", mode_suffix(mode)),
            _ => format!("takes {to}{} ({call})", mode_suffix(mode)),
        };
        let summary = if on_some_paths {
            format!("{holder_name}() runs with {from} held by some callers and {how}")
        } else {
            format!("{holder_name}() holds {from}{} and {how}", mode_suffix(held_mode))
        };
        let prev = edges.get(&key);
        edges.insert(
            key,
            OrderEdge {
                from: from.clone(),
                to: to.clone(),
                held_exclusive: held_exclusive || prev.is_some_and(|p| p.held_exclusive),
                acquires_blocking: blocking || prev.is_some_and(|p| p.acquires_blocking),
                held_mode,
                acquire_mode: mode,
                kind,
                on_some_paths,
                summary,
                witness: steps,
                site_file: String::new(),
                site_line: 0,
                site_col: 0,
            },
        );
    }

    /// The steps from the holder's call down to the site taking `to`, the
    /// way it is taken, and the call that takes it.
    #[allow(clippy::too_many_arguments)]
    fn descend(
        &self,
        holder: FnId,
        origin: &Origin,
        to: &Class,
        mode: AcquireMode,
        trans: &Trans,
        context: &str,
        held: &Class,
    ) -> (Vec<Step>, AcquireKind, String) {
        let mut steps = Vec::new();
        let key = (to.clone(), mode);
        let mut cur = origin.clone();
        let mut kind_seen: Option<(AcquireKind, String)> = None;
        let mut visited: HashSet<FnId> = HashSet::default();
        visited.insert(holder);
        loop {
            let next = match &cur {
                Origin::Direct { call, kind, .. } => {
                    let k = kind_seen.clone().unwrap_or((kind.clone(), call.clone()));
                    return (steps, k.0, k.1);
                }
                Origin::Call { callee, .. } => *callee,
                Origin::Wait { target, call, kind, .. } => {
                    if kind_seen.is_none() {
                        kind_seen = Some((kind.clone(), call.clone()));
                    }
                    *target
                }
            };
            if !visited.insert(next) || steps.len() > 64 {
                let k = kind_seen.unwrap_or((AcquireKind::Lock, "?".into()));
                return (steps, k.0, k.1);
            }
            let Some((o, _)) = trans.get(&next).and_then(|m| m.get(&key)) else {
                let k = kind_seen.unwrap_or((AcquireKind::Lock, "?".into()));
                return (steps, k.0, k.1);
            };
            let func = self.func(next);
            let span = o.span();
            steps.push(Step {
                function: func.name.clone(),
                file: self.a.program.file(next).path.clone(),
                line: span.line,
                col: span.col,
                context: context.to_string(),
                held: vec![held.clone()],
                may_held: Vec::new(),
                serialized_by: Vec::new(),
                via: match &cur {
                    Origin::Wait { call, .. } => Some(format!("waited for by {call}()")),
                    _ => None,
                },
            });
            cur = o.clone();
        }
    }

    /// Acquisitions made by the call itself: lock operations, waits for
    /// readers, external functions that take a lock.
    fn direct_acquisitions(&self, func: &'a Function, site: &CallSite, sf: &mut SiteFacts) {
        let Callee::Direct(name) = &site.callee else { return };
        if let Some((LockEffect::Acquire, lock, definitely)) = call_lock_op(self.api, site) {
            if definitely && self.api.is_ordered_kind(&lock.kind) {
                let class = self.resolver.class_of(func, &lock.name);
                sf.direct.push(((class, self.site_mode(site)), name.clone(), AcquireKind::Lock));
            }
        }
        if let Some(w) = self.api.reader_wait(name) {
            let class = match (&w.lock, w.lock_arg.and_then(|i| site.args.get(i))) {
                (Some(l), _) => Some(l.clone()),
                (None, Some(arg)) => Some(self.resolver.class_of(func, &lock_name(arg))),
                _ => None,
            };
            if let Some(c) = class {
                sf.direct.push(((c, AcquireMode::Write), name.clone(), AcquireKind::ReaderWait));
            }
        }
        for t in self.api.extern_takes(name) {
            sf.direct.push(((t.lock.clone(), t.mode), name.clone(), AcquireKind::External));
        }
    }

    /// Waits at a site for code elsewhere: a work item's function, a
    /// callback run on other CPUs (in `sf.waits`); the completion class
    /// waited for, returned (resolved once every function's acquisitions
    /// are known).
    fn waits(
        &mut self,
        id: FnId,
        site: &CallSite,
        completions: &HashMap<Class, Vec<(FnId, Span)>>,
        works: &HashMap<Class, Vec<FnId>>,
        threads: &HashMap<Class, Vec<FnId>>,
        sf: &mut SiteFacts,
    ) -> Option<(Class, String)> {
        let Callee::Direct(name) = &site.callee else { return None };
        let func = self.func(id);
        let mut out = None;
        // Callbacks run elsewhere while the caller waits: what they take is
        // taken under the caller's locks.
        if let Some(reg) = self.api.registration(name) {
            for ai in reg.waited_callbacks(&site.args) {
                let Some(cb) = site.args.get(ai).and_then(|a| a.ident.as_deref()) else { continue };
                for &f in self.a.program.lookup(id.file, cb) {
                    sf.waits.push((name.clone(), f, AcquireKind::CallbackWait));
                }
            }
        }
        if let Some(i) = self.api.completion_wait_arg(name) {
            let class = site.args.get(i).map(|a| self.resolver.class_of(func, &lock_name(a)));
            match class.filter(|c| !is_unknown_class(c) && completions.contains_key(c)) {
                Some(c) => out = Some((c, name.clone())),
                None => self.stats.unresolved_completion_waits += 1,
            }
        }
        if let Some(i) = self.api.work_wait_arg(name) {
            let class = site.args.get(i).map(|a| self.work_class(func, a));
            match class.filter(|c| !is_unknown_class(c)).and_then(|c| works.get(&c)) {
                Some(fns) => {
                    for &f in fns {
                        sf.waits.push((name.clone(), f, AcquireKind::WorkWait));
                    }
                }
                None => self.stats.unresolved_work_waits += 1,
            }
        }
        if let Some(i) = self.api.thread_wait_arg(name) {
            let class = site.args.get(i).map(|a| self.resolver.class_of(func, &lock_name(a)));
            match class.filter(|c| !is_unknown_class(c)).and_then(|c| threads.get(&c)) {
                Some(fns) => {
                    for &f in fns {
                        sf.waits.push((name.clone(), f, AcquireKind::ThreadWait));
                    }
                }
                None => self.stats.unresolved_thread_waits += 1,
            }
        }
        out
    }

    /// What a signaller of a completion takes before signalling it at
    /// `at`: the acquisitions of its earlier sites (directly or in their
    /// callees) and the locks it holds there, each with a description.
    fn taken_before(
        &self,
        signaller: FnId,
        at: Span,
        sites: &HashMap<FnId, Vec<SiteFacts>>,
        trans: &Trans,
    ) -> BTreeMap<AcqKey, String> {
        let name = &self.func(signaller).name;
        let path = &self.a.program.file(signaller).path;
        let mut out: BTreeMap<AcqKey, String> = BTreeMap::new();
        for sf in sites.get(&signaller).map(Vec::as_slice).unwrap_or(&[]) {
            if sf.span.start > at.start {
                continue;
            }
            let place = format!("{path}:{}", sf.span.line);
            if sf.span.start == at.start {
                for (c, m) in &sf.held {
                    out.entry((c.clone(), *m))
                        .or_insert_with(|| format!("{name}() holds it when signalling ({place})"));
                }
                continue;
            }
            for (k, call, _) in &sf.direct {
                out.entry(k.clone()).or_insert_with(|| format!("{name}() takes it by {call}() at {place}"));
            }
            for &c in &sf.callees {
                let callee = &self.func(c).name;
                for k in trans.get(&c).map(|m| m.keys()).into_iter().flatten() {
                    out.entry(k.clone()).or_insert_with(|| format!("{name}() takes it in {callee}() at {place}"));
                }
            }
        }
        out
    }

    /// A work item's class: `&kvm->arch.w` (or `&kvm->arch.dw.work` of a
    /// delayed work) -> `struct kvm_arch.w`.
    fn work_class(&self, func: &'a Function, arg: &Arg) -> Class {
        let n = lock_name(arg);
        let n = n.strip_suffix(".work").filter(|s| s.contains("->") || s.contains('.')).unwrap_or(&n).to_string();
        self.resolver.class_of(func, &n)
    }

    /// Functions signalling each completion class (the code a waiter waits for).
    fn completion_signallers(&self) -> HashMap<Class, Vec<(FnId, Span)>> {
        let mut out: HashMap<Class, Vec<(FnId, Span)>> = HashMap::default();
        for &id in &self.a.program.functions {
            let func = self.func(id);
            crate::graph::visit_calls(&func.body.stmts, &mut |site| {
                let Callee::Direct(n) = &site.callee else { return };
                let Some(i) = self.api.completion_signal_arg(n) else { return };
                let Some(arg) = site.args.get(i) else { return };
                let class = self.resolver.class_of(func, &lock_name(arg));
                if !is_unknown_class(&class) {
                    out.entry(class).or_default().push((id, site.span));
                }
            });
        }
        out
    }

    /// Work functions bound to each work class by `INIT_WORK()`.
    fn work_functions(&self) -> HashMap<Class, Vec<FnId>> {
        let mut out: HashMap<Class, Vec<FnId>> = HashMap::default();
        for &id in &self.a.program.functions {
            let func = self.func(id);
            crate::graph::visit_calls(&func.body.stmts, &mut |site| {
                let Callee::Direct(n) = &site.callee else { return };
                let Some((wi, fi)) = self.api.work_init(n) else { return };
                let (Some(w), Some(f)) = (site.args.get(wi), site.args.get(fi).and_then(|a| a.ident.as_deref())) else {
                    return;
                };
                let class = self.work_class(func, w);
                if is_unknown_class(&class) {
                    return;
                }
                out.entry(class).or_default().extend(self.a.program.lookup(id.file, f).iter().copied());
            });
        }
        for v in out.values_mut() {
            v.sort();
            v.dedup();
        }
        out
    }

    /// Thread functions bound to each task-pointer class: a thread start
    /// whose value is stored in a member (`g->task = kthread_run(fn, ...)`),
    /// directly or through a local (`t = kthread_run(fn, ...); ...
    /// g->task = t;`). A task handed back through an out-parameter is not
    /// followed (its `kthread_stop()` counts as unresolved).
    fn thread_functions(&self) -> HashMap<Class, Vec<FnId>> {
        use crate::facts::Event;
        let mut out: HashMap<Class, Vec<FnId>> = HashMap::default();
        let program = &self.a.program;
        for &id in &program.functions {
            let func = self.func(id);
            // The last thread start met (its span, its functions), and the
            // locals holding a started thread.
            let mut last: Option<(Span, Vec<FnId>)> = None;
            let mut locals: HashMap<&str, Vec<FnId>> = HashMap::default();
            crate::graph::visit_events(&func.body.stmts, &mut |e| match e {
                Event::Call(site) => {
                    let Callee::Direct(n) = &site.callee else { return };
                    let Some(i) = self.api.thread_start_arg(n) else { return };
                    let Some(f) = site.args.get(i).and_then(|a| a.ident.as_deref()) else { return };
                    last = Some((site.span, program.lookup(id.file, f).to_vec()));
                }
                Event::LocalAssign(la) => {
                    if let Some((span, fns)) = &last {
                        if within(*span, la.span) {
                            locals.insert(la.name.as_str(), fns.clone());
                        }
                    }
                }
                Event::FieldAssign(fa) => {
                    let fns = match (&last, fa.value_ident.as_deref()) {
                        (Some((span, fns)), _) if within(*span, fa.span) => fns.clone(),
                        (_, Some(v)) => match locals.get(v) {
                            Some(fns) => fns.clone(),
                            None => return,
                        },
                        _ => return,
                    };
                    let class = self.resolver.class_of(func, &format!("{}.{}", fa.base, fa.field));
                    if !is_unknown_class(&class) && !fns.is_empty() {
                        out.entry(class).or_default().extend(fns);
                    }
                }
                Event::Access(_) => {}
            });
        }
        for v in out.values_mut() {
            v.sort();
            v.dedup();
        }
        out
    }

    /// For each function, the positions of parameters it calls
    /// (`do_msr(vcpu, ...)` with `do_msr` a parameter): a function passed
    /// there is called from the call site.
    fn called_params(&self) -> HashMap<FnId, Vec<usize>> {
        let mut out: HashMap<FnId, Vec<usize>> = HashMap::default();
        for &id in &self.a.program.functions {
            let func = self.func(id);
            let mut called: Vec<usize> = Vec::new();
            crate::graph::visit_calls(&func.body.stmts, &mut |site| {
                if let Callee::Direct(n) = &site.callee {
                    if let Some(i) = func.params.iter().position(|p| &p.name == n) {
                        called.push(i);
                    }
                }
            });
            if !called.is_empty() {
                called.sort_unstable();
                called.dedup();
                out.insert(id, called);
            }
        }
        out
    }
}

/// `inner` lies within `outer` (a call within the assignment of its value).
fn within(inner: Span, outer: Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn mode_suffix(m: AcquireMode) -> &'static str {
    match m {
        AcquireMode::Write => "",
        AcquireMode::Read => " (read)",
        AcquireMode::RecursiveRead => " (recursive read)",
    }
}

/// What each function takes, transitively (directly, through callees and
/// waits), each with where it comes from (the first found) and the caller's
/// locks released before it (the fewest over the paths found).
fn transitive(sites: &HashMap<FnId, Vec<SiteFacts>>) -> Trans {
    let mut trans: Trans = HashMap::default();
    for (&id, ss) in sites {
        let m = trans.entry(id).or_default();
        for sf in ss {
            for (k, call, kind) in &sf.direct {
                m.entry(k.clone()).or_insert_with(|| {
                    (Origin::Direct { span: sf.span, call: call.clone(), kind: kind.clone() }, sf.released.clone())
                });
            }
        }
    }
    // Reverse dependencies: who includes whose set, and at which sites
    // (a user's other sites cannot take the set).
    let mut users: HashMap<FnId, Vec<(FnId, usize)>> = HashMap::default();
    for (&id, ss) in sites {
        for (si, sf) in ss.iter().enumerate() {
            for &c in sf.callees.iter().chain(sf.waits.iter().map(|(_, t, _)| t)) {
                users.entry(c).or_default().push((id, si));
            }
        }
    }
    for v in users.values_mut() {
        v.sort();
        v.dedup();
    }
    let mut work: Vec<FnId> = trans.iter().filter(|(_, m)| !m.is_empty()).map(|(&id, _)| id).collect();
    work.sort();
    let mut queued: HashSet<FnId> = work.iter().copied().collect();
    while let Some(changed) = work.pop() {
        queued.remove(&changed);
        let Some(us) = users.get(&changed) else { continue };
        // The set is read in place (taken out while its users grow, put
        // back after): cloning it at every turn was most of the work.
        let src = trans.get_mut(&changed).map(std::mem::take).unwrap_or_default();
        for group in us.chunk_by(|a, b| a.0 == b.0) {
            let u = group[0].0;
            // A function calling itself adds nothing to its own set: a path
            // through the call releases what the set records and more (every
            // recorded release list is sorted and without repeats).
            if u == changed {
                continue;
            }
            let mut grew = false;
            let ss = sites.get(&u).map(Vec::as_slice).unwrap_or(&[]);
            for sf in group.iter().map(|&(_, si)| &ss[si]) {
                let via_call = sf.callees.contains(&changed);
                let via_wait = sf.waits.iter().find(|(_, t, _)| *t == changed);
                let origin = match (via_call, via_wait) {
                    (true, _) => Origin::Call { span: sf.span, callee: changed },
                    (false, Some((call, t, kind))) => {
                        Origin::Wait { span: sf.span, call: call.clone(), target: *t, kind: kind.clone() }
                    }
                    _ => continue,
                };
                let m = trans.entry(u).or_default();
                for (k, (_, rel)) in &src {
                    // Only a path releasing fewer classes replaces a known
                    // one: the union of two lists is at least as long as
                    // either (so none releases fewer than none).
                    if m.get(k).is_some_and(|(_, old)| old.len() <= rel.len().max(sf.released.len())) {
                        continue;
                    }
                    let mut released: Vec<Class> = rel.iter().chain(sf.released.iter()).cloned().collect();
                    released.sort();
                    released.dedup();
                    let replace = match m.get(k) {
                        None => true,
                        Some((_, old)) => released.len() < old.len(),
                    };
                    if replace {
                        m.insert(k.clone(), (origin.clone(), released));
                        grew = true;
                    }
                }
            }
            if grew && queued.insert(u) {
                work.push(u);
            }
        }
        if let Some(m) = trans.get_mut(&changed) {
            *m = src;
        }
    }
    trans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_file;

    const SRC: &str = r#"
struct widget_cache;
struct widget_cpu {
	raw_spinlock_t list_lock;
};
struct widget {
	struct mutex lock;
	struct {
		spinlock_t lock;
		struct list_head items;
	} pending;
	struct widget_cpu cpu;
	struct widget_cache *cache;
	spinlock_t *borrowed;
};
typedef struct widget_opaque widget_t;
static DEFINE_PER_CPU(spinlock_t, widget_cpu_lock);

void widget_all(struct widget *w, struct widget_cache *c, widget_t *o, spinlock_t *l, int cpu)
{
	mutex_lock(&w->lock);
}
"#;

    fn with_resolver(check: impl Fn(&ClassResolver<'_>, &Function)) {
        let files = vec![std::sync::Arc::new(parse_file("virt/kvm/widget.c", None, SRC.as_bytes()))];
        let api = ApiModel::default();
        let program = Program::link(&files, None, &api);
        let resolver = ClassResolver::new(&program);
        let func = files[0].functions.iter().find(|f| f.name == "widget_all").expect("widget_all parsed");
        check(&resolver, func);
    }

    #[test]
    fn classes_by_struct_member_through_anonymous_and_undefined_structs() {
        with_resolver(|r, f| {
            assert_eq!(r.class_of(f, "w->lock"), "struct widget.lock");
            // A member of an anonymous struct member: named through it.
            assert_eq!(r.class_of(f, "w->pending.lock"), "struct widget.pending.lock");
            assert_eq!(r.class_of(f, "w->cpu.list_lock"), "struct widget_cpu.list_lock");
            // Not a member of the (defined) struct: unknown, never a guess.
            assert_eq!(r.class_of(f, "w->pending.nolock"), "?widget_all:w->pending.nolock");
            assert_eq!(r.class_of(f, "w->nolock"), "?widget_all:w->nolock");
            // A struct defined elsewhere, declared as a struct: its member.
            assert_eq!(r.class_of(f, "c->refresh_lock"), "struct widget_cache.refresh_lock");
            // ... but not through it (its members' types are unknown).
            assert_eq!(r.class_of(f, "w->cache->inner.lock"), "?widget_all:w->cache->inner.lock");
            // A typedef may name anything: unknown.
            assert_eq!(r.class_of(f, "o->lock"), "?widget_all:o->lock");
            // A bare pointer to a lock: unknown, one class per expression.
            assert_eq!(r.class_of(f, "l"), "?widget_all:l");
        });
    }

    /// A site of a hand-built function: where, what it releases of its
    /// caller's locks before, what it takes and calls.
    fn site(at: u32, released: &[&str], takes: Option<&str>, calls: &[FnId]) -> SiteFacts {
        SiteFacts {
            span: Span { start: at, end: at + 1, line: at, col: 1 },
            held: Vec::new(),
            released: released.iter().map(|c| c.to_string()).collect(),
            direct: takes
                .map(|c| ((c.to_string(), AcquireMode::Write), "mutex_lock".to_string(), AcquireKind::Lock))
                .into_iter()
                .collect(),
            callees: calls.to_vec(),
            waits: Vec::new(),
        }
    }

    #[test]
    fn transitive_sets_through_recursion_keep_the_fewest_releases() {
        let f = |func| FnId { file: 0, func };
        let (a, b, c) = (f(0), f(1), f(2));
        let mut sites: HashMap<FnId, Vec<SiteFacts>> = HashMap::default();
        // a takes l1, calls itself (releasing r1 first) and b (releasing r2).
        sites
            .insert(a, vec![site(1, &[], Some("l1"), &[]), site(2, &["r1"], None, &[a]), site(3, &["r2"], None, &[b])]);
        // b calls a back, then takes l2 after releasing r3.
        sites.insert(b, vec![site(11, &[], None, &[a]), site(12, &["r3"], Some("l2"), &[])]);
        // c reaches l1 through b (releasing r4) and through a (releasing nothing).
        sites.insert(c, vec![site(21, &["r4"], None, &[b]), site(22, &[], None, &[a])]);
        let trans = transitive(&sites);
        let released =
            |id: FnId, class: &str| -> Vec<String> { trans[&id][&(class.to_string(), AcquireMode::Write)].1.clone() };
        let line = |id: FnId, class: &str| trans[&id][&(class.to_string(), AcquireMode::Write)].0.span().line;
        // Taken directly: from its own site, not from the recursive call.
        assert_eq!((line(a, "l1"), released(a, "l1")), (1, Vec::<String>::new()));
        assert_eq!((line(b, "l2"), released(b, "l2")), (12, vec!["r3".to_string()]));
        // Through a cycle: b takes l1 in a; a takes l2 in b, after r2 and r3.
        assert_eq!((line(b, "l1"), released(b, "l1")), (11, Vec::<String>::new()));
        assert_eq!((line(a, "l2"), released(a, "l2")), (3, vec!["r2".to_string(), "r3".to_string()]));
        // Two paths: the one releasing nothing wins.
        assert_eq!((line(c, "l1"), released(c, "l1")), (22, Vec::<String>::new()));
        assert_eq!(released(c, "l2").len(), 2);
        assert_eq!(trans[&c].len(), 2);
    }

    #[test]
    fn a_per_cpu_lock_is_one_class() {
        with_resolver(|r, f| {
            assert_eq!(r.class_of(f, "per_cpu(widget_cpu_lock,cpu"), "widget_cpu_lock");
            assert_eq!(r.class_of(f, "per_cpu_ptr(&widget_cpu_lock, cpu)"), "widget_cpu_lock");
            assert_eq!(r.class_of(f, "this_cpu_ptr(&widget_cpu_lock)"), "widget_cpu_lock");
            // A per-CPU pointer held in a parameter: which lock is unknown.
            assert_eq!(r.class_of(f, "per_cpu(l,cpu"), "?widget_all:per_cpu(l,cpu");
        });
    }
}
