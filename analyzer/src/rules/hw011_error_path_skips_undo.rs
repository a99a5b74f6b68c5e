//! # HW011 error-path-skips-undo
//!
//! ## What it finds
//! An error exit of a function (a `goto label` or a `return` taken when a
//! call fails, `if (r) goto out_x;`) that leaves a step done earlier on the
//! same path without its undo. Which steps have an undo comes from two
//! places:
//! - the API model's `undo_pairs` / `undo_suffixes` (`list_add()` ->
//!   `list_del()`, `try_module_get()` -> `module_put()`, `X_init` ->
//!   `X_destroy`, `X_get` -> `X_put`, also as a word inside the name:
//!   `foo_init_vm()` -> `foo_destroy_vm()`);
//! - the function's teardown twin (the function of the same file that
//!   `list_del()`s what this one `list_add()`s, or whose name pairs with it:
//!   `_create` -> `_destroy`). The twin undoes the creation steps in reverse
//!   order, so around a step paired with its undo (the anchor), the step
//!   just before it in the creating function is undone by the call just
//!   after the undo in the twin (`foo_post_setup()` ... `list_add()` versus
//!   `list_del()` ... `foo_pre_teardown()`).
//!
//! A step only counts when its undo is evidenced: called by the function
//! itself on a later path, or by its twin. The exit's own failing call is
//! not a completed step, and neither is a step done only conditionally.
//! The undos run by an exit are the calls on its branch before the jump
//! plus every call from the label to the function's end, following
//! fall-through into later labels.
//!
//! ## Why is this bad?
//! From the review thread: "Commit 5f6de5cbebee ("KVM: Prevent module exit
//! until all VMs are freed") added an error path that can cause VM creation
//! to fail _after_ it has been added to the list, but doesn't unwind _any_
//! of the stuff done by kvm_arch_post_init_vm() and beyond." The object is
//! freed while still on a global list (a use-after-free for every walker),
//! and whatever the arch set up for it (threads, registrations) leaks.
//!
//! ## Example
//! ```c
//!     r = foo_arch_guest_added(g);
//!     if (r)
//!         goto out_put;
//!
//!     mutex_lock(&guest_list_lock);
//!     list_add(&g->link, &guest_list);
//!     mutex_unlock(&guest_list_lock);
//!
//!     if (!try_module_get(foo_fops.owner)) {
//!         r = -ENODEV;
//!         goto out_put;        /* g stays on guest_list */
//!     }
//!     return g;
//!
//! out_put:
//!     foo_put_all();
//!     kfree(g);
//!     return ERR_PTR(r);
//! ```
//! while `guest_destroy()` does `list_del(&g->link)` and then
//! `foo_arch_guest_removing(g)`.
//!
//! ## Fix
//! Add a label that undoes the steps in reverse order (`list_del()` under
//! the list's lock, then the arch undo) and falls through to the existing
//! labels, and jump there; or move the failing step before the first step
//! the existing labels do not undo.

use std::collections::{BTreeMap, BTreeSet};

use super::{find_rule, Finding, Related, RuleInput};
use crate::api::ApiModel;
use crate::contexts::Analysis;
use crate::facts::{Block, CallSite, Callee, Event, Function, Stmt};
use crate::graph::{visit_calls, FnId};
use crate::locks::call_lock_op;

/// Where the undo of a step is known from.
#[derive(Debug, Clone)]
struct Evidence {
    /// The undo call's name as written there.
    undo: String,
    function: FnId,
    line: u32,
    col: u32,
    /// Found in the twin (else in the function itself).
    in_twin: bool,
}

/// A call with an evidenced undo.
#[derive(Debug, Clone)]
struct Step<'a> {
    call: &'a CallSite,
    name: String,
    /// Names whose call undoes it (a call named `U` or `U_*` counts).
    undos: Vec<String>,
    evidence: Evidence,
}

