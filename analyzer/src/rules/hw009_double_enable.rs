//! # HW009 double-enable
//!
//! ## What it finds
//! One root (module init, an ioctl, a notifier) that reaches the per-CPU
//! enable primitive twice, in program order, on a path with no disable in
//! between. The enable primitive is the arch's enable hook (the arch
//! function the common hotplug startup callback reaches) and the arch
//! functions it calls that the disable hook does not; the disable
//! primitive likewise. From each root the rule walks the code in statement
//! order, into callees and into the callbacks of synchronous cross-CPU
//! calls (`on_each_cpu()`), tracking whether virtualization is off, on, or
//! was turned off again on each path (both arms of every `if`, joins at
//! labels, a loop body once). Conditions are not evaluated: an enable
//! followed by `if (x) disable();` leaves it on along the path where `x` is
//! false. The walk is bounded in call depth and steps.
//!
//! The finding sits in the deepest function on both paths, at the call
//! leading to the second enable; the first enable is a related place.
//! When the second enable's primitive is guarded per CPU (it enables only
//! under `if (!__this_cpu_read(flag))` and sets `flag` there, as arm64's
//! `cpu_hyp_init()` does with `kvm_hyp_initialized`), the second enable is
//! a no-op on every CPU the first one enabled: the finding names the guard
//! and is only a note, because the design still hands ownership of the
//! enabled state to two places (whoever clears the flag decides for both).
//!
//! ## Why is this bad?
//! From the review thread: "arm64 is also quite evil and circumvents KVM's
//! hardware enabling logic to some extent. kvm_arch_init() =>
//! init_subsystems() unconditionally enables hardware, and for pKVM
//! _leaves_ hardware enabled." With the patch under review, which enables
//! on all CPUs again in `kvm_init()`: "At a glance, arm64 won't explode,
//! but enabling hardware _twice_ during kvm_init() is all kinds of gross."
//! Two owners of one per-CPU state disagree about when it may be turned
//! off, and the common code's bookkeeping no longer describes the hardware.
//!
//! ## Example
//! ```c
//! int foo_arch_setup(void)
//! {
//!     on_each_cpu(foo_hyp_up, NULL, 1);
//!     err = foo_probe();
//!     if (err || !foo_protected_mode())
//!         on_each_cpu(foo_hyp_down, NULL, 1);    /* stays up otherwise */
//!     return err;
//! }
//!
//! int foo_core_init(void)
//! {
//!     r = foo_arch_setup();
//!     ...
//!     r = foo_enable_all();    /* enables again: foo_arch_cpu_up() -> foo_hyp_up() */
//!     foo_disable_all();
//! }
//! ```
//!
//! ## Fix
//! Give enabling one owner: let the arch setup use the common
//! enable/disable-all helpers (or drop its own enable and rely on the
//! common one), and make the common code aware of a state the arch wants
//! to keep (e.g. take a usage reference instead of leaving it enabled).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{find_rule, Finding, Related, RuleInput};
use crate::contexts::{Analysis, Step};
use crate::facts::{Block, CallSite, Event, Span, Stmt};
use crate::graph::FnId;

/// Arch functions reachable from `from` by calls that stay in arch code.
pub(super) fn arch_closure(a: &Analysis<'_>, from: &[FnId]) -> BTreeSet<FnId> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<FnId> = from.to_vec();
    while let Some(id) = stack.pop() {
        if !super::queries::is_arch(a, id) || !seen.insert(id) {
            continue;
        }
        for e in a.program.calls.get(&id).into_iter().flatten() {
            stack.push(e.callee);
        }
    }
    seen
}

