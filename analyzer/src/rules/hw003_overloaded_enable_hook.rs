//! # HW003 overloaded-enable-hook
//!
//! ## What it finds
//! An arch's per-CPU hardware-enable hook (the arch function the common
//! per-CPU enable primitive calls, derived from the hotplug startup
//! callbacks) whose body does the work of more than one concern. Each call
//! and loop of the hook is classified, transitively for calls into helpers
//! (a few levels deep):
//! - *enabling*: the dispatch to the vendor or arch enable (an ops-table or
//!   static call); when the hook has no such dispatch, its remaining direct
//!   work is the enabling;
//! - *host-state snapshot*: reaches a read of host hardware state stored in
//!   per-CPU data (API model `state_reads`, as in HW002);
//! - *VM-list fix-up*: walks a global list that other code modifies (the
//!   list of VMs, changed by VM creation and destruction).
//!
//! It fires when two or more concerns are present, listing each with its
//! sites. Calls that are none of these (reading the TSC, testing a flag) do
//! not count as a concern of their own.
//!
//! ## Why is this bad?
//! The enable hook runs wherever enabling runs (CPU hotplug, resume, the
//! IPI that enables all CPUs for the first VM), so everything piggybacking
//! on it inherits those contexts whether it wants them or not. From the
//! review thread: "x86 overloads "hardware enable" to do three different
//! things: 1. actually enable hardware 2. snapshot per-CPU MSR value for
//! user-return MSRs 3. handle unstable TSC _for existing VMs_ on
//! suspend+resume and/or CPU hotplug. #2 and #3 have nothing to do with
//! enabling hardware, kvm_arch_hardware_enable() just so happens to be
//! called in a superset of what is needed". Both passengers are where the
//! bugs are: the snapshot may capture a guest's registers (HW002), and the
//! fix-up walks `vm_list` without `kvm_lock` (HW001).
//!
//! ## Example
//! ```c
//! int foo_arch_cpu_up(void)
//! {
//!         foo_snapshot_host_msrs();               /* snapshot */
//!         r = vendor_ops.cpu_enable();            /* enabling */
//!         list_for_each_entry(g, &guest_list, link)       /* fix-up */
//!                 g->clock_dirty = true;
//!         return r;
//! }
//! ```
//!
//! ## Fix
//! Keep only the enabling in the hook. Take per-CPU snapshots on first use
//! (the seed's step 1), and do VM fix-ups from hooks that exist for them
//! (power-management / hotplug notifications, under the VM list's lock).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::queries::{list_walks, list_writes, percpu_snapshots, PercpuSnapshot};
use super::{find_rule, Finding, Related, RuleInput};
use crate::contexts::Analysis;
use crate::facts::{Block, Event, LoopKind, Span, Stmt};
use crate::graph::{FnId, Resolution};

/// How deep helpers are followed from a call of the hook.
const MAX_DEPTH: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Concern {
    Enabling,
    Snapshot,
    Fixup,
}

impl Concern {
    fn label(self) -> &'static str {
        match self {
            Concern::Enabling => "enabling",
            Concern::Snapshot => "host-state snapshot",
            Concern::Fixup => "VM-list fix-up",
        }
    }
}

/// One classified site of the hook.
struct Item {
    concern: Option<Concern>,
    span: Span,
    what: String,
}

struct Ctx<'a, 'b> {
    a: &'b Analysis<'a>,
    snaps: HashMap<FnId, Vec<PercpuSnapshot>>,
    /// Walks of written global lists: function -> (span, head).
    vm_walks: HashMap<FnId, Vec<(Span, String)>>,
    /// The functions adding to or deleting from each written global list.
    writers: BTreeMap<String, BTreeSet<String>>,
}

fn is_dispatch(r: &Resolution) -> bool {
    !matches!(r, Resolution::Direct)
}