/// Names of the calls that undo `f`: the API model's pairs, and the
/// suffix table applied to every word of the name.
fn undo_names(api: &ApiModel, f: &str) -> Vec<String> {
    let mut out = api.undo_of(f);
    let wrapped = format!("_{f}_");
    for s in &api.table.undo_suffixes {
        // `do` followed by `_`, overlapping occurrences too; the names are
        // built only on a match (this runs for every call of every function).
        let d = s.do_.as_str();
        for at in do_positions(&wrapped, d) {
            for u in &s.undo {
                let replaced = format!("{}{}_{}", &wrapped[..at], u, &wrapped[at + d.len() + 1..]);
                let name = replaced.trim_matches('_').to_string();
                if !name.is_empty() && name != f {
                    out.push(name);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether [`undo_names`] of `f` is not empty: asked for every call of
/// every function, so a cheap test (`f` is in the pair table, or a `do`
/// suffix of the table stands in `f` as a whole word) rules out most names
/// before they are built.
fn has_undo<'a>(api: &ApiModel, memo: &mut UndoMemo<'a>, f: &'a str) -> bool {
    may_have_undo(api, f) && !memo.get(api, f).is_empty()
}

/// [`undo_names`] of each name asked, built once per run of the rule: the
/// same callees (`kvm_get_*`, `*_init`) come back in function after
/// function.
#[derive(Default)]
struct UndoMemo<'a>(std::collections::HashMap<&'a str, std::rc::Rc<[String]>>);

impl<'a> UndoMemo<'a> {
    fn get(&mut self, api: &ApiModel, name: &'a str) -> std::rc::Rc<[String]> {
        self.0.entry(name).or_insert_with(|| undo_names(api, name).into()).clone()
    }
}

/// The cheap half of [`has_undo`]: false only when [`undo_names`] of `f`
/// is empty.
fn may_have_undo(api: &ApiModel, f: &str) -> bool {
    let wrapped = format!("_{f}_");
    api.table.undo_pairs.iter().any(|p| p.do_.iter().any(|d| d == f))
        || api.table.undo_suffixes.iter().any(|s| do_positions(&wrapped, &s.do_).next().is_some())
}

/// Where `d` stands in `wrapped` (`_name_`) followed by `_`, overlapping
/// occurrences too: `_init` in `_kvm_mmio_init_`, not in `_initial_`. A
/// byte scan: this runs for every call of every function, where building a
/// substring searcher per call cost more than the whole match.
fn do_positions<'w>(wrapped: &'w str, d: &'w str) -> impl Iterator<Item = usize> + 'w {
    let (w, d) = (wrapped.as_bytes(), d.as_bytes());
    let first = d.first().copied();
    (0..w.len()).filter(move |&at| Some(w[at]) == first && w[at..].starts_with(d) && w.get(at + d.len()) == Some(&b'_'))
}

/// The undos of `f` from the API model's explicit pair table (strong
/// pairs: the call always owes its undo).
fn paired_undos(api: &ApiModel, f: &str) -> Vec<String> {
    api.table.undo_pairs.iter().filter(|p| p.do_.iter().any(|d| d == f)).flat_map(|p| p.undo.iter().cloned()).collect()
}

/// The identifiers a condition tests directly (`r` in `if (r < 0)`, but not
/// `kvm` in `if (!kvm->buses[i])`).
fn tested_words(cond_text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = cond_text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let before = cond_text[..start].trim_end();
            let after = cond_text[i..].trim_start();
            let member =
                after.starts_with("->") || after.starts_with('.') || before.ends_with("->") || before.ends_with('.');
            if !member && !after.starts_with('(') {
                out.push(&cond_text[start..i]);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Calls whose result is tested by an `if`: calls in the condition, and
/// calls of the statement just before it whose result a tested local holds.
fn fallible_calls<'a>(stmts: &'a [Stmt], out: &mut Vec<&'a CallSite>) {
    let mut prev: Option<&'a [Event]> = None;
    for s in stmts {
        match s {
            Stmt::If { cond, cond_text, then_branch, else_branch, .. } => {
                for e in cond {
                    if let Event::Call(c) = e {
                        out.push(c);
                    }
                }
                if let Some(evs) = prev {
                    let words = tested_words(cond_text);
                    let mut last = None;
                    for e in evs {
                        match e {
                            Event::Call(c) => last = Some(c),
                            Event::LocalAssign(l) if words.contains(&l.name.as_str()) => {
                                out.extend(last.filter(|c| direct_name(c) == l.value_call.as_deref()));
                            }
                            _ => {}
                        }
                    }
                }
                fallible_calls(&then_branch.stmts, out);
                if let Some(b) = else_branch {
                    fallible_calls(&b.stmts, out);
                }
            }
            Stmt::Block(b)
            | Stmt::Loop { body: b, .. }
            | Stmt::Switch { body: b, .. }
            | Stmt::ScopedGuard { body: b, .. } => fallible_calls(&b.stmts, out),
            Stmt::Preproc { branches, .. } => {
                for b in branches {
                    fallible_calls(&b.body.stmts, out);
                }
            }
            _ => {}
        }
        prev = match s {
            Stmt::Simple { events, .. } => Some(events),
            _ => None,
        };
    }
}

/// Whether a call named `name` performs the undo `undo` (`kvm_put_kvm` and
/// `kvm_put_kvm_no_destroy` both undo `kvm_get_kvm`).
fn is_undo_call(name: &str, undo: &str) -> bool {
    name == undo || name.strip_prefix(undo).is_some_and(|r| r.starts_with('_'))
}

fn direct_name(c: &CallSite) -> Option<&str> {
    match &c.callee {
        Callee::Direct(n) => Some(n.as_str()),
        _ => None,
    }
}

/// The calls of a function in source order, lock operations left out.
fn plain_calls<'a>(api: &ApiModel, func: &'a Function) -> Vec<&'a CallSite> {
    let mut out = Vec::new();
    visit_calls(&func.body.stmts, &mut |c| {
        if direct_name(c).is_some() && call_lock_op(api, c).is_none() {
            out.push(c);
        }
    });
    out.sort_by_key(|c| c.span.start);
    out
}

fn common_prefix_words(a: &str, b: &str) -> usize {
    a.split('_').zip(b.split('_')).take_while(|(x, y)| x == y).count()
}

/// The member linking entries of a list operation's entry argument.
fn list_member(api: &ApiModel, c: &CallSite) -> Option<String> {
    let op = api.list_op(direct_name(c)?)?;
    c.args.get(op.entry_arg).and_then(super::queries::member_of)
}

/// The teardown twins of `id`: functions of the same file whose name pairs
/// with it through the undo table, or that delete from a list what `id` adds.
fn twins<'a>(a: &Analysis<'a>, memo: &mut UndoMemo<'a>, id: FnId) -> Vec<FnId> {
    let api = a.api;
    let func = a.program.func(id);
    let names = memo.get(api, &func.name);
    let added: BTreeSet<String> = plain_calls(api, func)
        .into_iter()
        .filter(|c| api.list_op(direct_name(c).unwrap_or("")).is_some_and(|o| o.head_arg.is_some()))
        .filter_map(|c| list_member(api, c))
        .collect();
    let mut out = Vec::new();
    for (fi, f) in a.program.file(id).functions.iter().enumerate() {
        let other = FnId { file: id.file, func: fi as u32 };
        if other == id || !a.program.contains(other) {
            continue;
        }
        let named = names.iter().any(|n| n == &f.name);
        let unlists = !added.is_empty()
            && plain_calls(api, f).into_iter().any(|c| {
                api.list_op(direct_name(c).unwrap_or("")).is_some_and(|o| o.head_arg.is_none())
                    && list_member(api, c).is_some_and(|m| added.contains(&m))
            });
        if named || unlists {
            out.push(other);
        }
    }
    out
}

/// The steps of `id` with an evidenced undo, by call identity.
fn steps<'a>(a: &Analysis<'a>, memo: &mut UndoMemo<'a>, id: FnId) -> Vec<Step<'a>> {
    let api = a.api;
    let func = a.program.func(id);
    let calls = plain_calls(api, func);
    // Most functions call nothing that has an undo: skip the twin search.
    if !calls.iter().any(|c| has_undo(api, memo, direct_name(c).unwrap_or_default())) {
        return Vec::new();
    }
    let twin_ids = twins(a, memo, id);
    let mut fallible: Vec<&'a CallSite> = Vec::new();
    fallible_calls(&func.body.stmts, &mut fallible);
    let is_fallible = |c: &CallSite| fallible.iter().any(|f| std::ptr::eq(*f, c));
    // Undos from the table, evidenced in the function after the step or in a twin.
    let mut out: Vec<Step<'a>> = Vec::new();
    let mut anchored: BTreeMap<usize, (FnId, usize)> = BTreeMap::new();
    let mut matched: BTreeSet<usize> = BTreeSet::new();
    let mut matched_twin: BTreeSet<(FnId, usize)> = BTreeSet::new();
    let twin_calls: Vec<(FnId, Vec<&'a CallSite>)> =
        twin_ids.iter().map(|&t| (t, plain_calls(api, a.program.func(t)))).collect();
    for (i, c) in calls.iter().enumerate() {
        let name = direct_name(c).unwrap_or_default();
        if !may_have_undo(api, name) {
            continue;
        }
        let undos = memo.get(api, name);
        if undos.is_empty() {
            continue;
        }
        let strong = !paired_undos(api, name).is_empty();
        let matches = |n: Option<&str>| n.is_some_and(|n| undos.iter().any(|u| is_undo_call(n, u)));
        let own = calls.iter().find(|d| d.span.start > c.span.start && matches(direct_name(d)));
        let mut twin_hit = None;
        for (t, tc) in &twin_calls {
            if let Some(j) = tc.iter().position(|d| matches(direct_name(d))) {
                twin_hit = Some((*t, j));
                break;
            }
        }
        if let Some((t, j)) = twin_hit {
            matched.insert(i);
            matched_twin.insert((t, j));
            if strong {
                anchored.insert(i, (t, j));
            }
        }
        // A name-derived pair known only from the twin counts for a step
        // that can fail: `foo_init()` returning void initializes, it does
        // not acquire.
        let twin_hit = twin_hit.filter(|_| strong || is_fallible(c));
        let evidence = match (own, twin_hit) {
            (Some(d), _) => Evidence {
                undo: direct_name(d).unwrap_or_default().to_string(),
                function: id,
                line: d.span.line,
                col: d.span.col,
                in_twin: false,
            },
            (None, Some((t, j))) => {
                let d = twin_calls.iter().find(|(x, _)| *x == t).map(|(_, tc)| tc[j]).expect("twin call");
                Evidence {
                    undo: direct_name(d).unwrap_or_default().to_string(),
                    function: t,
                    line: d.span.line,
                    col: d.span.col,
                    in_twin: true,
                }
            }
            (None, None) => continue,
        };
        out.push(Step { call: c, name: name.to_string(), undos: undos.to_vec(), evidence });
    }
    // Reverse-order alignment around the anchors: the step next to an
    // anchored step is undone by the twin's call on the other side of the
    // anchor's undo.
    let own_names: BTreeSet<&str> = calls.iter().filter_map(|c| direct_name(c)).collect();
    for (&i, &(t, j)) in &anchored {
        let Some((_, tc)) = twin_calls.iter().find(|(x, _)| *x == t) else {
            continue;
        };
        let pairs = [(i.checked_sub(1), j.checked_add(1)), (i.checked_add(1), j.checked_sub(1))];
        for (p, q) in pairs {
            let (Some(p), Some(q)) = (p, q) else { continue };
            let (Some(c), Some(d)) = (calls.get(p), tc.get(q)) else {
                continue;
            };
            if matched.contains(&p) || matched_twin.contains(&(t, q)) {
                continue;
            }
            let (Some(cn), Some(dn)) = (direct_name(c), direct_name(d)) else {
                continue;
            };
            if cn == dn || own_names.contains(dn) || common_prefix_words(cn, dn) < 2 || !is_fallible(c) {
                continue;
            }
            if out.iter().any(|s| std::ptr::eq(s.call, *c)) {
                continue;
            }
            out.push(Step {
                call: c,
                name: cn.to_string(),
                undos: vec![dn.to_string()],
                evidence: Evidence {
                    undo: dn.to_string(),
                    function: t,
                    line: d.span.line,
                    col: d.span.col,
                    in_twin: true,
                },
            });
        }
    }
    out.sort_by_key(|s| s.call.span.start);
    out
}

/// The calls run from `label` to the function's end, following
/// fall-through into later labels and unconditional `goto`s.
fn chain_calls<'a>(body: &'a Block, label: &str) -> Vec<&'a CallSite> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut next = Some(label.to_string());
    while let Some(l) = next.take() {
        if !seen.insert(l.clone()) {
            break;
        }
        let Some(path) = find_label(&body.stmts, &l) else {
            break;
        };
        next = run_from(&path, &mut out);
    }
    out
}