/// The arch's per-CPU enable and disable machinery.
pub(super) struct Machinery {
    /// The enable hooks and the arch functions only they reach.
    pub enable: BTreeSet<FnId>,
    /// The disable hooks and the arch functions only they reach.
    pub disable: BTreeSet<FnId>,
    /// Arch functions outside the enable path that enable on their own:
    /// they call (or broadcast) a function of the enable machinery that does
    /// work of its own (`init_subsystems()`, a CPU PM notifier, pKVM's
    /// `do_pkvm_init()`), whether or not they also call one the disable
    /// hooks reach (an enable that is never undone is the worse bypass).
    /// Helpers the enable hook merely shares with other code (capability
    /// checks, TSC queries) are not called by such code.
    pub togglers: BTreeSet<FnId>,
    /// The togglers that call nothing of the disable side. Such a function
    /// counts only when it also marks the CPU enabled in a per-CPU variable
    /// the enable machinery keeps (pKVM's init setting the flag the enable
    /// hook tests): calling a helper of the enable side alone (a TLB flush,
    /// a compatibility probe) does not make it an enabler.
    pub enable_only: BTreeSet<FnId>,
    /// Functions from which an enable or disable is reachable.
    relevant: BTreeSet<FnId>,
    /// [`Walker::targets`] by call site (address), shared by the walks of
    /// every root: the walks visit the same sites many times.
    site_targets: RefCell<HashMap<usize, Rc<[FnId]>>>,
}

impl Machinery {
    pub fn find(input: &RuleInput<'_>) -> Option<Machinery> {
        let a = input.analysis;
        let ep = input.enable_path;
        if ep.enable_hooks.is_empty() {
            return None;
        }
        let e_all = arch_closure(a, &ep.enable_hooks);
        let d_all = arch_closure(a, &ep.disable_hooks);
        let mut enable: BTreeSet<FnId> = e_all.difference(&d_all).copied().collect();
        enable.extend(ep.enable_hooks.iter().copied());
        let mut disable: BTreeSet<FnId> = d_all.difference(&e_all).copied().collect();
        disable.extend(ep.disable_hooks.iter().copied());
        // Reverse reachability over calls and cross-CPU callbacks.
        let mut rev: HashMap<FnId, Vec<FnId>> = HashMap::default();
        for (&caller, edges) in &a.program.calls {
            for e in edges {
                rev.entry(e.callee).or_default().push(caller);
            }
        }
        for cb in &a.callback_edges {
            rev.entry(cb.callee).or_default().push(cb.caller);
        }
        // Enable machinery that does work of its own through further
        // machinery (not a leaf helper the hook shares with other code).
        let worker = |t: FnId| {
            a.program.calls.get(&t).into_iter().flatten().any(|e| e.callee != t && enable.contains(&e.callee))
        };
        // Per-CPU variables the enable machinery keeps (current-CPU accesses).
        let flags_of = |f: FnId| -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            crate::graph::visit_calls(&a.program.func(f).body.stmts, &mut |c| {
                out.extend(this_cpu_var(a, c));
            });
            out
        };
        let enable_flags: BTreeSet<String> = enable.iter().flat_map(|&f| flags_of(f)).collect();
        let mut togglers = BTreeSet::new();
        let mut enable_only = BTreeSet::new();
        for &g in &a.program.functions {
            if e_all.contains(&g) || d_all.contains(&g) || !super::queries::is_arch(a, g) {
                continue;
            }
            let w = Walker {
                a,
                m: None,
                hooks: &[],
                max_depth: 0,
                steps: 0,
                doubles: Vec::new(),
                disables: Vec::new(),
                can_enable: None,
            };
            let mut en = false;
            let mut dis = false;
            crate::graph::visit_calls(&a.program.func(g).body.stmts, &mut |c| {
                for &t in w.targets(g, c).iter() {
                    en |= enable.contains(&t) && !ep.enable_hooks.contains(&t) && worker(t);
                    dis |= d_all.contains(&t);
                }
            });
            if en && dis {
                togglers.insert(g);
            } else if en && flags_of(g).iter().any(|v| enable_flags.contains(v)) {
                togglers.insert(g);
                enable_only.insert(g);
            }
        }
        let mut relevant = BTreeSet::new();
        let mut stack: Vec<FnId> = enable.iter().chain(disable.iter()).copied().collect();
        while let Some(id) = stack.pop() {
            if relevant.insert(id) {
                stack.extend(rev.get(&id).into_iter().flatten().copied());
            }
        }
        Some(Machinery { enable, disable, togglers, enable_only, relevant, site_targets: RefCell::default() })
    }
}