impl Ctx<'_, '_> {
    /// What the helpers called from `start` reach: snapshots, VM-list walks,
    /// a dispatch (not followed further).
    fn reached(&self, start: FnId) -> (Option<String>, Option<String>, bool) {
        let p = &self.a.program;
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([(start, 0u32)]);
        let (mut snap, mut walk, mut dispatch) = (None, None, false);
        while let Some((f, depth)) = queue.pop_front() {
            if !seen.insert(f) {
                continue;
            }
            if snap.is_none() {
                if let Some(s) = self.snaps.get(&f).and_then(|v| v.first()) {
                    snap = Some(format!("`{}()` in `{}()` into per-CPU `{}`", s.call, p.func(f).name, s.percpu));
                }
            }
            if walk.is_none() {
                if let Some((_, head)) = self.vm_walks.get(&f).and_then(|v| v.first()) {
                    let by = self.writers.get(head).map(|w| w.iter().cloned().collect::<Vec<_>>().join(", "));
                    walk = Some(format!(
                        "walks `{head}` in `{}()`, a list {} modify",
                        p.func(f).name,
                        by.unwrap_or_default()
                    ));
                }
            }
            if depth >= MAX_DEPTH {
                continue;
            }
            for e in p.calls.get(&f).into_iter().flatten() {
                if is_dispatch(&e.resolution) {
                    dispatch = true;
                } else {
                    queue.push_back((e.callee, depth + 1));
                }
            }
        }
        (snap, walk, dispatch)
    }

    fn classify_events(&self, hook: FnId, events: &[Event], out: &mut Vec<Item>) {
        let p = &self.a.program;
        for ev in events {
            let Event::Call(site) = ev else { continue };
            let edges = p.edges_at(hook, site);
            let call = site.callee.display();
            if edges.iter().any(|e| is_dispatch(&e.resolution)) {
                let targets: Vec<String> = edges.iter().map(|e| format!("`{}()`", p.func(e.callee).name)).collect();
                out.push(Item {
                    concern: Some(Concern::Enabling),
                    span: site.span,
                    what: format!("dispatches to the vendor enable through `{call}` ({})", targets.join(", ")),
                });
                continue;
            }
            let (mut snap, mut walk, mut dispatch) = (None, None, false);
            for e in edges {
                let (s, w, d) = self.reached(e.callee);
                snap = snap.or(s);
                walk = walk.or(w);
                dispatch |= d;
            }
            let mut any = false;
            if let Some(s) = snap {
                out.push(Item {
                    concern: Some(Concern::Snapshot),
                    span: site.span,
                    what: format!("`{call}()` snapshots host state: {s}"),
                });
                any = true;
            }
            if let Some(w) = walk {
                out.push(Item { concern: Some(Concern::Fixup), span: site.span, what: format!("`{call}()` {w}") });
                any = true;
            }
            if !any {
                out.push(Item {
                    concern: if dispatch { Some(Concern::Enabling) } else { None },
                    span: site.span,
                    what: if dispatch {
                        format!("`{call}()` calls into the vendor code through an ops or static call")
                    } else {
                        format!("`{call}()`")
                    },
                });
            }
        }
    }

