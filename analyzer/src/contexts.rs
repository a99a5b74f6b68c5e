//! Execution contexts and lock sets across the call graph.
//!
//! Roots come from registrations and entry points read through the API
//! model: CPU hotplug callbacks (their section from `cpuhotplug.h`),
//! syscore and notifier callbacks, `module_init`, file_operations ioctls.
//! From each root a breadth-first propagation gives every reachable
//! function its [`Reach`] states: (root, context, locks held on entry,
//! locks serializing it from elsewhere), each with one shortest witness.
//!
//! Cross-CPU calls (`on_each_cpu(fn, arg, 1)`) continue the path in the
//! callback's context: the initiator's locks are *not* held on the remote
//! CPU, but the initiator holds them while it waits, so they still exclude
//! other holders: they become the callback's `serialized_by` set. A hotplug
//! callback is likewise serialized by the hotplug lock the control CPU holds.
//! Propagation is bounded (states per function) and terminates on cycles.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use serde::Serialize;

use crate::api::ApiModel;
use crate::facts::{CallSite, Callee, Span};
use crate::graph::{FnId, Program};
use crate::kernel_docs::{CpuhpEnum, CpuhpSection};
use crate::locks::{analyze_function, analyze_function_with, FunctionLocks, LockSet, LockSummary, OccurrenceKind};

/// At most this many distinct reach states are kept per function; the
/// first found are the shortest (breadth-first).
pub const MAX_STATES_PER_FUNCTION: usize = 24;

/// Witnesses longer than this (calls from the root) keep their last steps
/// and start with a step saying they were cut.
pub const MAX_WITNESS_STEPS: usize = 10_000;

/// Where a root's context comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Root {
    pub id: usize,
    /// Context kind (a key of the API model's `contexts`).
    pub context: String,
    pub function: FnId,
    pub function_name: String,
    /// How the root was found, for a reader: `cpuhp_setup_state_nocalls(CPUHP_AP_KVM_STARTING) startup callback`.
    pub origin: String,
    /// The callback's role in its registration: `startup`/`teardown` for CPU
    /// hotplug states, the field name (`resume`, `notifier_call`) for ops
    /// structs, `None` for entry macros.
    pub role: Option<String>,
    /// Where it was registered (file, span), when it was.
    pub registered_at: Option<(String, Span)>,
    /// Locks held elsewhere for the whole callback.
    pub serialized_by: LockSet,
}

/// How a function is reached from a root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ReachKey {
    pub root: usize,
    pub context: String,
    /// Locks definitely held on this CPU on entry.
    pub held_must: LockSet,
    /// Locks possibly held on this CPU on entry.
    pub held_may: LockSet,
    /// Locks held by an initiator or the hotplug machinery elsewhere.
    pub serialized_by: LockSet,
}

/// One reach state with its witness parent.
#[derive(Debug, Clone, Serialize)]
pub struct Reach {
    pub key: ReachKey,
    /// The caller state and the call site that led here (`None` at the root).
    #[serde(skip)]
    pub parent: Option<(FnId, usize, Span)>,
    /// Set when the edge into this function switched context (an IPI
    /// broadcast, a hotplug registration invoking callbacks now).
    pub via: Option<String>,
    pub depth: u32,
}

/// One step of a witness path, root first.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Step {
    pub function: String,
    pub file: String,
    /// The call site in this function leading to the next step (for the last
    /// step: the function's own definition).
    pub line: u32,
    pub col: u32,
    pub context: String,
    pub held: Vec<String>,
    pub may_held: Vec<String>,
    pub serialized_by: Vec<String>,
    /// How this function was entered when the context changed.
    pub via: Option<String>,
}

/// A registration passing a function to run in another context
/// (`on_each_cpu(hardware_enable_nolock, NULL, 1)`), as an edge of the
/// graph a reader sees.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackEdge {
    pub caller: FnId,
    pub callee: FnId,
    pub span: Span,
    /// The registering call (`on_each_cpu`, `cpuhp_setup_state_nocalls`).
    pub via: String,
    /// The callback's context, when known.
    pub context: Option<String>,
}

