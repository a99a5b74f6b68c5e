//! Flow-sensitive lock tracking inside one function.
//!
//! Walks a function's statement tree with a [`LockState`] (must-held and
//! may-held sets), following the kernel's shapes: lock/unlock pairs,
//! `guard(type)(&l)` held to the end of its block, `scoped_guard(...) { }`,
//! `*_trylock` in conditions, early returns, `goto` to error labels (the
//! label's state is the join of every jump to it and the fall-through),
//! both arms of conditionals, loops, `switch`, and both branches of `#if`.
//! The join of two paths keeps the intersection as must-held and the union as
//! may-held.
//!
//! Unbalanced locking (release of a lock not held on the path, a return with
//! a lock still held) is recorded as a [`LockAnomaly`], never an error: such
//! functions exist on purpose (lock helpers, `__releases` annotations).

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::api::{ApiModel, LockEffect};
use crate::facts::{Access, Arg, Block, CallSite, Callee, Event, Function, LocalAssign, LoopKind, Span, Stmt};

/// A lock held, by normalized name (`kvm_lock`, `kvm->mmu_lock`,
/// `cpu_hotplug_lock`) and API-model kind (`mutex`, `raw_spinlock`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct HeldLock {
    pub name: String,
    pub kind: String,
}

/// A set of held locks, shared cheaply between occurrences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LockSet(pub Arc<BTreeSet<HeldLock>>);

impl LockSet {
    pub fn empty() -> Self {
        LockSet::default()
    }
    pub fn contains_name(&self, name: &str) -> bool {
        self.0.iter().any(|l| l.name == name)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &HeldLock> {
        self.0.iter()
    }
    pub fn union(&self, other: &LockSet) -> LockSet {
        if other.is_empty() || Arc::ptr_eq(&self.0, &other.0) {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        LockSet(Arc::new(self.0.union(&other.0).cloned().collect()))
    }
    pub fn intersection(&self, other: &LockSet) -> LockSet {
        if self.is_empty() || Arc::ptr_eq(&self.0, &other.0) {
            return self.clone();
        }
        if other.is_empty() {
            return other.clone();
        }
        LockSet(Arc::new(self.0.intersection(&other.0).cloned().collect()))
    }
    fn with(&self, l: HeldLock) -> LockSet {
        let mut s = (*self.0).clone();
        s.insert(l);
        LockSet(Arc::new(s))
    }
    fn without(&self, name: &str) -> LockSet {
        if !self.contains_name(name) {
            return self.clone();
        }
        LockSet(Arc::new(self.0.iter().filter(|l| l.name != name).cloned().collect()))
    }
    /// Names, sorted, for display.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|l| l.name.as_str()).collect()
    }
}

impl fmt::Display for LockSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("{}");
        }
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&l.name)?;
        }
        f.write_str("}")
    }
}

/// Must-held and may-held locks at a program point, and the locks the
/// function released without having taken them (its caller's locks) on some
/// path to this point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct LockState {
    pub must: LockSet,
    pub may: LockSet,
    pub released: LockSet,
}

impl LockState {
    fn join(&self, other: &LockState) -> LockState {
        LockState {
            must: self.must.intersection(&other.must),
            may: self.may.union(&other.may),
            released: self.released.union(&other.released),
        }
    }

