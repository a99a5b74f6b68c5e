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
//! not a completed step, and neither is a step done only conditionally,
//! except under a flag (`if (!in_hyp_mode) { r = init_x(); ... }`): the
//! flag holds at the exit too, so the step is owed there.
//! The undos run by an exit are the calls on its branch before the jump
//! plus every call from the label to the function's end, following
//! fall-through into later labels; a call undoes a step also when the
//! function it calls does (`teardown_subsystems()` calling
//! `kvm_unregister_perf_callbacks()`), a few calls deep.
//!
//! A call of a function of the tree also completes the steps that
//! function leaves done when it succeeds (`init_subsystems()` returning
//! with `kvm_register_perf_callbacks()` registered): they count as steps
//! of the call when the caller or its twin undoes them.
//!
//! The build configuration is read, not assumed: a step whose function,
//! with the `#if`/`#ifdef` blocks the caller's build leaves out removed,
//! does nothing (no call, no write of shared data) needs no undo. The
//! caller's build is what every way its file is built requires (the
//! arch's KVM Makefile: `kvm-objs-$(CONFIG_X) := ...`), with what those
//! options select (the KVM Kconfig).
//!
//! An exit taken when a call fails that cannot fail (every `return` of the
//! function, in the caller's build, returns `0`) is reported as a note:
//! the unwind is missing but the path cannot be taken until that function
//! learns to fail.
//!
//! The fix names the undo to run: the evidenced one, unless that undo also
//! undoes the failing call itself (`foo_exit()` calling `kvm_exit()` after
//! a failed `kvm_init()`), in which case it names what the step left done
//! and its undo from the API model (`__get_free_pages()` ->
//! `free_pages()`), or says that no existing undo is safe.
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

use rustc_hash::FxHashMap as HashMap;
use std::rc::Rc;

use super::{find_rule, Finding, Related, RuleInput, Severity};
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
    /// The function of the tree whose call completed it, when the step is
    /// done inside that function (`init_subsystems()` registering).
    via: Option<String>,
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
    !memo.get(api, f).is_empty()
}

/// [`undo_names`] of each name asked, built once per run of the rule: the
/// same callees (`kvm_get_*`, `*_init`) come back in function after
/// function.
#[derive(Default)]
struct UndoMemo<'a> {
    names: HashMap<&'a str, std::rc::Rc<[String]>>,
    /// The calls of the API model's pair table, gathered on first use.
    paired: Option<rustc_hash::FxHashSet<String>>,
}

impl<'a> UndoMemo<'a> {
    fn get(&mut self, api: &ApiModel, name: &'a str) -> std::rc::Rc<[String]> {
        if let Some(u) = self.names.get(name) {
            return u.clone();
        }
        let paired = self
            .paired
            .get_or_insert_with(|| api.table.undo_pairs.iter().flat_map(|p| p.do_.iter().cloned()).collect());
        let u: std::rc::Rc<[String]> = if paired.contains(name) || has_undo_suffix(api, name) {
            undo_names(api, name).into()
        } else {
            std::rc::Rc::from(Vec::new())
        };
        self.names.insert(name, u.clone());
        u
    }
}