impl Machinery {
    /// Whether `caller` calling `callee` enables virtualization: the arch
    /// enable hook, or the enable machinery entered by a toggler.
    pub fn is_enable(&self, caller: FnId, callee: FnId, hooks: &[FnId]) -> bool {
        hooks.contains(&callee) || (self.enable.contains(&callee) && self.togglers.contains(&caller))
    }
}

/// A call frame of a walk: the function and the call site in it.
pub(super) type Frame = (FnId, Span);

/// The abstract per-CPU enable state of the paths reaching a point.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    /// Some path has not enabled yet (or started disabled).
    pub off: bool,
    /// Some path has it enabled: the frames of the enable that did it
    /// (shared: states are cloned at every branch of the walk).
    pub on: Option<Rc<[Frame]>>,
    /// Some path enabled and then disabled again.
    pub off_again: bool,
}

impl State {
    fn is_bottom(&self) -> bool {
        !self.off && self.on.is_none() && !self.off_again
    }
    fn join(mut self, o: State) -> State {
        self.off |= o.off;
        self.off_again |= o.off_again;
        // Keep the shortest witness of an enabled path.
        let shorter = match (&self.on, &o.on) {
            (None, Some(_)) => true,
            (Some(w), Some(x)) => x.len() < w.len(),
            _ => false,
        };
        if shorter {
            self.on = o.on;
        }
        self
    }
}

/// An enable reached while enabled on some path.
#[derive(Debug, Clone)]
pub(super) struct Double {
    pub first: Vec<Frame>,
    pub second: Vec<Frame>,
}

/// The ordered walk from one function.
pub(super) struct Walker<'w, 'a> {
    a: &'w Analysis<'a>,
    m: Option<&'w Machinery>,
    hooks: &'w [FnId],
    /// Descend into callees this deep.
    max_depth: usize,
    steps: usize,
    pub doubles: Vec<Double>,
    /// Every enable and disable seen (frames), for evidence.
    pub disables: Vec<Vec<Frame>>,
    /// When walking for doubles only: the functions from which an enable
    /// is reachable. A callee outside it, entered while no path has
    /// enabled, can neither enable nor change the state (a disable of
    /// nothing enabled changes nothing), so it is not walked.
    can_enable: Option<&'w HashSet<FnId>>,
}

const MAX_STEPS: usize = 200_000;

impl<'w, 'a> Walker<'w, 'a> {
    pub fn new(a: &'w Analysis<'a>, m: &'w Machinery, hooks: &'w [FnId], max_depth: usize) -> Self {
        Walker {
            a,
            m: Some(m),
            hooks,
            max_depth,
            steps: 0,
            doubles: Vec::new(),
            disables: Vec::new(),
            can_enable: None,
        }
    }

    /// The functions of the program from which this walk can reach an
    /// enable, over the walk's own call targets (calls and the callbacks
    /// a call runs now).
    pub fn reaching_enable(&self) -> HashSet<FnId> {
        let Some(m) = self.m else { return HashSet::default() };
        let a = self.a;
        let mut rev: HashMap<FnId, Vec<FnId>> = HashMap::default();
        let mut stack: Vec<FnId> = Vec::new();
        for &g in &a.program.functions {
            crate::graph::visit_calls(&a.program.func(g).body.stmts, &mut |c| {
                for &t in self.targets(g, c).iter() {
                    if m.is_enable(g, t, self.hooks) {
                        stack.push(g);
                    }
                    rev.entry(t).or_default().push(g);
                }
            });
        }
        let mut seen = HashSet::default();
        while let Some(f) = stack.pop() {
            if seen.insert(f) {
                stack.extend(rev.get(&f).into_iter().flatten().copied());
            }
        }
        seen
    }