    /// Of the locks held on entry, those still held here (not released by
    /// this function before this point), plus those it holds itself.
    pub fn held_with_entry(&self, entry: &LockSet) -> LockSet {
        // Asked for every call of every reach state: share the sets when
        // nothing is filtered out (entry locks are rarely released).
        if entry.is_empty() {
            return self.must.clone();
        }
        let kept = if entry.iter().any(|l| self.released.contains_name(&l.name)) {
            LockSet(Arc::new(entry.iter().filter(|l| !self.released.contains_name(&l.name)).cloned().collect()))
        } else {
            entry.clone()
        };
        kept.union(&self.must)
    }
    fn acquire(&self, l: HeldLock, definitely: bool) -> LockState {
        LockState {
            must: if definitely { self.must.with(l.clone()) } else { self.must.clone() },
            may: self.may.with(l),
            released: self.released.clone(),
        }
    }
    fn release(&self, name: &str) -> LockState {
        LockState { must: self.must.without(name), may: self.may.without(name), released: self.released.clone() }
    }
    /// Release a lock this function did not take: the caller's.
    fn release_entry(&self, lock: HeldLock) -> LockState {
        LockState { must: self.must.clone(), may: self.may.clone(), released: self.released.with(lock) }
    }
}

fn join_opt(a: Option<LockState>, b: Option<LockState>) -> Option<LockState> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.join(&b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What happens at an occurrence.
#[derive(Debug, Clone)]
pub enum OccurrenceKind<'a> {
    Call(&'a CallSite),
    Access(&'a Access),
    LocalAssign(&'a LocalAssign),
    /// An iterator-macro loop header (`list_for_each_entry(pos, head, member)`).
    Iterate {
        span: Span,
        macro_name: &'a str,
        args: &'a [Arg],
    },
    /// `scoped_guard(type, args) { ... }` taking its lock (the state is
    /// the one before it is taken; the body runs with it held).
    Guard {
        span: Span,
        lock: HeldLock,
        guard_type: &'a str,
    },
}

/// An event with the locks held when it happens.
#[derive(Debug, Clone)]
pub struct Occurrence<'a> {
    pub kind: OccurrenceKind<'a>,
    pub state: LockState,
    /// The iterator loops enclosing this point, innermost last.
    pub loops: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AnomalyKind {
    /// A release of a lock that is not held on this path.
    ReleaseNotHeld,
    /// A return (or the end of the function) with a lock still held.
    ReturnHolding,
}

/// Unbalanced locking, reported as a fact with its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockAnomaly {
    pub kind: AnomalyKind,
    pub lock: String,
    pub span: Span,
}

/// The lock facts of one function.
#[derive(Debug, Clone, Default)]
pub struct FunctionLocks<'a> {
    pub occurrences: Vec<Occurrence<'a>>,
    pub anomalies: Vec<LockAnomaly>,
    /// Locks (may-)held when the function returns, over all exits.
    pub held_at_exit: LockSet,
    /// Locks held at every exit (`None` until an exit is seen).
    pub held_at_every_exit: Option<LockSet>,
}

/// A function's net effect on its caller's locks: what it leaves held and
/// what it releases that it did not take (lock helpers, `__releases`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockSummary {
    pub acquires: Vec<HeldLock>,
    pub releases: Vec<String>,
}

impl LockSummary {
    /// The summary of an analyzed function. Only global locks count: a
    /// lock named through a parameter (`kvm->lock`) means something else in
    /// each caller.
    pub fn of(locks: &FunctionLocks<'_>) -> LockSummary {
        let global = |name: &str| !name.contains("->") && !name.contains('.');
        let mut releases: Vec<String> = locks
            .anomalies
            .iter()
            .filter(|a| a.kind == AnomalyKind::ReleaseNotHeld && global(&a.lock))
            .map(|a| a.lock.clone())
            .collect();
        releases.sort();
        releases.dedup();
        let acquires = locks
            .held_at_every_exit
            .as_ref()
            .map(|s| s.iter().filter(|l| global(&l.name)).cloned().collect())
            .unwrap_or_default();
        LockSummary { acquires, releases }
    }

    pub fn is_empty(&self) -> bool {
        self.acquires.is_empty() && self.releases.is_empty()
    }
}

/// The summary of the function a call resolves to, when it has an effect.
pub type SummaryLookup<'s> = &'s dyn Fn(&CallSite) -> Option<LockSummary>;