/// The blocks enclosing a label, outermost first, with the index of the
/// statement to continue at in each.
fn find_label<'a>(stmts: &'a [Stmt], label: &str) -> Option<Vec<(&'a [Stmt], usize)>> {
    for (i, s) in stmts.iter().enumerate() {
        if matches!(s, Stmt::Label { name, .. } if name == label) {
            return Some(vec![(stmts, i + 1)]);
        }
        let inner: Vec<&'a Block> = match s {
            Stmt::Block(b) => vec![b],
            Stmt::Preproc { branches, .. } => branches.iter().map(|b| &b.body).collect(),
            Stmt::If { then_branch, else_branch, .. } => {
                let mut v = vec![then_branch];
                v.extend(else_branch.iter());
                v
            }
            Stmt::Loop { body, .. } | Stmt::Switch { body, .. } | Stmt::ScopedGuard { body, .. } => vec![body],
            _ => Vec::new(),
        };
        for b in inner {
            if let Some(mut p) = find_label(&b.stmts, label) {
                p.insert(0, (stmts, i + 1));
                return Some(p);
            }
        }
    }
    None
}

/// Collect the calls from the innermost position outwards until a return;
/// the label of an unconditional `goto` met on the way, if any.
fn run_from<'a>(path: &[(&'a [Stmt], usize)], out: &mut Vec<&'a CallSite>) -> Option<String> {
    for &(stmts, start) in path.iter().rev() {
        for s in &stmts[start..] {
            match s {
                Stmt::Return { events, .. } => {
                    collect_calls_events(events, out);
                    return None;
                }
                Stmt::Goto { label, .. } => return Some(label.clone()),
                Stmt::Label { .. } => {}
                other => visit_calls(std::slice::from_ref(other), &mut |c| out.push(c)),
            }
        }
    }
    None
}

