//! `kvmtk graph`: the hardware-enable call graph with contexts and locks.
//!
//! For each focus function (by default the arch enable/disable hooks the
//! model finds) the report gives its contexts (root, context, locks held,
//! locks serializing it), its callers tree up to the roots and its callees
//! tree, with file:line:col and the lock set at every edge. Renders as text,
//! JSON and Graphviz DOT.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::contexts::Analysis;
use crate::enable_path::EnablePath;
use crate::facts::Span;
use crate::graph::{FnId, Resolution};
use crate::kernel_docs::LockingDoc;

/// Depth bounds of the trees (the graph is large; the trees are for reading).
pub const CALLER_DEPTH: usize = 8;
pub const CALLEE_DEPTH: usize = 2;

#[derive(Debug, Clone, Serialize)]
pub struct GraphReport {
    pub tree: String,
    pub arches: Vec<ArchGraph>,
    /// The parsed `Documentation/virt/kvm/locking.rst`, when present.
    pub locking_doc: Option<LockingDoc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchGraph {
    pub arch: String,
    pub roots: Vec<RootView>,
    pub enable_hooks: Vec<String>,
    pub disable_hooks: Vec<String>,
    pub focus: Vec<FocusView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RootView {
    pub context: String,
    pub function: String,
    pub file: String,
    pub line: u32,
    pub origin: String,
    pub registered_at: Option<String>,
    pub serialized_by: Vec<String>,
    /// Locks the code running this callback holds on some paths only
    /// (the API model's `may_run_under`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub may_run_under: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ContextView {
    pub context: String,
    pub held: Vec<String>,
    pub may_held: Vec<String>,
    pub serialized_by: Vec<String>,
    /// Root functions reaching the function in this state.
    pub roots: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FocusView {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub contexts: Vec<ContextView>,
    pub callers: Vec<TreeNode>,
    pub callees: Vec<TreeNode>,
}

/// One edge of a callers or callees tree.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    pub function: String,
    /// Where the call is (in the caller).
    pub file: String,
    pub line: u32,
    pub col: u32,
    /// How the call resolves, when not direct (`static_call(...) -> vmx_x86_ops.hardware_enable`),
    /// or the registering call for a callback edge (`on_each_cpu`).
    pub via: Option<String>,
    /// Context of the callee when the edge changes it (callback edges).
    pub context: Option<String>,
    /// Locks held at the call site in the caller (must, and may-only).
    pub held: Vec<String>,
    pub may_held: Vec<String>,
    /// For callers trees: when this function is a root, its context and origin.
    pub root: Option<String>,
    pub children: Vec<TreeNode>,
}

fn resolution_text(r: &Resolution) -> Option<String> {
    match r {
        Resolution::Direct => None,
        Resolution::OpsField { ops_type, field, bound_in } => Some(format!("{ops_type}.{field} bound in {bound_in}")),
        Resolution::StaticCall { key, ops_type, field, bound_in } => {
            Some(format!("static call {key} -> {ops_type}.{field} bound in {bound_in}"))
        }
    }
}

/// Build the view of one analyzed arch. `focus` names functions to show;
/// empty means the enable and disable hooks.
pub fn arch_graph(a: &Analysis<'_>, focus: &[String]) -> ArchGraph {
    let ep = EnablePath::find(a);
    let name = |id: FnId| a.program.func(id).name.clone();
    let mut focus_ids: Vec<FnId> = if focus.is_empty() {
        ep.enable_hooks.iter().chain(&ep.disable_hooks).copied().collect()
    } else {
        focus.iter().flat_map(|f| a.program.lookup_any(f)).collect()
    };
    focus_ids.sort_by_key(|&id| (a.program.file(id).path.clone(), a.program.func(id).span.start));
    focus_ids.dedup();
    let roots = a
        .roots
        .iter()
        .map(|r| RootView {
            context: r.context.clone(),
            function: name(r.function),
            file: a.program.file(r.function).path.clone(),
            line: a.program.func(r.function).name_span.line,
            origin: r.origin.clone(),
            registered_at: r.registered_at.as_ref().map(|(p, s)| format!("{p}:{}", s.line)),
            serialized_by: r.serialized_by.names().iter().map(|s| s.to_string()).collect(),
            may_run_under: a.api.context(&r.context).map(|c| c.may_run_under.clone()).unwrap_or_default(),
        })
        .collect();
    ArchGraph {
        arch: a.program.arch.clone().unwrap_or_else(|| "common".to_string()),
        roots,
        enable_hooks: ep.enable_hooks.iter().map(|&id| name(id)).collect(),
        disable_hooks: ep.disable_hooks.iter().map(|&id| name(id)).collect(),
        focus: focus_ids.iter().map(|&id| focus_view(a, id)).collect(),
    }
}

/// The distinct contexts of a function, merged over roots.
pub fn contexts_of(a: &Analysis<'_>, id: FnId) -> Vec<ContextView> {
    // (context, held, may-held, serialized by) -> root functions.
    type StateKey = (String, Vec<String>, Vec<String>, Vec<String>);
    let mut merged: BTreeMap<StateKey, BTreeSet<String>> = BTreeMap::new();
    for r in a.reaches(id) {
        let held: Vec<String> = r.key.held_must.names().iter().map(|s| s.to_string()).collect();
        let may: Vec<String> =
            r.key.held_may.iter().filter(|l| !r.key.held_must.contains_name(&l.name)).map(|l| l.name.clone()).collect();
        let ser: Vec<String> = r.key.serialized_by.names().iter().map(|s| s.to_string()).collect();
        let root = &a.roots[r.key.root];
        merged
            .entry((r.key.context.clone(), held, may, ser))
            .or_default()
            .insert(a.program.func(root.function).name.clone());
    }
    merged
        .into_iter()
        .map(|((context, held, may_held, serialized_by), roots)| ContextView {
            context,
            held,
            may_held,
            serialized_by,
            roots: roots.into_iter().collect(),
        })
        .collect()
}

fn focus_view(a: &Analysis<'_>, id: FnId) -> FocusView {
    let func = a.program.func(id);
    let mut seen = BTreeSet::new();
    seen.insert(id);
    FocusView {
        function: func.name.clone(),
        file: a.program.file(id).path.clone(),
        line: func.name_span.line,
        contexts: contexts_of(a, id),
        callers: callers_tree(a, id),
        callees: callees_tree(a, id, 0, &mut seen),
    }
}

fn site_locks(a: &Analysis<'_>, caller: FnId, span_start: u32) -> (Vec<String>, Vec<String>) {
    let Some(locks) = a.locks.get(&caller) else { return (vec![], vec![]) };
    for o in &locks.occurrences {
        if let crate::locks::OccurrenceKind::Call(c) = o.kind {
            if c.span.start == span_start {
                let must: Vec<String> = o.state.must.names().iter().map(|s| s.to_string()).collect();
                let may = o
                    .state
                    .may
                    .iter()
                    .filter(|l| !o.state.must.contains_name(&l.name))
                    .map(|l| l.name.clone())
                    .collect();
                return (must, may);
            }
        }
    }
    (vec![], vec![])
}

fn root_label(a: &Analysis<'_>, id: FnId) -> Option<String> {
    let rs: Vec<String> =
        a.roots.iter().filter(|r| r.function == id).map(|r| format!("{}: {}", r.context, r.origin)).collect();
    if rs.is_empty() {
        None
    } else {
        Some(rs.join("; "))
    }
}

/// The callers tree of a function: the union of the witness paths of its
/// reach states (each reach state has one parent, the caller state and call
/// site that first reached it), so the tree shows how every context arises
/// without listing every caller in the kernel. Callers that reach it in no
/// new state are not shown.
fn callers_tree(a: &Analysis<'_>, id: FnId) -> Vec<TreeNode> {
    let all: Vec<usize> = (0..a.reaches(id).len()).collect();
    callers_of_states(a, id, &all, 0)
}

fn callers_of_states(a: &Analysis<'_>, id: FnId, states: &[usize], depth: usize) -> Vec<TreeNode> {
    if depth >= CALLER_DEPTH * 4 {
        return Vec::new();
    }
    // Group the states by their parent (caller, site).
    // (caller file, call offset, caller) -> (call span, via, caller states).
    type ParentKey = (String, u32, FnId);
    type ParentGroup = (Span, Option<String>, Vec<usize>);
    let mut groups: BTreeMap<ParentKey, ParentGroup> = BTreeMap::new();
    for &ri in states {
        let Some(r) = a.reaches(id).get(ri) else { continue };
        let Some((pid, pri, span)) = r.parent else { continue };
        let key = (a.program.file(pid).path.clone(), span.start, pid);
        let g = groups.entry(key).or_insert_with(|| (span, r.via.clone(), Vec::new()));
        if !g.2.contains(&pri) {
            g.2.push(pri);
        }
    }
    let mut out = Vec::new();
    for ((file, start, pid), (span, via, parent_states)) in groups {
        let (held, may_held) = site_locks(a, pid, start);
        let context = via.as_ref().and_then(|_| {
            states
                .iter()
                .filter_map(|&ri| a.reaches(id).get(ri))
                .find(|r| r.parent.map(|p| p.0) == Some(pid))
                .map(|r| r.key.context.clone())
        });
        let is_root_here = parent_states.iter().any(|&pri| a.reaches(pid).get(pri).is_some_and(|r| r.parent.is_none()));
        out.push(TreeNode {
            function: a.program.func(pid).name.clone(),
            file,
            line: span.line,
            col: span.col,
            via: via.or_else(|| edge_resolution(a, pid, start, id)),
            context,
            held,
            may_held,
            root: if is_root_here { root_label(a, pid) } else { None },
            children: callers_of_states(a, pid, &parent_states, depth + 1),
        });
    }
    out
}

/// How the call at `start` in `caller` resolved to `callee`, when not direct.
fn edge_resolution(a: &Analysis<'_>, caller: FnId, start: u32, callee: FnId) -> Option<String> {
    a.program
        .calls
        .get(&caller)?
        .iter()
        .find(|e| e.site.span.start == start && e.callee == callee)
        .and_then(|e| resolution_text(&e.resolution))
}

fn callees_tree(a: &Analysis<'_>, id: FnId, depth: usize, seen: &mut BTreeSet<FnId>) -> Vec<TreeNode> {
    if depth >= CALLEE_DEPTH {
        return Vec::new();
    }
    let mut out = Vec::new();
    // (callee, call offset, line, col, via, context)
    type CalleeEntry = (FnId, u32, u32, u32, Option<String>, Option<String>);
    let mut entries: Vec<CalleeEntry> = Vec::new();
    for e in a.program.calls.get(&id).into_iter().flatten() {
        entries.push((
            e.callee,
            e.site.span.start,
            e.site.span.line,
            e.site.span.col,
            resolution_text(&e.resolution),
            None,
        ));
    }
    for ce in a.callback_edges.iter().filter(|ce| ce.caller == id) {
        entries.push((ce.callee, ce.span.start, ce.span.line, ce.span.col, Some(ce.via.clone()), ce.context.clone()));
    }
    entries.sort_by_key(|e| (e.1, a.program.func(e.0).name.clone()));
    entries.dedup_by_key(|e| (e.0, e.1));
    for (callee, start, line, col, via, context) in entries {
        let (held, may_held) = site_locks(a, id, start);
        let children = if seen.insert(callee) {
            let c = callees_tree(a, callee, depth + 1, seen);
            seen.remove(&callee);
            c
        } else {
            Vec::new()
        };
        out.push(TreeNode {
            function: a.program.func(callee).name.clone(),
            file: a.program.file(id).path.clone(),
            line,
            col,
            via,
            context,
            held,
            may_held,
            root: None,
            children,
        });
    }
    out
}

fn set(v: &[String]) -> String {
    format!("{{{}}}", v.join(", "))
}

fn edge_text(n: &TreeNode) -> String {
    let mut s = format!("{}  {}:{}:{}", n.function, n.file, n.line, n.col);
    if let Some(v) = &n.via {
        let _ = write!(s, "  via {v}");
    }
    if let Some(c) = &n.context {
        let _ = write!(s, "  [{c}]");
    }
    let _ = write!(s, "  held {}", set(&n.held));
    if !n.may_held.is_empty() {
        let _ = write!(s, " may {}", set(&n.may_held));
    }
    if let Some(r) = &n.root {
        let _ = write!(s, "  <root {r}>");
    }
    s
}

fn write_tree(out: &mut String, nodes: &[TreeNode], indent: usize, arrow: &str) {
    for n in nodes {
        let _ = writeln!(out, "{:indent$}{arrow} {}", "", edge_text(n), indent = indent);
        write_tree(out, &n.children, indent + 2, arrow);
    }
}

/// Plain text, for a terminal.
pub fn render_text(report: &GraphReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tree: {}", report.tree);
    for ag in &report.arches {
        let _ = writeln!(out, "\n== arch {} ==", ag.arch);
        let _ = writeln!(
            out,
            "enable hooks: {}",
            if ag.enable_hooks.is_empty() { "(none found)".into() } else { ag.enable_hooks.join(", ") }
        );
        let _ = writeln!(
            out,
            "disable hooks: {}",
            if ag.disable_hooks.is_empty() { "(none found)".into() } else { ag.disable_hooks.join(", ") }
        );
        let _ = writeln!(out, "roots:");
        for r in &ag.roots {
            let _ = write!(out, "  [{}] {}  {}:{}  ({}", r.context, r.function, r.file, r.line, r.origin);
            if let Some(at) = &r.registered_at {
                let _ = write!(out, ", at {at}");
            }
            if !r.serialized_by.is_empty() {
                let _ = write!(out, "; serialized by {}", set(&r.serialized_by));
            }
            if !r.may_run_under.is_empty() {
                let _ = write!(out, "; on some paths under {}", set(&r.may_run_under));
            }
            let _ = writeln!(out, ")");
        }
        for f in &ag.focus {
            let _ = writeln!(out, "\n{}  {}:{}", f.function, f.file, f.line);
            let _ = writeln!(out, "  contexts:");
            if f.contexts.is_empty() {
                let _ = writeln!(out, "    (not reached from any root)");
            }
            for c in &f.contexts {
                let _ = write!(out, "    {:<15} held {}", c.context, set(&c.held));
                if !c.may_held.is_empty() {
                    let _ = write!(out, " may {}", set(&c.may_held));
                }
                if !c.serialized_by.is_empty() {
                    let _ = write!(out, "  serialized by {}", set(&c.serialized_by));
                }
                let _ = writeln!(out, "  from {}", c.roots.join(", "));
            }
            let _ = writeln!(out, "  callers:");
            write_tree(&mut out, &f.callers, 4, "<-");
            let _ = writeln!(out, "  callees:");
            write_tree(&mut out, &f.callees, 4, "->");
        }
    }
    out
}

fn context_colour(ctx: &str) -> &'static str {
    match ctx {
        "ipi" => "#e45756",
        "cpuhp_starting" => "#f58518",
        "cpuhp_online" => "#54a24b",
        "cpuhp_prepare" => "#88d27a",
        "syscore" => "#b279a2",
        "cpu_pm" => "#ff9da6",
        "stop_machine" => "#9d755d",
        "reboot" | "pm" => "#72b7b2",
        "ioctl" => "#4c78a8",
        "module_init" => "#bab0ac",
        _ => "#eeeeee",
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT: nodes coloured by context (several contexts: striped),
/// edges labelled with the locks held at the call.
pub fn render_dot(report: &GraphReport) -> String {
    let mut out =
        String::from("digraph kvmtk {\n  rankdir=LR;\n  node [shape=box, style=\"filled\", fontname=\"monospace\"];\n");
    for ag in &report.arches {
        let _ = writeln!(
            out,
            "  subgraph \"cluster_{}\" {{\n    label=\"arch {}\";",
            dot_escape(&ag.arch),
            dot_escape(&ag.arch)
        );
        let mut nodes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut edges: BTreeSet<(String, String, String)> = BTreeSet::new();
        fn walk(
            ag: &str,
            parent: &str,
            nodes: &[TreeNode],
            up: bool,
            all: &mut BTreeMap<String, BTreeSet<String>>,
            edges: &mut BTreeSet<(String, String, String)>,
        ) {
            for n in nodes {
                let id = format!("{ag}:{}", n.function);
                all.entry(id.clone()).or_default();
                let mut label = if n.held.is_empty() { String::new() } else { format!("held {}", n.held.join(",")) };
                if let Some(v) = &n.via {
                    if !label.is_empty() {
                        label.push(' ');
                    }
                    label.push_str(v);
                }
                if let Some(c) = &n.context {
                    all.entry(if up { parent.to_string() } else { id.clone() }).or_default().insert(c.clone());
                }
                if up {
                    edges.insert((id.clone(), parent.to_string(), label));
                } else {
                    edges.insert((parent.to_string(), id.clone(), label));
                }
                walk(ag, &id, &n.children, up, all, edges);
            }
        }
        for f in &ag.focus {
            let id = format!("{}:{}", ag.arch, f.function);
            nodes.entry(id.clone()).or_default().extend(f.contexts.iter().map(|c| c.context.clone()));
            walk(&ag.arch, &id, &f.callers, true, &mut nodes, &mut edges);
            walk(&ag.arch, &id, &f.callees, false, &mut nodes, &mut edges);
        }
        for (id, ctxs) in &nodes {
            let name = id.split_once(':').map(|x| x.1).unwrap_or(id);
            let colours: Vec<&str> = ctxs.iter().map(|c| context_colour(c)).collect();
            let fill = if colours.is_empty() { "#ffffff".to_string() } else { colours.join(":") };
            let style = if colours.len() > 1 { "striped" } else { "filled" };
            let ctx_label = if ctxs.is_empty() {
                String::new()
            } else {
                format!("\\n[{}]", ctxs.iter().cloned().collect::<Vec<_>>().join(", "))
            };
            let _ = writeln!(
                out,
                "    \"{}\" [label=\"{}{}\", style=\"{style}\", fillcolor=\"{fill}\"];",
                dot_escape(id),
                dot_escape(name),
                ctx_label
            );
        }
        for (from, to, label) in &edges {
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\" [label=\"{}\"];",
                dot_escape(from),
                dot_escape(to),
                dot_escape(label)
            );
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}