impl<'a> FunctionLocks<'a> {
    /// The lock state at a call site (by identity of the site).
    pub fn state_at_call(&self, site: &CallSite) -> Option<&LockState> {
        self.occurrences.iter().find_map(|o| match o.kind {
            OccurrenceKind::Call(c) if std::ptr::eq(c, site) => Some(&o.state),
            _ => None,
        })
    }
}

/// Normalize a lock argument to a lock name: `&kvm_lock` -> `kvm_lock`,
/// `&kvm->mmu_lock` -> `kvm->mmu_lock`.
pub fn lock_name(arg: &Arg) -> String {
    if let Some(i) = &arg.ident {
        return i.clone();
    }
    let t: String = arg.text.chars().filter(|c| !c.is_whitespace()).collect();
    t.trim_start_matches('&').trim_start_matches('(').trim_end_matches(')').to_string()
}

/// A lock operation a call performs, if any: (effect, lock, definitely).
pub fn call_lock_op(api: &ApiModel, site: &CallSite) -> Option<(LockEffect, HeldLock, bool)> {
    let Callee::Direct(name) = &site.callee else { return None };
    if name == "guard" {
        // `guard(type)(&lock)`: args are [type, lock...].
        let ty = site.args.first()?.text.trim();
        let g = api.guard(ty)?;
        let lock = match &g.lock {
            Some(l) => l.clone(),
            None => lock_name(site.args.get(1)?),
        };
        return Some((LockEffect::Acquire, HeldLock { name: lock, kind: g.kind.clone() }, true));
    }
    let op = api.lock_op(name)?;
    let lock = match (op.fixed_lock, op.lock_arg) {
        (Some(l), _) => l.to_string(),
        (None, Some(i)) => lock_name(site.args.get(i)?),
        (None, None) => return None,
    };
    Some((op.effect, HeldLock { name: lock, kind: op.kind.to_string() }, !op.is_try))
}

struct Walker<'a, 'm> {
    api: &'m ApiModel,
    summaries: Option<SummaryLookup<'m>>,
    out: FunctionLocks<'a>,
    /// Pending states of forward `goto`s, by label.
    gotos: HashMap<&'a str, Option<LockState>>,
    /// Guards acquired in each open block (released at its end).
    guard_scopes: Vec<Vec<String>>,
    loops: Vec<Span>,
    /// Pending `break` states of the innermost breakable statement.
    breaks: Vec<Option<LockState>>,
    exit: LockSet,
}

/// Analyze one function.
pub fn analyze_function<'a>(api: &ApiModel, func: &'a Function) -> FunctionLocks<'a> {
    analyze_function_with(api, func, None)
}

/// Analyze one function, applying callees' lock summaries at their calls.
pub fn analyze_function_with<'a>(
    api: &ApiModel,
    func: &'a Function,
    summaries: Option<SummaryLookup<'_>>,
) -> FunctionLocks<'a> {
    let mut w = Walker {
        api,
        summaries,
        out: FunctionLocks::default(),
        gotos: HashMap::default(),
        guard_scopes: Vec::new(),
        loops: Vec::new(),
        breaks: Vec::new(),
        exit: LockSet::empty(),
    };
    // Labels may be jumped to before they appear; pre-register them.
    let end = w.block(&func.body, Some(LockState::default()));
    if let Some(end) = end {
        w.note_exit(&end, func.body.span);
    }
    w.out.held_at_exit = w.exit.clone();
    w.out
}

impl<'a, 'm> Walker<'a, 'm> {
    fn note_exit(&mut self, state: &LockState, span: Span) {
        for l in state.may.iter() {
            self.out.anomalies.push(LockAnomaly { kind: AnomalyKind::ReturnHolding, lock: l.name.clone(), span });
        }
        self.exit = self.exit.union(&state.may);
        self.out.held_at_every_exit = Some(match self.out.held_at_every_exit.take() {
            None => state.must.clone(),
            Some(s) => s.intersection(&state.must),
        });
    }