/// Whether a `do` suffix of the table stands in `f` as a whole word:
/// with `f` in the pair table, the cheap test [`UndoMemo`] makes before
/// building [`undo_names`] (false only when they are empty).
fn has_undo_suffix(api: &ApiModel, f: &str) -> bool {
    let wrapped = format!("_{f}_");
    api.table.undo_suffixes.iter().any(|s| do_positions(&wrapped, &s.do_).next().is_some())
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

/// What a function leaves done when it succeeds: (step, its undos).
type Summary = Rc<[(String, Vec<String>)]>;

/// What each call of the functions of a file runs, by callee name
/// ([`Ctx::performs`]).
type Performed = HashMap<String, Rc<BTreeSet<String>>>;

/// What the rule learns about the tree once per run: undo names, what
/// each call runs, what each function leaves done, each file's build.
struct Ctx<'a, 'b> {
    a: &'b Analysis<'a>,
    kconfig: &'b crate::kconfig::Kconfig,
    memo: UndoMemo<'a>,
    /// The symbols on whenever a file is built, by file.
    on: HashMap<u32, Rc<BTreeSet<String>>>,
    /// The names a call runs: itself and, a few calls deep, what the
    /// functions of the tree it resolves to call. By (calling file, name).
    performs: HashMap<u32, Performed>,
    /// The functions whose calls' [`Ctx::performs`] are all known.
    performed: rustc_hash::FxHashSet<FnId>,
    /// The names a function calls directly, in the order of its body
    /// (what [`Ctx::performs`] follows), by function.
    callees: HashMap<FnId, Rc<[&'a str]>>,
    /// [`plain_calls`], by function: steps and twins ask it of every
    /// function of a file.
    plain: HashMap<FnId, Rc<[&'a CallSite]>>,
    /// What a function leaves done when it succeeds, in a caller's build:
    /// (step, its undos). By (function, calling file).
    summaries: HashMap<(FnId, u32), Summary>,
}

/// How deep [`Ctx::performs`] follows calls.
const PERFORMS_DEPTH: usize = 3;

impl<'a, 'b> Ctx<'a, 'b> {
    fn on(&mut self, file: u32) -> Rc<BTreeSet<String>> {
        let (a, kconfig) = (self.a, self.kconfig);
        self.on
            .entry(file)
            .or_insert_with(|| {
                let f = &a.program.files[file as usize];
                let arch = f.arch.as_deref().or(a.program.arch.as_deref());
                Rc::new(arch.map(|arch| kconfig.always_on_for(arch, &f.path)).unwrap_or_default())
            })
            .clone()
    }

    fn performs(&mut self, file: u32, name: &str) -> Rc<BTreeSet<String>> {
        if let Some(p) = self.performs.get(&file).and_then(|m| m.get(name)) {
            return p.clone();
        }
        let program = &self.a.program;
        // Names seen so far, borrowed (the set handed out owns them, sorted).
        let mut names: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
        names.insert(name);
        let mut frontier: Vec<(u32, &str)> = vec![(file, name)];
        let mut seen: rustc_hash::FxHashSet<FnId> = Default::default();
        for _ in 0..PERFORMS_DEPTH {
            let mut next = Vec::new();
            for (f, n) in frontier {
                for &id in program.lookup(f, n) {
                    if !seen.insert(id) {
                        continue;
                    }
                    for &callee in self.callees_of(id).iter() {
                        if names.insert(callee) {
                            next.push((id.file, callee));
                        }
                    }
                }
            }
            frontier = next;
        }
        let out: BTreeSet<String> = names.into_iter().map(str::to_string).collect();
        let out = Rc::new(out);
        self.performs.entry(file).or_default().insert(name.to_string(), out.clone());
        out
    }

    /// [`Ctx::callees`] of `id`.
    fn callees_of(&mut self, id: FnId) -> Rc<[&'a str]> {
        if let Some(c) = self.callees.get(&id) {
            return c.clone();
        }
        let mut names: Vec<&'a str> = Vec::new();
        visit_calls(&self.a.program.func(id).body.stmts, &mut |c| names.extend(direct_name(c)));
        let names: Rc<[&'a str]> = names.into();
        self.callees.insert(id, names.clone());
        names
    }

    /// [`plain_calls`] of `id`, computed once.
    fn plain_calls(&mut self, id: FnId) -> Rc<[&'a CallSite]> {
        if let Some(c) = self.plain.get(&id) {
            return c.clone();
        }
        let calls: Rc<[&'a CallSite]> = plain_calls(self.a.api, self.a.program.func(id)).into();
        self.plain.insert(id, calls.clone());
        calls
    }

    /// Whether every function of the tree `name` resolves to (at least
    /// one) does nothing in the build `on`: no call, no write of shared
    /// data. Such a step leaves nothing to undo.
    fn inert(&self, file: u32, name: &str, on: &BTreeSet<String>) -> bool {
        let defs = self.a.program.lookup(file, name);
        !defs.is_empty()
            && defs.iter().all(|&d| {
                let mut busy = false;
                visit_live(&self.a.program.func(d).body.stmts, on, &mut |e| {
                    busy |= matches!(e, Event::Call(_))
                        || matches!(e, Event::Access(x) if x.kind == crate::facts::AccessKind::Write);
                });
                !busy
            })
    }

    /// Whether every function of the tree `name` resolves to (at least
    /// one) returns the literal `0` on every `return` of the build `on`.
    fn never_fails(&self, file: u32, name: &str, on: &BTreeSet<String>) -> bool {
        let defs = self.a.program.lookup(file, name);
        !defs.is_empty()
            && defs.iter().all(|&d| {
                let mut values = Vec::new();
                returns_live(&self.a.program.func(d).body.stmts, on, &mut values);
                !values.is_empty() && values.iter().all(|v| *v == Some("0"))
            })
    }

    /// What `g` leaves done when it returns without failing, in the build
    /// of a caller in `file`: the calls with an undo completed on every
    /// such return and not undone before it.
    fn summary(&mut self, g: FnId, file: u32) -> Summary {
        if let Some(s) = self.summaries.get(&(g, file)) {
            return s.clone();
        }
        let on = self.on(file);
        let api = self.a.api;
        let func = self.a.program.func(g);
        let mut live: Vec<&'a CallSite> = Vec::new();
        visit_live(&func.body.stmts, &on, &mut |e| {
            if let Event::Call(c) = e {
                if direct_name(c).is_some() && call_lock_op(api, c).is_none() {
                    live.push(c);
                }
            }
        });
        let mut candidates: Vec<Step<'a>> = Vec::new();
        for c in live {
            let name = direct_name(c).unwrap_or_default();
            let undos = self.memo.get(api, name);
            if undos.is_empty() {
                continue;
            }
            let evidence = Evidence { undo: undos[0].clone(), function: g, line: 0, col: 0, in_twin: false };
            candidates.push(Step { call: c, name: name.to_string(), via: None, undos: undos.to_vec(), evidence });
        }
        let out: Summary = if candidates.is_empty() {
            Rc::from(Vec::new())
        } else {
            self.perform_calls_of(g);
            let none = BTreeSet::new();
            let empty = Performed::default();
            let performed = self.performs.get(&g.file).unwrap_or(&empty);
            let mut w = Walker::new(self.a, g, &candidates, &on, performed, &none);
            let end = w.block(&func.body, Some(State::new()), None);
            let mut done: Option<State> = end;
            for st in std::mem::take(&mut w.success) {
                done = join(done, Some(st));
            }
            done.unwrap_or_default()
                .into_iter()
                .map(|i| (candidates[i].name.clone(), candidates[i].undos.clone()))
                .collect::<Vec<_>>()
                .into()
        };
        self.summaries.insert((g, file), out.clone());
        out
    }

    /// Compute [`Ctx::performs`] of every call of `id`: the Walker of
    /// `id` then reads them from `performs` of its file.
    fn perform_calls_of(&mut self, id: FnId) {
        if !self.performed.insert(id) {
            return;
        }
        for &n in self.callees_of(id).iter() {
            self.performs(id.file, n);
        }
    }
}

/// Visit the events of `stmts` that the build `on` compiles: the
/// branches of an `#if` it leaves out are skipped.
fn visit_live<'s>(stmts: &'s [Stmt], on: &BTreeSet<String>, f: &mut dyn FnMut(&'s Event)) {
    for s in stmts {
        match s {
            Stmt::Simple { events, .. } | Stmt::Return { events, .. } => events.iter().for_each(&mut *f),
            Stmt::Block(b) => visit_live(&b.stmts, on, f),
            Stmt::If { cond, then_branch, else_branch, .. } => {
                cond.iter().for_each(&mut *f);
                visit_live(&then_branch.stmts, on, f);
                if let Some(e) = else_branch {
                    visit_live(&e.stmts, on, f);
                }
            }
            Stmt::Loop { head: events, body, .. } | Stmt::Switch { cond: events, body, .. } => {
                events.iter().for_each(&mut *f);
                visit_live(&body.stmts, on, f);
            }
            Stmt::ScopedGuard { body, .. } => visit_live(&body.stmts, on, f),
            Stmt::Preproc { branches, .. } => {
                let live = crate::kconfig::live_branches(branches.iter().map(|b| b.condition.as_str()), on);
                for (b, l) in branches.iter().zip(live) {
                    if l {
                        visit_live(&b.body.stmts, on, f);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The literal values (`None` when not a literal) of the `return`s of
/// `stmts` that the build `on` compiles.
fn returns_live<'s>(stmts: &'s [Stmt], on: &BTreeSet<String>, out: &mut Vec<Option<&'s str>>) {
    for s in stmts {
        match s {
            Stmt::Return { value, .. } => out.push(value.as_deref()),
            Stmt::Block(b)
            | Stmt::Loop { body: b, .. }
            | Stmt::Switch { body: b, .. }
            | Stmt::ScopedGuard { body: b, .. } => returns_live(&b.stmts, on, out),
            Stmt::If { then_branch, else_branch, .. } => {
                returns_live(&then_branch.stmts, on, out);
                if let Some(e) = else_branch {
                    returns_live(&e.stmts, on, out);
                }
            }
            Stmt::Preproc { branches, .. } => {
                let live = crate::kconfig::live_branches(branches.iter().map(|b| b.condition.as_str()), on);
                for (b, l) in branches.iter().zip(live) {
                    if l {
                        returns_live(&b.body.stmts, on, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The teardown twins of `id`: functions of the same file whose name pairs
/// with it through the undo table, or that delete from a list what `id` adds.
fn twins<'a>(cx: &mut Ctx<'a, '_>, id: FnId) -> Vec<FnId> {
    let a = cx.a;
    let api = a.api;
    let func = a.program.func(id);
    let names = cx.memo.get(api, &func.name);
    let added: BTreeSet<String> = cx
        .plain_calls(id)
        .iter()
        .copied()
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
            && cx.plain_calls(other).iter().any(|c| {
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
fn steps<'a>(cx: &mut Ctx<'a, '_>, id: FnId) -> Vec<Step<'a>> {
    let a = cx.a;
    let api = a.api;
    let func = a.program.func(id);
    let calls = cx.plain_calls(id);
    let on = cx.on(id.file);
    // What the calls of functions of the tree leave done.
    let mut inner: Vec<(usize, String, Summary)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let name = direct_name(c).unwrap_or_default();
        if let [g] = a.program.lookup(id.file, name)[..] {
            let sum = cx.summary(g, id.file);
            if !sum.is_empty() {
                inner.push((i, name.to_string(), sum));
            }
        }
    }
    // Most functions call nothing that has an undo: skip the twin search.
    if inner.is_empty() && !calls.iter().any(|c| has_undo(api, &mut cx.memo, direct_name(c).unwrap_or_default())) {
        return Vec::new();
    }
    let twin_ids = twins(cx, id);
    let mut fallible: Vec<&'a CallSite> = Vec::new();
    fallible_calls(&func.body.stmts, &mut fallible);
    let is_fallible = |c: &CallSite| fallible.iter().any(|f| std::ptr::eq(*f, c));
    // Undos from the table, evidenced in the function after the step or in a twin.
    let mut out: Vec<Step<'a>> = Vec::new();
    let mut anchored: BTreeMap<usize, (FnId, usize)> = BTreeMap::new();
    let mut matched: BTreeSet<usize> = BTreeSet::new();
    let mut matched_twin: BTreeSet<(FnId, usize)> = BTreeSet::new();
    let twin_calls: Vec<(FnId, Vec<&'a CallSite>)> =
        twin_ids.iter().map(|&t| (t, cx.plain_calls(t).to_vec())).collect();
    // Whether a call is one of the undos. Evidence is a direct call: a
    // call that merely reaches an undo deep down (a reset that frees and
    // re-creates) says nothing about what the step owes.
    let runs = |n: Option<&str>, undos: &[String]| n.is_some_and(|n| undos.iter().any(|u| is_undo_call(n, u)));
    // The evidence of a step's undo: a later call of the function, else
    // a call of a twin (and where in the twin).
    let find_evidence = |c: &CallSite, undos: &[String]| -> (Option<&'a CallSite>, Option<(FnId, usize)>) {
        let own = calls.iter().copied().find(|d| d.span.start > c.span.start && runs(direct_name(d), undos));
        let mut twin_hit = None;
        for (t, tc) in &twin_calls {
            if let Some(j) = tc.iter().position(|d| runs(direct_name(d), undos)) {
                twin_hit = Some((*t, j));
                break;
            }
        }
        (own, twin_hit)
    };
    let evidence_at = |d: &CallSite, function: FnId, in_twin: bool| Evidence {
        undo: direct_name(d).unwrap_or_default().to_string(),
        function,
        line: d.span.line,
        col: d.span.col,
        in_twin,
    };
    let twin_call =
        |t: FnId, j: usize| twin_calls.iter().find(|(x, _)| *x == t).map(|(_, tc)| tc[j]).expect("twin call");
    for (i, c) in calls.iter().enumerate() {
        let name = direct_name(c).unwrap_or_default();
        let undos = cx.memo.get(api, name);
        if undos.is_empty() || cx.inert(id.file, name, &on) {
            continue;
        }
        let strong = !paired_undos(api, name).is_empty();
        let (own, twin_hit) = find_evidence(c, &undos);
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
            (Some(d), _) => evidence_at(d, id, false),
            (None, Some((t, j))) => evidence_at(twin_call(t, j), t, true),
            (None, None) => continue,
        };
        out.push(Step { call: c, name: name.to_string(), via: None, undos: undos.to_vec(), evidence });
    }
    // The steps done inside the functions called, when this function or
    // its twin undoes them.
    for (i, via, sum) in &inner {
        let c = calls[*i];
        // A call that is a step itself is undone as a whole.
        if out.iter().any(|s| std::ptr::eq(s.call, c)) {
            continue;
        }
        for (name, undos) in sum.iter() {
            if out.iter().any(|s| std::ptr::eq(s.call, c) && s.name == *name) {
                continue;
            }
            let evidence = match find_evidence(c, undos) {
                (Some(d), _) => evidence_at(d, id, false),
                (None, Some((t, j))) => evidence_at(twin_call(t, j), t, true),
                (None, None) => continue,
            };
            out.push(Step { call: c, name: name.clone(), via: Some(via.clone()), undos: undos.clone(), evidence });
        }
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
                via: None,
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
    /// The failing call returns `0` on every path: the exit cannot be
    /// taken in this build.
    cannot_fail: bool,
}

struct Walker<'a, 'b> {
    api: &'b ApiModel,
    body: &'a Block,
    steps: &'b [Step<'a>],
    /// The symbols the build of the function's file has on: `#if`
    /// branches it leaves out are not walked.
    on: &'b BTreeSet<String>,
    /// What each call of the function runs ([`Ctx::performs`]).
    performed: &'b Performed,
    /// Calls that cannot fail in this build ([`Ctx::never_fails`]).
    never_fail: &'b BTreeSet<String>,
    /// The states at returns that are not error exits.
    success: Vec<State>,
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
    fn new(
        a: &'b Analysis<'a>,
        id: FnId,
        steps: &'b [Step<'a>],
        on: &'b BTreeSet<String>,
        performed: &'b Performed,
        never_fail: &'b BTreeSet<String>,
    ) -> Walker<'a, 'b> {
        let func: &'a Function = a.program.func(id);
        let callees: Vec<&'a str> = plain_calls(a.api, func).into_iter().filter_map(direct_name).collect();
        let defs_returning = |pred: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
            callees
                .iter()
                .filter(|n| a.program.lookup(id.file, n).iter().any(|&f| pred(&a.program.func(f).return_type)))
                .map(|n| n.to_string())
                .collect()
        };
        Walker {
            api: a.api,
            body: &func.body,
            steps,
            on,
            performed,
            never_fail,
            success: Vec::new(),
            assigned: BTreeMap::new(),
            exits: Vec::new(),
            prev_steps: BTreeSet::new(),
            holders: BTreeMap::new(),
            ptr_fns: defs_returning(&|t| t.contains('*')),
            int_fns: defs_returning(&|t| {
                let t = t.replace("static", "");
                matches!(t.trim(), "int" | "long" | "inline int" | "inline long")
            }),
        }
    }

    fn steps_of(&self, c: &CallSite) -> Vec<usize> {
        (0..self.steps.len()).filter(|&i| std::ptr::eq(self.steps[i].call, c)).collect()
    }

    fn step_of(&self, c: &CallSite) -> Option<usize> {
        self.steps.iter().position(|s| std::ptr::eq(s.call, c))
    }

    /// Whether a call named `name` undoes step `i`: it is one of its
    /// undos, or a function it calls runs one.
    fn undoes(&self, name: &str, i: usize) -> bool {
        let undos = &self.steps[i].undos;
        undos.iter().any(|u| is_undo_call(name, u))
            || self.performed.get(name).is_some_and(|p| p.iter().any(|m| undos.iter().any(|u| is_undo_call(m, u))))
    }

    fn undo(&self, st: &mut State, name: &str) {
        st.retain(|&i| !self.undoes(name, i));
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
                    st.extend(self.steps_of(c));
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
            .filter(|&i| !undone.iter().filter_map(|c| direct_name(c)).any(|n| self.undoes(n, i)))
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
            cannot_fail: self.never_fail.contains(failing),
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
                        cond_steps.extend(self.steps_of(c));
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
                // `if (!in_hyp_mode)`: a flag, not a result. What its branch
                // does is owed wherever the flag still holds: a step whose
                // undo in this function is under the same flag
                // (`if (!in_hyp_mode) teardown_hyp_mode();`) outlives the join.
                let flag = cond.iter().all(|e| !matches!(e, Event::Call(_)))
                    && tested_words(t).len() == 1
                    && t.trim_start_matches('!').trim() == tested_words(t)[0]
                    && !matches!(
                        tested_words(t)[0],
                        "r" | "ret" | "rc" | "err" | "error" | "res" | "retval" | "result"
                    )
                    && !pointer
                    && !int_code;
                if flag {
                    let before = st.clone();
                    let t = self.block(then_branch, Some(st.clone()), err);
                    let e = match else_branch {
                        Some(b) => self.block(b, Some(st), err),
                        None => Some(st),
                    };
                    let cond_text = cond_text.trim();
                    let guarded: State = match (&t, else_branch) {
                        (Some(t), None) => t
                            .difference(&before)
                            .copied()
                            .filter(|&i| {
                                let ev = &self.steps[i].evidence;
                                !ev.in_twin && under_flag(&self.body.stmts, cond_text, ev.line, ev.col)
                            })
                            .collect(),
                        _ => State::new(),
                    };
                    return join(t, e).map(|mut j| {
                        j.extend(guarded);
                        j
                    });
                }
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
                let live = crate::kconfig::live_branches(branches.iter().map(|b| b.condition.as_str()), self.on);
                let mut any_live = false;
                for (b, _) in branches.iter().zip(live).filter(|(_, l)| *l) {
                    any_live = true;
                    let r = self.block(&b.body, Some(st.clone()), err);
                    out = match out {
                        None => r,
                        Some(o) => join(Some(o), r),
                    };
                }
                // No branch compiled in this build: the code goes on past it.
                if any_live {
                    out
                } else {
                    Some(st)
                }
            }
            Stmt::Return { span, events, .. } => {
                self.events(events, &mut st);
                match err {
                    Some(f) => self.exit(&st, *span, None, f, &[]),
                    None => self.success.push(st),
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
    let mut cx = Ctx {
        a,
        kconfig: input.kconfig,
        memo: UndoMemo::default(),
        on: HashMap::default(),
        performs: HashMap::default(),
        performed: Default::default(),
        callees: HashMap::default(),
        plain: HashMap::default(),
        summaries: HashMap::default(),
    };
    for &id in &a.program.functions {
        let func = a.program.func(id);
        let st = steps(&mut cx, id);
        if st.is_empty() {
            continue;
        }
        let on = cx.on(id.file);
        cx.perform_calls_of(id);
        let never_fail: BTreeSet<String> = plain_calls(a.api, func)
            .into_iter()
            .filter_map(direct_name)
            .filter(|n| cx.never_fails(id.file, n, &on))
            .map(str::to_string)
            .collect();
        let exits = {
            let empty = Performed::default();
            let performed = cx.performs.get(&id.file).unwrap_or(&empty);
            let mut w = Walker::new(a, id, &st, &on, performed, &never_fail);
            w.block(&func.body, Some(State::new()), None);
            w.exits
        };
        // One missing unwind is one finding, however many exits skip it:
        // the first exit reports it, the later ones are evidence.
        let mut by_missing: BTreeMap<Vec<&str>, Vec<&Exit>> = BTreeMap::new();
        for exit in &exits {
            let names: Vec<&str> = exit.missing.iter().map(|&i| st[i].name.as_str()).collect();
            by_missing.entry(names).or_default().push(exit);
        }
        let mut groups: Vec<Vec<&Exit>> = by_missing.into_values().collect();
        groups.sort_by_key(|g| g[0].span.start);
        for group in groups {
            let exit = group[0];
            let missing: Vec<&Step<'_>> = exit.missing.iter().map(|&i| &st[i]).collect();
            let list = missing.iter().rev().map(|s| describe_undo(&mut cx, id, s, &exit.failing)).collect::<Vec<_>>();
            let list = match list.len() {
                1 => list[0].clone(),
                _ => format!("{} and {}", list[..list.len() - 1].join(", "), list[list.len() - 1]),
            };
            let mut message =
                format!("error path `{}` taken when `{}()` fails does not undo {}", exit.what, exit.failing, list);
            // Reported, since the unwind is missing, but as a note while
            // the failing call cannot fail.
            let cannot_fail = group.iter().all(|e| e.cannot_fail);
            if cannot_fail {
                message.push_str(&format!(
                    "; `{}()` returns 0 on every path in this build, so the path cannot be taken until it can fail",
                    exit.failing
                ));
            }
            let mut related = Vec::new();
            for s in &missing {
                related.push(Related {
                    file: a.program.file(id).path.clone(),
                    line: s.call.span.line,
                    col: s.call.span.col,
                    message: match &s.via {
                        Some(via) => {
                            format!("`{}()` done here in `{}()`, before the failing `{}()`", s.name, via, exit.failing)
                        }
                        None => format!("`{}()` done here, before the failing `{}()`", s.name, exit.failing),
                    },
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
            let finding =
                Finding::new(info, input, id, exit.line, exit.col, message, evidence, symbols).with_related(related);
            out.push(if cannot_fail { finding.with_severity(Severity::Note) } else { finding });
        }
    }
    out
}

/// A missing step and how to undo it, for the message: `foo()`
/// (`undo_foo()`). When the evidenced undo also undoes the failing call
/// (`kvmppc_booke_exit()` runs `kvm_exit()`, which a failed `kvm_init()`
/// must not see), it is not offered: what the step left done is, with
/// the API model's undo for each, or that no existing undo is safe.
fn describe_undo(cx: &mut Ctx<'_, '_>, id: FnId, s: &Step<'_>, failing: &str) -> String {
    let name = match &s.via {
        Some(via) => format!("`{}()` in `{}()`", s.name, via),
        None => format!("`{}()`", s.name),
    };
    let undo = &s.evidence.undo;
    let failing_undos = undo_names(cx.a.api, failing);
    let runs = cx.performs(s.evidence.function.file, undo);
    let clash = runs
        .iter()
        .find(|m| m.as_str() == failing || failing_undos.iter().any(|u| is_undo_call(m, u)) && m.as_str() != undo);
    let Some(clash) = clash.cloned() else {
        return format!("{name} (`{undo}()`)");
    };
    let why = format!("`{undo}()` also runs `{clash}()`, which undoes the failing `{failing}()`");
    let left: Vec<(String, Vec<String>)> = match (&s.via, cx.a.program.lookup(id.file, &s.name)) {
        (None, [g]) => cx.summary(*g, id.file).to_vec(),
        _ => Vec::new(),
    };
    if left.is_empty() {
        return format!("{name} (no existing undo is safe here: {why}; release what it set up by hand)");
    }
    let api = cx.a.api;
    let release: Vec<String> = left
        .iter()
        .map(|(step, undos)| {
            // The API model's own pairing first (`free_pages` for
            // `__get_free_pages`), in the order the model lists them.
            let paired = paired_undos(api, step);
            let first = paired.first().or(undos.first()).cloned().unwrap_or_default();
            format!("`{first}()` for its `{step}()`")
        })
        .collect();
    format!("{name} (by {}; not `{undo}()`: {why})", release.join(", "))
}

/// Whether the call at `line:col` is inside an `if` testing `cond_text`.
fn under_flag(stmts: &[Stmt], cond_text: &str, line: u32, col: u32) -> bool {
    stmts.iter().any(|s| match s {
        Stmt::If { cond_text: c, then_branch, else_branch, .. } => {
            let mut here = false;
            if c.trim() == cond_text {
                visit_calls(&then_branch.stmts, &mut |call| here |= call.span.line == line && call.span.col == col);
            }
            here || under_flag(&then_branch.stmts, cond_text, line, col)
                || else_branch.as_ref().is_some_and(|b| under_flag(&b.stmts, cond_text, line, col))
        }
        Stmt::Block(b)
        | Stmt::Loop { body: b, .. }
        | Stmt::Switch { body: b, .. }
        | Stmt::ScopedGuard { body: b, .. } => under_flag(&b.stmts, cond_text, line, col),
        Stmt::Preproc { branches, .. } => branches.iter().any(|b| under_flag(&b.body.stmts, cond_text, line, col)),
        _ => false,
    })
}