fn collect_calls_events<'a>(events: &'a [Event], out: &mut Vec<&'a CallSite>) {
    for e in events {
        if let Event::Call(c) = e {
            out.push(c);
        }
    }
}

/// An error exit with the completed steps it leaves undone.
struct Exit {
    line: u32,
    col: u32,
    span: crate::facts::Span,
    /// `goto out_x` or `return`.
    what: String,
    failing: String,
    missing: Vec<usize>,
}

struct Walker<'a, 'b> {
    api: &'b ApiModel,
    body: &'a Block,
    steps: &'b [Step<'a>],
    /// Local variable -> the call whose result it holds (and its step).
    assigned: BTreeMap<String, (String, Option<usize>)>,
    exits: Vec<Exit>,
    /// Locals holding the object a step returned.
    holders: BTreeMap<String, usize>,
    /// Steps completed by the statement just before the current one.
    prev_steps: BTreeSet<usize>,
    /// Callees returning a pointer (their `if (p)` tests success).
    ptr_fns: BTreeSet<String>,
    /// Callees returning an error code (their `if (!r)` tests success).
    int_fns: BTreeSet<String>,
}

type State = BTreeSet<usize>;

fn join(a: Option<State>, b: Option<State>) -> Option<State> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
        (a, None) => a,
        (None, b) => b,
    }
}