    fn block(&mut self, b: &'a Block, state: Option<LockState>) -> Option<LockState> {
        self.guard_scopes.push(Vec::new());
        let mut st = state;
        for s in &b.stmts {
            st = self.stmt(s, st);
        }
        let guards = self.guard_scopes.pop().unwrap_or_default();
        st.map(|mut s| {
            for g in guards {
                s = s.release(&g);
            }
            s
        })
    }

    fn events(&mut self, events: &'a [Event], mut st: LockState) -> LockState {
        for e in events {
            match e {
                Event::Call(c) => {
                    self.out.occurrences.push(Occurrence {
                        kind: OccurrenceKind::Call(c),
                        state: st.clone(),
                        loops: self.loops.clone(),
                    });
                    if let Some(summary) = self.summaries.and_then(|f| f(c)) {
                        for name in &summary.releases {
                            // A helper releasing a lock this function did not
                            // take releases its caller's (as a direct unlock would).
                            if st.may.contains_name(name) {
                                st = st.release(name);
                            } else {
                                st = st.release_entry(HeldLock { name: name.clone(), kind: "lock".to_string() });
                            }
                        }
                        for l in summary.acquires {
                            st = st.acquire(l, true);
                        }
                    }
                    if let Some((effect, lock, definitely)) = call_lock_op(self.api, c) {
                        match effect {
                            LockEffect::Acquire => {
                                if matches!(&c.callee, Callee::Direct(n) if n == "guard") {
                                    if let Some(scope) = self.guard_scopes.last_mut() {
                                        scope.push(lock.name.clone());
                                    }
                                }
                                st = st.acquire(lock, definitely);
                            }
                            LockEffect::Release => {
                                if !st.may.contains_name(&lock.name) {
                                    self.out.anomalies.push(LockAnomaly {
                                        kind: AnomalyKind::ReleaseNotHeld,
                                        lock: lock.name.clone(),
                                        span: c.span,
                                    });
                                    st = st.release_entry(lock);
                                } else {
                                    st = st.release(&lock.name);
                                }
                            }
                        }
                    }
                }
                Event::Access(a) => self.out.occurrences.push(Occurrence {
                    kind: OccurrenceKind::Access(a),
                    state: st.clone(),
                    loops: self.loops.clone(),
                }),
                Event::LocalAssign(a) => self.out.occurrences.push(Occurrence {
                    kind: OccurrenceKind::LocalAssign(a),
                    state: st.clone(),
                    loops: self.loops.clone(),
                }),
                Event::FieldAssign(_) => {}
            }
        }
        st
    }

    /// A try-lock in a condition: (lock, held in the then-branch).
    fn try_lock_in(&self, cond: &'a [Event], cond_text: &str) -> Option<(HeldLock, bool)> {
        for e in cond {
            if let Event::Call(c) = e {
                if let Some((LockEffect::Acquire, lock, false)) = call_lock_op(self.api, c) {
                    let negated = cond_text.trim_start().starts_with('!');
                    return Some((lock, !negated));
                }
            }
        }
        None
    }

    fn stmt(&mut self, s: &'a Stmt, st: Option<LockState>) -> Option<LockState> {
        match s {
            Stmt::Label { name, .. } => {
                let pending = self.gotos.remove(name.as_str()).flatten();
                join_opt(st, pending)
            }
            Stmt::Case { .. } => {
                // Reached from the switch head or by fall-through.
                let head = self.breaks.last().cloned().flatten();
                join_opt(st, head)
            }
            _ => {
                let st = st?;
                self.reachable_stmt(s, st)
            }
        }
    }