    /// Walk `f`'s body from `st`; the state at its exits.
    pub fn function(&mut self, f: FnId, st: State, stack: &mut Vec<Frame>) -> State {
        let body = &self.a.program.func(f).body;
        let mut labels: HashMap<String, State> = HashMap::default();
        let mut returned = State::default();
        let end = self.block(f, body, st, stack, &mut labels, &mut returned);
        let mut exit = end.join(returned);
        for (_, s) in labels.drain() {
            // Gotos to labels never seen (backward jumps) end here.
            exit = exit.join(s);
        }
        exit
    }

    fn block(
        &mut self,
        f: FnId,
        b: &'a Block,
        st: State,
        stack: &mut Vec<Frame>,
        labels: &mut HashMap<String, State>,
        returned: &mut State,
    ) -> State {
        let mut cur = st;
        for s in &b.stmts {
            cur = self.stmt(f, s, cur, stack, labels, returned);
        }
        cur
    }

    /// One statement; `returned` collects the states of `return`s.
    fn stmt(
        &mut self,
        f: FnId,
        s: &'a Stmt,
        st: State,
        stack: &mut Vec<Frame>,
        labels: &mut HashMap<String, State>,
        returned: &mut State,
    ) -> State {
        if let Stmt::Label { name, .. } = s {
            return match labels.remove(name) {
                Some(p) => st.join(p),
                None => st,
            };
        }
        if st.is_bottom() && !matches!(s, Stmt::Switch { .. }) {
            return st;
        }
        match s {
            Stmt::Simple { events, .. } => self.events(f, events, st, stack),
            Stmt::Return { events, .. } => {
                let st = self.events(f, events, st, stack);
                *returned = std::mem::take(returned).join(st);
                State::default()
            }
            Stmt::Block(b) => self.block(f, b, st, stack, labels, returned),
            Stmt::ScopedGuard { body, .. } => self.block(f, body, st, stack, labels, returned),
            Stmt::If { cond, then_branch, else_branch, .. } => {
                let st = self.events(f, cond, st, stack);
                let t = self.block(f, then_branch, st.clone(), stack, labels, returned);
                let e = match else_branch {
                    Some(b) => self.block(f, b, st, stack, labels, returned),
                    None => st,
                };
                t.join(e)
            }
            Stmt::Loop { head, body, .. } => {
                let st = self.events(f, head, st, stack);
                let once = self.block(f, body, st.clone(), stack, labels, returned);
                st.join(once)
            }
            Stmt::Switch { cond, body, .. } => {
                let st = self.events(f, cond, st, stack);
                // Every case is entered from the head; fall-through joins.
                let mut cur = State::default();
                let mut r = State::default();
                for s in &body.stmts {
                    if matches!(s, Stmt::Case { .. }) {
                        cur = cur.join(st.clone());
                        continue;
                    }
                    if matches!(s, Stmt::Break { .. }) {
                        r = r.join(std::mem::take(&mut cur));
                        continue;
                    }
                    cur = self.stmt(f, s, cur, stack, labels, returned);
                }
                st.join(cur).join(r)
            }
            Stmt::Goto { label, .. } => {
                let e = labels.remove(label).unwrap_or_default();
                labels.insert(label.clone(), e.join(st));
                State::default()
            }
            Stmt::Break { .. } | Stmt::Continue { .. } => State::default(),
            Stmt::Preproc { branches, .. } => {
                if branches.is_empty() {
                    return st;
                }
                let mut out = State::default();
                for b in branches {
                    let r = self.block(f, &b.body, st.clone(), stack, labels, returned);
                    out = out.join(r);
                }
                out
            }
            Stmt::Label { .. } | Stmt::Case { .. } => st,
        }
    }

    fn events(&mut self, f: FnId, events: &'a [Event], mut st: State, stack: &mut Vec<Frame>) -> State {
        for e in events {
            if let Event::Call(c) = e {
                st = self.call(f, c, st, stack);
            }
        }
        st
    }