/// The analysis of one program (one arch).
pub struct Analysis<'a> {
    /// Every registration edge in the program, reachable or not.
    pub callback_edges: Vec<CallbackEdge>,
    pub program: Program<'a>,
    pub api: &'a ApiModel,
    pub locks: HashMap<FnId, FunctionLocks<'a>>,
    pub roots: Vec<Root>,
    pub reach: HashMap<FnId, Vec<Reach>>,
    /// Registrations whose section could not be determined (state unknown).
    pub warnings: Vec<String>,
}

/// Inputs shared by all arches.
pub struct KernelDocs<'a> {
    pub cpuhp: Option<&'a CpuhpEnum>,
}

impl<'a> Analysis<'a> {
    /// Analyze one linked program.
    pub fn run(program: Program<'a>, api: &'a ApiModel, docs: &KernelDocs<'_>) -> Analysis<'a> {
        let mut locks: HashMap<FnId, FunctionLocks<'a>> =
            program.functions.iter().map(|&id| (id, analyze_function(api, program.func(id)))).collect();
        // Callers of functions with a net lock effect (lock helpers, functions
        // releasing their caller's lock) are re-analyzed with the callees'
        // summaries, until the summaries stop changing (bounded: helpers
        // nest a level or two).
        let mut previous: HashMap<FnId, LockSummary> = HashMap::default();
        for _round in 0..4 {
            let summaries: HashMap<FnId, LockSummary> =
                locks.iter().map(|(&id, l)| (id, LockSummary::of(l))).filter(|(_, s)| !s.is_empty()).collect();
            if summaries == previous {
                break;
            }
            for &id in &program.functions {
                let edges = program.calls.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                let affected = |e: &&crate::graph::CallEdge<'_>| {
                    summaries.contains_key(&e.callee) || previous.contains_key(&e.callee)
                };
                if !edges.iter().any(|e| affected(&e)) {
                    continue;
                }
                let lookup = |site: &CallSite| {
                    // Only a call that resolves to exactly one function
                    // has a definite effect.
                    let mut targets = program.edges_at(id, site).iter();
                    let first = targets.next()?;
                    if targets.next().is_some() {
                        return None;
                    }
                    summaries.get(&first.callee).cloned()
                };
                locks.insert(id, analyze_function_with(api, program.func(id), Some(&lookup)));
            }
            previous = summaries;
        }
        let mut a = Analysis {
            program,
            api,
            locks,
            roots: Vec::new(),
            reach: HashMap::default(),
            warnings: Vec::new(),
            callback_edges: Vec::new(),
        };
        a.find_roots(docs);
        a.propagate(docs);
        a
    }