    fn classify_block(&self, hook: FnId, block: &Block, out: &mut Vec<Item>) {
        for s in &block.stmts {
            match s {
                Stmt::Simple { events, .. } | Stmt::Return { events, .. } => self.classify_events(hook, events, out),
                Stmt::Block(b) => self.classify_block(hook, b, out),
                Stmt::If { cond, then_branch, else_branch, .. } => {
                    self.classify_events(hook, cond, out);
                    self.classify_block(hook, then_branch, out);
                    if let Some(e) = else_branch {
                        self.classify_block(hook, e, out);
                    }
                }
                Stmt::Loop { span, kind, head, body } => {
                    let walk = matches!(kind, LoopKind::Iterator { .. })
                        .then(|| {
                            self.vm_walks
                                .get(&hook)
                                .into_iter()
                                .flatten()
                                .find(|(w, _)| w.start >= span.start && w.end <= span.end)
                        })
                        .flatten();
                    if let Some((_, head_name)) = walk {
                        let LoopKind::Iterator { macro_name, .. } = kind else { unreachable!() };
                        out.push(Item {
                            concern: Some(Concern::Fixup),
                            span: *span,
                            what: format!(
                                "walks `{head_name}` with `{macro_name}`, a list {} modify",
                                self.writers
                                    .get(head_name)
                                    .map(|w| w.iter().cloned().collect::<Vec<_>>().join(", "))
                                    .unwrap_or_default()
                            ),
                        });
                    } else {
                        self.classify_events(hook, head, out);
                        self.classify_block(hook, body, out);
                    }
                }
                Stmt::Switch { cond, body, .. } => {
                    self.classify_events(hook, cond, out);
                    self.classify_block(hook, body, out);
                }
                Stmt::ScopedGuard { body, .. } => self.classify_block(hook, body, out),
                Stmt::Preproc { branches, .. } => {
                    for b in branches {
                        self.classify_block(hook, &b.body, out);
                    }
                }
                Stmt::Case { .. }
                | Stmt::Goto { .. }
                | Stmt::Label { .. }
                | Stmt::Break { .. }
                | Stmt::Continue { .. } => {}
            }
        }
    }
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW003") else { return Vec::new() };
    let a = input.analysis;
    if input.enable_path.enable_hooks.is_empty() {
        return Vec::new();
    }
    let mut snaps: HashMap<FnId, Vec<PercpuSnapshot>> = HashMap::new();
    for s in percpu_snapshots(a) {
        snaps.entry(s.function).or_default().push(s);
    }
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for w in list_writes(a) {
        if let Some(h) = w.head {
            written.entry(h).or_default().insert(format!("`{}()`", a.program.func(w.function).name));
        }
    }
    let mut vm_walks: HashMap<FnId, Vec<(Span, String)>> = HashMap::new();
    for w in list_walks(a) {
        if written.contains_key(&w.head) {
            vm_walks.entry(w.function).or_default().push((w.span, w.head));
        }
    }
    let ctx = Ctx { a, snaps, vm_walks, writers: written };
    let mut out = Vec::new();
    for &hook in &input.enable_path.enable_hooks {
        let func = a.program.func(hook);
        let mut items = Vec::new();
        ctx.classify_block(hook, &func.body, &mut items);
        // Plain work counts as the enabling only when nothing dispatches.
        if !items.iter().any(|i| i.concern == Some(Concern::Enabling)) {
            for i in items.iter_mut().filter(|i| i.concern.is_none()) {
                i.concern = Some(Concern::Enabling);
            }
        }
        let mut by_concern: BTreeMap<Concern, Vec<&Item>> = BTreeMap::new();
        for i in &items {
            if let Some(c) = i.concern {
                by_concern.entry(c).or_default().push(i);
            }
        }
        if by_concern.len() < 2 {
            continue;
        }
        let file = a.program.file(hook).path.clone();
        let summary: Vec<String> = by_concern.keys().map(|c| c.label().to_string()).collect();
        let contexts: BTreeSet<&str> = a.reaches(hook).iter().map(|r| r.key.context.as_str()).collect();
        let runs = if contexts.is_empty() {
            String::new()
        } else {
            format!(" ({})", contexts.into_iter().collect::<Vec<_>>().join(", "))
        };
        let message = format!(
            "`{}()` is the per-CPU enable hook but does the work of {} concerns ({}): everything besides enabling runs \
             wherever enabling runs{runs} and belongs elsewhere",
            func.name,
            by_concern.len(),
            summary.join(", "),
        );
        let related = by_concern
            .iter()
            .flat_map(|(c, is)| {
                is.iter().map(|i| Related {
                    file: file.clone(),
                    line: i.span.line,
                    col: i.span.col,
                    message: format!("{}: {}", c.label(), i.what),
                })
            })
            .collect();
        let evidence = if a.reaches(hook).is_empty() { Vec::new() } else { a.witness(hook, 0, None) };
        // The hook alone: removing one concern (as the series' first patch
        // does) keeps the finding's identity while others remain.
        // The arch's enable hook (one per arch), whatever it is called.
        let symbols = vec!["enable-hook".to_string()];
        out.push(
            Finding::new(info, input, hook, func.name_span.line, func.name_span.col, message, evidence, symbols)
                .with_related(related),
        );
    }
    out
}