    fn reachable_stmt(&mut self, s: &'a Stmt, st: LockState) -> Option<LockState> {
        match s {
            Stmt::Simple { events, .. } => Some(self.events(events, st)),
            Stmt::Block(b) => self.block(b, Some(st)),
            Stmt::If { cond, cond_text, then_branch, else_branch, .. } => {
                let st = self.events(cond, st);
                let (then_in, else_in) = match self.try_lock_in(cond, cond_text) {
                    Some((lock, held_in_then)) => {
                        // `events` added it as may-held; make it definite on the
                        // branch where the try succeeded, absent on the other.
                        let without = st.release(&lock.name);
                        let with = without.acquire(lock, true);
                        if held_in_then {
                            (with, without)
                        } else {
                            (without, with)
                        }
                    }
                    None => (st.clone(), st),
                };
                let t = self.block(then_branch, Some(then_in));
                let e = match else_branch {
                    Some(b) => self.block(b, Some(else_in)),
                    None => Some(else_in),
                };
                join_opt(t, e)
            }
            Stmt::Loop { span, kind, head, body } => {
                let st = self.events(head, st);
                if let LoopKind::Iterator { macro_name, args } = kind {
                    self.out.occurrences.push(Occurrence {
                        kind: OccurrenceKind::Iterate { span: *span, macro_name, args },
                        state: st.clone(),
                        loops: self.loops.clone(),
                    });
                }
                self.loops.push(*span);
                self.breaks.push(None);
                let end = self.block(body, Some(st.clone()));
                let brk = self.breaks.pop().flatten();
                self.loops.pop();
                // One iteration, or none (a do-while runs at least once).
                let after = match kind {
                    LoopKind::DoWhile => end,
                    _ => join_opt(Some(st), end),
                };
                join_opt(after, brk)
            }
            Stmt::Switch { cond, body, .. } => {
                let st = self.events(cond, st);
                // The switch head state is stored where `Case` reads it.
                self.breaks.push(Some(st.clone()));
                let head = st.clone();
                let end = self.block(body, None);
                let brk = self.breaks.pop().flatten();
                // Without `default:` the switch may skip every case.
                join_opt(join_opt(end, brk), Some(head))
            }
            Stmt::Return { span, events, .. } => {
                let mut st = self.events(events, st);
                // Guards are released by their cleanup on return.
                for scope in &self.guard_scopes {
                    for g in scope {
                        st = st.release(g);
                    }
                }
                self.note_exit(&st, *span);
                None
            }
            Stmt::Goto { label, .. } => {
                let e = self.gotos.entry(label.as_str()).or_insert(None);
                *e = join_opt(e.take(), Some(st));
                None
            }
            Stmt::Break { .. } => {
                if let Some(b) = self.breaks.last_mut() {
                    *b = join_opt(b.take(), Some(st));
                }
                None
            }
            Stmt::Continue { .. } => None,
            Stmt::ScopedGuard { span, guard_type, args, body } => {
                let g = self.api.guard(guard_type.trim()).cloned();
                let lock = g.map(|g| HeldLock {
                    name: match &g.lock {
                        Some(l) => l.clone(),
                        None => args.first().map(lock_name).unwrap_or_default(),
                    },
                    kind: g.kind.clone(),
                });
                if let Some(l) = &lock {
                    self.out.occurrences.push(Occurrence {
                        kind: OccurrenceKind::Guard { span: *span, lock: l.clone(), guard_type: guard_type.trim() },
                        state: st.clone(),
                        loops: self.loops.clone(),
                    });
                }
                let inner = match &lock {
                    Some(l) => st.acquire(l.clone(), true),
                    None => st,
                };
                let end = self.block(body, Some(inner));
                match lock {
                    Some(l) => end.map(|s| s.release(&l.name)),
                    None => end,
                }
            }
            Stmt::Preproc { branches, .. } => {
                let mut out = None;
                for b in branches {
                    let r = self.block(&b.body, Some(st.clone()));
                    out = join_opt(out, r);
                }
                if branches.is_empty() {
                    Some(st)
                } else {
                    out
                }
            }
            // Handled in `stmt()`, which sees them even when unreachable.
            Stmt::Label { .. } | Stmt::Case { .. } => Some(st),
        }
    }
}