    /// The context of a hotplug state's callbacks, from its section in
    /// `cpuhotplug.h`; an error message when the state is unknown.
    fn cpuhp_context(docs: &KernelDocs<'_>, state: &str, at: &str) -> Result<&'static str, String> {
        match docs.cpuhp.and_then(|c| c.section_of(state)) {
            Some(CpuhpSection::Prepare) => Ok("cpuhp_prepare"),
            Some(CpuhpSection::Starting) => Ok("cpuhp_starting"),
            Some(CpuhpSection::Online) => Ok("cpuhp_online"),
            // Dynamic states are allocated in the ONLINE section.
            None if state.ends_with("ONLINE_DYN") => Ok("cpuhp_online"),
            None => Err(format!(
                "{at}: hotplug state `{state}` not found in include/linux/cpuhotplug.h; its callbacks are not analyzed"
            )),
        }
    }

    fn add_root(
        &mut self,
        context: &str,
        function: FnId,
        origin: String,
        role: Option<String>,
        registered_at: Option<(String, Span)>,
    ) {
        // One root per (function, context): a callback registered twice, or
        // both registered and bound in an entry struct, is one root.
        if self.roots.iter().any(|r| r.function == function && r.context == context) {
            return;
        }
        let serialized_by =
            self.api.context(context).map(|c| serialized_set(self.api, &c.serialized_by)).unwrap_or_default();
        let id = self.roots.len();
        self.roots.push(Root {
            id,
            context: context.to_string(),
            function,
            function_name: self.program.func(function).name.clone(),
            origin,
            role,
            registered_at,
            serialized_by,
        });
    }

    fn find_roots(&mut self, docs: &KernelDocs<'_>) {
        let program_files = self.program.files;
        // Entry macros: module_init(fn).
        for &fi in &self.program.in_scope.clone() {
            let file = &program_files[fi as usize];
            for m in &file.top_level_macros {
                let Some(entry) = self.api.entry_macro(&m.name) else { continue };
                let ctx = entry.context.clone();
                for arg in &m.args {
                    let Some(name) = &arg.ident else { continue };
                    for id in self.program.lookup(fi, name).to_vec() {
                        self.add_root(&ctx, id, format!("{}({name})", m.name), None, Some((file.path.clone(), m.span)));
                    }
                }
            }
            // Struct types whose fields are entry points (file_operations).
            for init in &file.initializers {
                for es in self.api.entry_structs().to_vec() {
                    if init.struct_type != es.struct_type {
                        continue;
                    }
                    for b in init.fields.iter().filter(|b| es.fields.contains(&b.field)) {
                        let Some(v) = &b.value_ident else { continue };
                        for id in self.program.lookup(fi, v).to_vec() {
                            self.add_root(
                                &es.context,
                                id,
                                format!("struct {} {}.{}", es.struct_type, init.var_name, b.field),
                                Some(b.field.clone()),
                                Some((file.path.clone(), b.span)),
                            );
                        }
                    }
                }
            }
        }
        // Registrations called anywhere in the program.
        let functions = self.program.functions.clone();
        for id in functions {
            let file = self.program.file(id);
            let func = self.program.func(id);
            let mut sites: Vec<&CallSite> = Vec::new();
            crate::graph::visit_calls(&func.body.stmts, &mut |s| sites.push(s));
            for site in sites {
                let Callee::Direct(name) = &site.callee else { continue };
                let Some(reg) = self.api.registration(name).cloned() else { continue };
                let at = format!("{}:{}", file.path, site.span.line);
                let edge_context = match (&reg.context, reg.cpuhp_state_arg) {
                    (Some(c), _) => Some(c.clone()),
                    (None, Some(i)) => site
                        .args
                        .get(i)
                        .and_then(|a| Self::cpuhp_context(docs, a.text.trim(), &at).ok())
                        .map(str::to_string),
                    (None, None) => None,
                };
                for &ai in &reg.callback_args {
                    let Some(cb_name) = site.args.get(ai).and_then(|a| a.ident.as_deref()) else { continue };
                    for &cb in self.program.lookup(id.file, cb_name) {
                        self.callback_edges.push(CallbackEdge {
                            caller: id,
                            callee: cb,
                            span: site.span,
                            via: name.clone(),
                            context: edge_context.clone(),
                        });
                    }
                }
                // Cross-CPU calls continue their caller's paths (see propagate).
                if reg.context.as_deref() == Some("ipi") {
                    continue;
                }
                let context: String = match (&reg.context, reg.cpuhp_state_arg) {
                    (_, Some(i)) => {
                        let Some(state) = site.args.get(i).map(|a| a.text.trim().to_string()) else { continue };
                        match Self::cpuhp_context(docs, &state, &at) {
                            Ok(c) => c.to_string(),
                            Err(w) => {
                                self.warnings.push(w);
                                continue;
                            }
                        }
                    }
                    (Some(c), None) => c.clone(),
                    (None, None) => continue,
                };
                let roles = ["startup", "teardown"];
                if reg.struct_arg.is_some() {
                    let Some(var) = reg.struct_arg.and_then(|i| site.args.get(i)).and_then(|a| a.ident.clone()) else {
                        continue;
                    };
                    let inits: Vec<_> = self.program.initializers_of_var(&var).to_vec();
                    for (fi, init) in inits {
                        for b in init.fields.iter().filter(|b| reg.fields.contains(&b.field)) {
                            let Some(v) = &b.value_ident else { continue };
                            for cb in self.program.lookup(fi, v).to_vec() {
                                self.add_root(
                                    &context,
                                    cb,
                                    format!("{name}(&{var}) .{}", b.field),
                                    Some(b.field.clone()),
                                    Some((file.path.clone(), site.span)),
                                );
                            }
                        }
                    }
                } else {
                    for (k, &ai) in reg.callback_args.iter().enumerate() {
                        let Some(cb_name) = site.args.get(ai).and_then(|a| a.ident.clone()) else { continue };
                        let role = reg.cpuhp_state_arg.map(|_| roles.get(k).copied().unwrap_or("callback"));
                        let origin = match reg.cpuhp_state_arg.and_then(|i| site.args.get(i)) {
                            Some(state) => {
                                format!("{name}({}) {} callback", state.text.trim(), role.unwrap_or("callback"))
                            }
                            None => format!("{name}() callback"),
                        };
                        for cb in self.program.lookup(id.file, &cb_name).to_vec() {
                            self.add_root(
                                &context,
                                cb,
                                origin.clone(),
                                role.map(str::to_string),
                                Some((file.path.clone(), site.span)),
                            );
                        }
                    }
                }
            }
        }
    }

    fn propagate(&mut self, docs: &KernelDocs<'_>) {
        let mut reach: HashMap<FnId, Vec<Reach>> = HashMap::default();
        let mut queue: VecDeque<(FnId, usize)> = VecDeque::new();
        // A function's states are few (bounded): a new one is compared with
        // each, which is exact and cheaper than hashing three lock sets.
        let push = |reach: &mut HashMap<FnId, Vec<Reach>>, queue: &mut VecDeque<(FnId, usize)>, id: FnId, r: Reach| {
            let v = reach.entry(id).or_default();
            if v.len() >= MAX_STATES_PER_FUNCTION || v.iter().any(|x| x.key == r.key) {
                return;
            }
            v.push(r);
            queue.push_back((id, v.len() - 1));
        };
        for root in &self.roots {
            let key = ReachKey {
                root: root.id,
                context: root.context.clone(),
                held_must: LockSet::empty(),
                held_may: LockSet::empty(),
                serialized_by: root.serialized_by.clone(),
            };
            push(&mut reach, &mut queue, root.function, Reach { key, parent: None, via: None, depth: 0 });
        }
        while let Some((id, ri)) = queue.pop_front() {
            let r = reach[&id][ri].clone();
            let Some(locks) = self.locks.get(&id) else { continue };
            for occ in &locks.occurrences {
                let OccurrenceKind::Call(site) = occ.kind else { continue };
                let edges = self.program.edges_at(id, site);
                let registration = match &site.callee {
                    Callee::Direct(name) => self.api.registration(name).map(|reg| (name, reg)),
                    _ => None,
                };
                // Most calls lead nowhere in the program (library calls):
                // no lock sets to build for them.
                if edges.is_empty() && registration.is_none() {
                    continue;
                }
                // Entry locks the function released before this call (its
                // caller's lock, e.g. `write_unlock(); cond_resched();`) are
                // not held at the call.
                let held_must = occ.state.held_with_entry(&r.key.held_must);
                let held_may = occ.state.held_with_entry(&r.key.held_may).union(&occ.state.may);
                for e in edges {
                    let key = ReachKey {
                        root: r.key.root,
                        context: r.key.context.clone(),
                        held_must: held_must.clone(),
                        held_may: held_may.clone(),
                        serialized_by: r.key.serialized_by.clone(),
                    };
                    push(
                        &mut reach,
                        &mut queue,
                        e.callee,
                        Reach { key, parent: Some((id, ri, site.span)), via: None, depth: r.depth + 1 },
                    );
                }
                // Context-switching calls that run a callback while the caller waits.
                let Some((name, reg)) = registration else { continue };
                let (context, waits, extra) = match (&reg.context, reg.cpuhp_state_arg) {
                    (Some(c), None) if c == "ipi" => {
                        let waits = reg
                            .wait_arg
                            .and_then(|i| site.args.get(i))
                            .map(|a| !matches!(a.text.trim(), "0" | "false"))
                            .unwrap_or(true);
                        (c.clone(), waits, LockSet::empty())
                    }
                    (_, Some(si)) if reg.invokes_now => {
                        let Some(state) = site.args.get(si).map(|a| a.text.trim().to_string()) else { continue };
                        let at = format!("{}:{}", self.program.file(id).path, site.span.line);
                        // Unknown states were reported when the roots were found.
                        let Ok(c) = Self::cpuhp_context(docs, &state, &at) else { continue };
                        let extra =
                            self.api.context(c).map(|s| serialized_set(self.api, &s.serialized_by)).unwrap_or_default();
                        (c.to_string(), true, extra)
                    }
                    _ => continue,
                };
                let ctx_spec = self.api.context(&context);
                let remote = ctx_spec.map(|c| c.remote).unwrap_or(true);
                let callbacks: Vec<usize> = if reg.invokes_now {
                    reg.callback_args.first().copied().into_iter().collect()
                } else {
                    reg.callback_args.clone()
                };
                for ai in callbacks {
                    let Some(cb_name) = site.args.get(ai).and_then(|a| a.ident.clone()) else { continue };
                    for &cb in self.program.lookup(id.file, &cb_name) {
                        let mut serialized = r.key.serialized_by.union(&extra);
                        if waits {
                            serialized = serialized.union(&held_must);
                        }
                        let (hm, hy) = if remote {
                            (LockSet::empty(), LockSet::empty())
                        } else {
                            (held_must.clone(), held_may.clone())
                        };
                        let key = ReachKey {
                            root: r.key.root,
                            context: context.clone(),
                            held_must: hm,
                            held_may: hy,
                            serialized_by: serialized,
                        };
                        push(
                            &mut reach,
                            &mut queue,
                            cb,
                            Reach {
                                key,
                                parent: Some((id, ri, site.span)),
                                via: Some(format!("{name}({cb_name})")),
                                depth: r.depth + 1,
                            },
                        );
                    }
                }
            }
        }
        self.reach = reach;
    }

    /// The reach states of a function (empty when unreachable).
    pub fn reaches(&self, id: FnId) -> &[Reach] {
        self.reach.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The witness of reach state `ri` of `id`, root first. The last step is
    /// `id` itself, positioned at `site` when given (else its definition).
    /// A chain longer than [`MAX_WITNESS_STEPS`] keeps its last steps and
    /// starts with a `...` step saying it was cut.
    pub fn witness(&self, id: FnId, ri: usize, site: Option<Span>) -> Vec<Step> {
        let mut steps: Vec<Step> = Vec::new();
        let mut cur = Some((id, ri, site));
        while let Some((fid, idx, at)) = cur {
            if steps.len() == MAX_WITNESS_STEPS {
                // Said, not silent: the chain goes on above the last step kept.
                if let Some(top) = steps.last() {
                    let mut cut = top.clone();
                    cut.function = "...".to_string();
                    cut.via = Some(format!("witness cut: more than {MAX_WITNESS_STEPS} calls from the root"));
                    steps.push(cut);
                }
                break;
            }
            let Some(r) = self.reach.get(&fid).and_then(|v| v.get(idx)) else { break };
            let func = self.program.func(fid);
            let file = &self.program.file(fid).path;
            let pos = at.unwrap_or(func.name_span);
            steps.push(Step {
                function: func.name.clone(),
                file: file.clone(),
                line: pos.line,
                col: pos.col,
                context: r.key.context.clone(),
                held: r.key.held_must.names().iter().map(|s| s.to_string()).collect(),
                may_held: r
                    .key
                    .held_may
                    .iter()
                    .filter(|l| !r.key.held_must.contains_name(&l.name))
                    .map(|l| l.name.clone())
                    .collect(),
                serialized_by: r.key.serialized_by.names().iter().map(|s| s.to_string()).collect(),
                via: r.via.clone(),
            });
            cur = r.parent.map(|(pid, pri, span)| (pid, pri, Some(span)));
        }
        steps.reverse();
        steps
    }

    /// Find a function by name in this program (first definition).
    pub fn function_named(&self, name: &str) -> Option<FnId> {
        self.program.lookup_any(name).into_iter().next()
    }
}

/// A set of fixed locks by name (the API model's `serialized_by`), each with
/// the kind of the lock operation that names it.
fn serialized_set(api: &ApiModel, names: &[String]) -> LockSet {
    use crate::locks::HeldLock;
    LockSet(std::sync::Arc::new(
        names
            .iter()
            .map(|n| HeldLock {
                name: n.clone(),
                kind: api
                    .table
                    .lock_ops
                    .iter()
                    .find(|o| o.lock.as_deref() == Some(n.as_str()))
                    .map(|o| o.kind.clone())
                    .unwrap_or_else(|| "lock".to_string()),
            })
            .collect(),
    ))
}