    /// The callees a call site runs now: its resolved targets and the
    /// callbacks of a synchronous cross-CPU call or of a hotplug
    /// registration that invokes its startup callback at once.
    pub fn targets(&self, f: FnId, c: &'a CallSite) -> Rc<[FnId]> {
        let key = c as *const CallSite as usize;
        if let Some(t) = self.m.and_then(|m| m.site_targets.borrow().get(&key).cloned()) {
            return t;
        }
        let out: Rc<[FnId]> = self.compute_targets(f, c).into();
        if let Some(m) = self.m {
            m.site_targets.borrow_mut().insert(key, out.clone());
        }
        out
    }

    fn compute_targets(&self, f: FnId, c: &'a CallSite) -> Vec<FnId> {
        let a = self.a;
        let mut out: Vec<FnId> = a.program.edges_at(f, c).iter().map(|e| e.callee).collect();
        if let crate::facts::Callee::Direct(name) = &c.callee {
            if let Some(reg) = a.api.registration(name) {
                let now = reg.context.as_deref() == Some("ipi") || reg.invokes_now;
                if now {
                    let args: Vec<usize> = if reg.invokes_now {
                        reg.callback_args.first().copied().into_iter().collect()
                    } else {
                        reg.callback_args.clone()
                    };
                    for ai in args {
                        let Some(cb) = c.args.get(ai).and_then(|x| x.ident.as_deref()) else { continue };
                        out.extend(a.program.lookup(f.file, cb).iter().copied());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn call(&mut self, f: FnId, c: &'a CallSite, st: State, stack: &mut Vec<Frame>) -> State {
        let targets = self.targets(f, c);
        let Some(m) = self.m else { return st };
        if targets.is_empty() {
            return st;
        }
        stack.push((f, c.span));
        let mut out = State::default();
        for &t in targets.iter() {
            self.steps += 1;
            let r = if m.is_enable(f, t, self.hooks) {
                if let Some(first) = &st.on {
                    self.doubles.push(Double { first: first.to_vec(), second: stack.clone() });
                }
                State { off: false, on: Some(stack.as_slice().into()), off_again: false }
            } else if m.disable.contains(&t) {
                self.disables.push(stack.clone());
                State { off: st.off, on: None, off_again: st.off_again || st.on.is_some() }
            } else if m.enable.contains(&t) {
                // Machinery entered by other code (a helper shared with the
                // enable hook): neither an enable nor worth walking.
                st.clone()
            } else if st.on.is_none() && self.can_enable.is_some_and(|c| !c.contains(&t)) {
                st.clone()
            } else if m.relevant.contains(&t)
                && stack.len() <= self.max_depth
                && self.steps < MAX_STEPS
                && !stack.iter().any(|(g, _)| *g == t)
            {
                self.function(t, st.clone(), stack)
            } else {
                st.clone()
            };
            out = out.join(r);
        }
        stack.pop();
        out
    }
}

/// Steps for evidence from frames (root first), ending at `last`.
pub(super) fn frames_to_steps(a: &Analysis<'_>, context: &str, frames: &[Frame], last: Option<FnId>) -> Vec<Step> {
    let mut ctx = context.to_string();
    let mut via: Option<String> = None;
    let mut steps = Vec::new();
    let step = |f: FnId, sp: Span, ctx: &str, via: Option<String>| Step {
        function: a.program.func(f).name.clone(),
        file: a.program.file(f).path.clone(),
        line: sp.line,
        col: sp.col,
        context: ctx.to_string(),
        held: Vec::new(),
        may_held: Vec::new(),
        serialized_by: Vec::new(),
        via,
    };
    for &(f, sp) in frames {
        steps.push(step(f, sp, &ctx, via.take()));
        // A call that runs its callback in another context (`on_each_cpu()`).
        crate::graph::visit_calls(&a.program.func(f).body.stmts, &mut |c| {
            if c.span != sp {
                return;
            }
            if let crate::facts::Callee::Direct(name) = &c.callee {
                if let Some(reg_ctx) = a.api.registration(name).and_then(|r| r.context.clone()) {
                    ctx = reg_ctx;
                    via = Some(format!("{name}()"));
                }
            }
        });
    }
    if let Some(l) = last {
        steps.push(step(l, a.program.func(l).name_span, &ctx, via.take()));
    }
    steps
}

/// The callee an enable frame enters.
fn entered(a: &Analysis<'_>, m: &Machinery, hooks: &[FnId], frames: &[Frame]) -> Option<FnId> {
    let (f, sp) = *frames.last()?;
    let w = Walker::new(a, m, hooks, 0);
    let func = a.program.func(f);
    let mut found = None;
    crate::graph::visit_calls(&func.body.stmts, &mut |c| {
        if found.is_none() && c.span == sp {
            found = w.targets(f, c).iter().copied().find(|t| m.is_enable(f, *t, hooks));
        }
    });
    found
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW009") else { return Vec::new() };
    let a = input.analysis;
    let Some(m) = Machinery::find(input) else { return Vec::new() };
    let hooks = &input.enable_path.enable_hooks[..];
    let mut out = Vec::new();
    let can_enable = Walker::new(a, &m, hooks, 16).reaching_enable();
    for root in &a.roots {
        if !m.relevant.contains(&root.function) || m.enable.contains(&root.function) {
            continue;
        }
        // A double needs an enable: a root that cannot reach one has none.
        if !can_enable.contains(&root.function) {
            continue;
        }
        let mut w = Walker::new(a, &m, hooks, 16);
        w.can_enable = Some(&can_enable);
        let mut stack = Vec::new();
        w.function(root.function, State { off: true, ..State::default() }, &mut stack);
        // The deepest frame both paths share: where the two enables meet.
        let meet = |d: &Double| {
            let mut k = 0;
            while k < d.first.len() && k < d.second.len() && d.first[k].0 == d.second[k].0 {
                k += 1;
            }
            k
        };
        // Two calls of an enable-only function's own machinery (pKVM's init
        // setting up the context, then the features) are one enable.
        let one_enable = |d: &Double| {
            let k = meet(d);
            k > 0 && d.second.len() == k && d.first.len() == k && m.enable_only.contains(&d.second[k - 1].0)
        };
        let Some(d) = w.doubles.iter().find(|d| !one_enable(d)).cloned() else { continue };
        let k = meet(&d);
        let Some(&(at, at_span)) = d.second.get(k.saturating_sub(1)) else { continue };
        let first_at = d.first.get(k.saturating_sub(1)).copied().unwrap_or(d.first[0]);
        let prim1 = entered(a, &m, hooks, &d.first).map(|f| a.program.func(f).name.clone()).unwrap_or_default();
        let prim2 = entered(a, &m, hooks, &d.second).map(|f| a.program.func(f).name.clone()).unwrap_or_default();
        let callee_name = |frames: &[Frame], i: usize| -> String {
            match frames.get(i) {
                Some((f, _)) => format!("`{}()`", a.program.func(*f).name),
                None => "it".to_string(),
            }
        };
        let first_via = callee_name(&d.first, k);
        let second_via = callee_name(&d.second, k);
        let message = format!(
            "virtualization is enabled twice from `{}()`: {first_via} enables it (`{prim1}()`) and leaves it \
             enabled on some path, then {second_via} enables it again (`{prim2}()`) with no disable in between",
            root.function_name
        );
        let guard = entered(a, &m, hooks, &d.second).and_then(|f| per_cpu_guard(a, f));
        let message = match &guard {
            Some((g, flag)) => format!(
                "{message}; the second enable is guarded per CPU: `{}()` enables only while `{flag}` is clear and \
                 sets it, so it does nothing where the first enable ran, and the two owners share one flag",
                a.program.func(*g).name
            ),
            None => format!("{message}; no per-CPU guard found in the second enable: it runs again"),
        };
        let mut evidence = frames_to_steps(a, &root.context, &d.second, entered(a, &m, hooks, &d.second));
        if let Some(s) = evidence.first_mut() {
            s.via = Some(format!("root: {}", root.origin));
        }
        let mut related = vec![Related {
            file: a.program.file(first_at.0).path.clone(),
            line: first_at.1.line,
            col: first_at.1.col,
            message: format!("first enable: {first_via} reaches `{prim1}()`"),
        }];
        if let Some(&(f, sp)) = d.first.last() {
            related.push(Related {
                file: a.program.file(f).path.clone(),
                line: sp.line,
                col: sp.col,
                message: format!("`{}()` enables here", a.program.func(f).name),
            });
        }
        if let Some((g, _)) = &guard {
            let gf = a.program.func(*g);
            related.push(Related {
                file: a.program.file(*g).path.clone(),
                line: gf.name_span.line,
                col: gf.name_span.col,
                message: format!("`{}()` is the per-CPU guard of the second enable", gf.name),
            });
        }
        let finding = Finding::new(
            info,
            input,
            at,
            at_span.line,
            at_span.col,
            message,
            evidence,
            // The kind of root enabling twice, not its name nor the
            // primitives' (renaming them keeps the finding).
            vec!["enabled twice".to_string(), format!("root {}", root.context)],
        )
        .with_related(related);
        out.push(if guard.is_some() { finding.with_severity(crate::rules::Severity::Note) } else { finding });
    }
    out
}

/// The per-CPU flag guarding the enable in `f` or an arch function it
/// calls directly: an `if` whose condition reads a current-CPU per-CPU
/// variable and whose branch writes that variable and does something else
/// (the enable). The guarding function and the flag.
fn per_cpu_guard(a: &Analysis<'_>, f: FnId) -> Option<(FnId, String)> {
    let mut candidates = vec![f];
    for e in a.program.calls.get(&f).into_iter().flatten() {
        if super::queries::is_arch(a, e.callee) && !candidates.contains(&e.callee) {
            candidates.push(e.callee);
        }
    }
    candidates.into_iter().find_map(|g| guard_in(a, &a.program.func(g).body.stmts).map(|flag| (g, flag)))
}

/// The current-CPU per-CPU variable named at `c`, when `c` accesses one.
fn this_cpu_var(a: &Analysis<'_>, c: &CallSite) -> Option<String> {
    let crate::facts::Callee::Direct(n) = &c.callee else { return None };
    let acc = a.api.percpu_accessor(n).filter(|acc| acc.current_cpu)?;
    c.args.get(acc.var_arg)?.ident.clone()
}

fn guard_in(a: &Analysis<'_>, stmts: &[Stmt]) -> Option<String> {
    for s in stmts {
        match s {
            Stmt::If { cond, then_branch, else_branch, .. } => {
                let read: Vec<String> = cond
                    .iter()
                    .filter_map(|e| match e {
                        Event::Call(c) => this_cpu_var(a, c),
                        _ => None,
                    })
                    .collect();
                let (mut writes, mut others) = (Vec::new(), 0);
                crate::graph::visit_calls(&then_branch.stmts, &mut |c| match this_cpu_var(a, c) {
                    Some(v) => writes.push(v),
                    None => others += 1,
                });
                if let Some(flag) = read.into_iter().find(|v| writes.contains(v)) {
                    if others > 0 {
                        return Some(flag);
                    }
                }
                let nested = guard_in(a, &then_branch.stmts);
                if nested.is_some() {
                    return nested;
                }
                if let Some(b) = else_branch {
                    if let Some(g) = guard_in(a, &b.stmts) {
                        return Some(g);
                    }
                }
            }
            Stmt::Block(b) => {
                if let Some(g) = guard_in(a, &b.stmts) {
                    return Some(g);
                }
            }
            _ => {}
        }
    }
    None
}