impl<'a, 'b> Walker<'a, 'b> {
    fn step_of(&self, c: &CallSite) -> Option<usize> {
        self.steps.iter().position(|s| std::ptr::eq(s.call, c))
    }

    fn undo(&self, st: &mut State, name: &str) {
        st.retain(|&i| !self.steps[i].undos.iter().any(|u| is_undo_call(name, u)));
    }

    fn events(&mut self, events: &'a [Event], st: &mut State) {
        let mut last: Option<(String, Option<usize>)> = None;
        for e in events {
            match e {
                Event::Call(c) => {
                    if let Some(n) = direct_name(c) {
                        self.undo(st, n);
                        last = Some((n.to_string(), self.step_of(c)));
                    }
                    // A step's object handed to another call is owned by it
                    // from then on (donated, registered, linked).
                    for arg in &c.args {
                        let Some(ident) = arg.ident.as_deref() else { continue };
                        if let Some((_, Some(i))) = self.assigned.get(ident) {
                            if self.holders.get(ident) == Some(i) {
                                st.remove(i);
                            }
                        }
                    }
                    if let Some(i) = self.step_of(c) {
                        st.insert(i);
                    }
                }
                Event::LocalAssign(l) => match &l.value_call {
                    Some(c) => {
                        let step = last.as_ref().filter(|(n, _)| n == c).and_then(|(_, i)| *i);
                        self.assigned.insert(l.name.clone(), (c.clone(), step));
                        if let Some(i) = step.filter(|_| self.ptr_fns.contains(c) || !self.int_fns.contains(c)) {
                            self.holders.insert(l.name.clone(), i);
                        }
                    }
                    None => {
                        self.assigned.remove(&l.name);
                    }
                },
                _ => {}
            }
        }
    }

    fn block(&mut self, b: &'a Block, st: Option<State>, err: Option<&str>) -> Option<State> {
        let mut st = st;
        for s in &b.stmts {
            let before = st.clone();
            st = self.stmt(s, st, err);
            // Steps of a plain statement may be what the next `if` tests.
            self.prev_steps = match (s, &before, &st) {
                (Stmt::Simple { .. }, Some(b), Some(a)) => a.difference(b).copied().collect(),
                _ => BTreeSet::new(),
            };
        }
        st
    }

    fn exit(&mut self, st: &State, span: crate::facts::Span, label: Option<&str>, failing: &str, undone: &[&CallSite]) {
        let missing: Vec<usize> = st
            .iter()
            .copied()
            .filter(|&i| {
                let s = &self.steps[i];
                !undone.iter().filter_map(|c| direct_name(c)).any(|n| s.undos.iter().any(|u| is_undo_call(n, u)))
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        self.exits.push(Exit {
            line: span.line,
            col: span.col,
            span,
            what: match label {
                Some(l) => format!("goto {l}"),
                None => "return".to_string(),
            },
            failing: failing.to_string(),
            missing,
        });
    }

    fn stmt(&mut self, s: &'a Stmt, st: Option<State>, err: Option<&str>) -> Option<State> {
        if let Stmt::Label { .. } | Stmt::Case { .. } = s {
            return st;
        }
        let mut st = st?;
        match s {
            Stmt::Simple { events, .. } => {
                self.events(events, &mut st);
                Some(st)
            }
            Stmt::Block(b) => self.block(b, Some(st), err),
            Stmt::If { cond, cond_text, then_branch, else_branch, .. } => {
                self.events(cond, &mut st);
                // The calls whose failure this condition tests: calls whose
                // result a tested local holds, then calls in the condition.
                let mut failing: Vec<String> = Vec::new();
                let mut cond_steps: BTreeSet<usize> = std::mem::take(&mut self.prev_steps);
                let mut pointer = false;
                let mut int_code = false;
                for w in tested_words(cond_text) {
                    if let Some((c, i)) = self.assigned.get(w) {
                        failing.push(c.clone());
                        cond_steps.extend(i.iter().copied());
                        pointer |= self.ptr_fns.contains(c);
                        int_code |= self.int_fns.contains(c)
                            || matches!(w, "r" | "ret" | "rc" | "err" | "error" | "res" | "retval" | "result");
                    }
                }
                for e in cond {
                    if let Event::Call(c) = e {
                        if let Some(n) = direct_name(c).filter(|n| self.api.lock_op(n).is_none()) {
                            failing.push(n.to_string());
                        }
                        cond_steps.extend(self.step_of(c));
                    }
                }
                // `if (p)` on a returned pointer is the success branch
                // (`if (irq) return irq;`); `if (r)`, `if (!p)`,
                // `if (IS_ERR(p))`, `if (r < 0)` test failure.
                let t = cond_text.trim();
                let negated = t.starts_with('!') && !t.contains("IS_ERR");
                let success_then =
                    (pointer && !negated && !t.contains("IS_ERR") && !t.contains('<') && !t.contains("=="))
                        || (int_code && !pointer && negated && !t.contains("&&") && !t.contains("||"));
                let (then_in, else_in, then_err) = if success_then {
                    let mut else_in = st.clone();
                    else_in.retain(|i| !cond_steps.contains(i));
                    (st.clone(), else_in, err)
                } else {
                    let mut then_in = st.clone();
                    then_in.retain(|i| !cond_steps.contains(i));
                    (then_in, st.clone(), failing.first().map(String::as_str).or(err))
                };
                let t = self.block(then_branch, Some(then_in), then_err);
                let e = match else_branch {
                    Some(b) => self.block(b, Some(else_in), err),
                    None => Some(else_in),
                };
                join(t, e)
            }
            Stmt::Loop { head, body, .. } => {
                self.events(head, &mut st);
                let end = self.block(body, Some(st.clone()), err);
                join(Some(st), end)
            }
            Stmt::Switch { cond, body, .. } => {
                self.events(cond, &mut st);
                let end = self.block(body, Some(st.clone()), err);
                join(Some(st), end)
            }
            Stmt::ScopedGuard { body, .. } => self.block(body, Some(st), err),
            Stmt::Preproc { branches, .. } => {
                let mut out: Option<State> = None;
                for b in branches {
                    let r = self.block(&b.body, Some(st.clone()), err);
                    out = match out {
                        None => r,
                        Some(o) => join(Some(o), r),
                    };
                }
                if branches.is_empty() {
                    Some(st)
                } else {
                    out
                }
            }
            Stmt::Return { span, events } => {
                self.events(events, &mut st);
                if let Some(f) = err {
                    self.exit(&st, *span, None, f, &[]);
                }
                None
            }
            Stmt::Goto { span, label } => {
                if let Some(f) = err {
                    let chain = chain_calls(self.body, label);
                    // A label that goes on doing steps (`list_add()`) is a
                    // shortcut to the success path, not an unwind.
                    let does =
                        chain.iter().filter_map(|c| direct_name(c)).any(|n| !paired_undos(self.api, n).is_empty());
                    if !does {
                        self.exit(&st, *span, Some(label), f, &chain);
                    }
                }
                None
            }
            Stmt::Break { .. } | Stmt::Continue { .. } => None,
            Stmt::Label { .. } | Stmt::Case { .. } => Some(st),
        }
    }
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW011") else {
        return Vec::new();
    };
    let a = input.analysis;
    let mut out = Vec::new();
    let mut memo = UndoMemo::default();
    for &id in &a.program.functions {
        let func = a.program.func(id);
        let st = steps(a, &mut memo, id);
        if st.is_empty() {
            continue;
        }
        let mut w = Walker {
            api: a.api,
            body: &func.body,
            steps: &st,
            assigned: BTreeMap::new(),
            exits: Vec::new(),
            prev_steps: BTreeSet::new(),
            holders: BTreeMap::new(),
            ptr_fns: plain_calls(a.api, func)
                .into_iter()
                .filter_map(direct_name)
                .filter(|n| a.program.lookup(id.file, n).iter().any(|&f| a.program.func(f).return_type.contains('*')))
                .map(str::to_string)
                .collect(),
            int_fns: plain_calls(a.api, func)
                .into_iter()
                .filter_map(direct_name)
                .filter(|n| {
                    a.program.lookup(id.file, n).iter().any(|&f| {
                        let t = a.program.func(f).return_type.replace("static", "");
                        matches!(t.trim(), "int" | "long" | "inline int" | "inline long")
                    })
                })
                .map(str::to_string)
                .collect(),
        };
        w.block(&func.body, Some(State::new()), None);
        // One missing unwind is one finding, however many exits skip it:
        // the first exit reports it, the later ones are evidence.
        let mut by_missing: BTreeMap<Vec<&str>, Vec<&Exit>> = BTreeMap::new();
        for exit in &w.exits {
            let names: Vec<&str> = exit.missing.iter().map(|&i| st[i].name.as_str()).collect();
            by_missing.entry(names).or_default().push(exit);
        }
        let mut groups: Vec<Vec<&Exit>> = by_missing.into_values().collect();
        groups.sort_by_key(|g| g[0].span.start);
        for group in groups {
            let exit = group[0];
            let missing: Vec<&Step<'_>> = exit.missing.iter().map(|&i| &st[i]).collect();
            let list =
                missing.iter().rev().map(|s| format!("`{}()` (`{}()`)", s.name, s.evidence.undo)).collect::<Vec<_>>();
            let list = match list.len() {
                1 => list[0].clone(),
                _ => format!("{} and {}", list[..list.len() - 1].join(", "), list[list.len() - 1]),
            };
            let message =
                format!("error path `{}` taken when `{}()` fails does not undo {}", exit.what, exit.failing, list);
            let mut related = Vec::new();
            for s in &missing {
                related.push(Related {
                    file: a.program.file(id).path.clone(),
                    line: s.call.span.line,
                    col: s.call.span.col,
                    message: format!("`{}()` done here, before the failing `{}()`", s.name, exit.failing),
                });
                let ev = &s.evidence;
                related.push(Related {
                    file: a.program.file(ev.function).path.clone(),
                    line: ev.line,
                    col: ev.col,
                    message: if ev.in_twin {
                        format!("`{}()` undoes it in the teardown twin {}()", ev.undo, a.program.func(ev.function).name)
                    } else {
                        format!("`{}()` undoes it on another path of {}()", ev.undo, func.name)
                    },
                });
            }
            for other in &group[1..] {
                related.push(Related {
                    file: a.program.file(id).path.clone(),
                    line: other.line,
                    col: other.col,
                    message: format!("error path `{}` taken when `{}()` fails skips it too", other.what, other.failing),
                });
            }
            let evidence = if a.reaches(id).is_empty() { Vec::new() } else { a.witness(id, 0, Some(exit.span)) };
            // What is left undone, not where the exit jumps nor what fails:
            // renaming a label or the failing call keeps the finding.
            let symbols: Vec<String> = missing.iter().map(|s| format!("skips {}", s.name)).collect();
            out.push(
                Finding::new(info, input, id, exit.line, exit.col, message, evidence, symbols).with_related(related),
            );
        }
    }
    out
}
