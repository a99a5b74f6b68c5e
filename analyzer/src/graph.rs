//! Linking: one symbol table and call graph per architecture.
//!
//! A [`Program`] is common code (files with no arch) plus one
//! `arch/<arch>/` at a time, the way the kernel links KVM for one arch.
//! Resolution follows C and the kernel's conventions:
//! - a `static` function is visible in its own file only (headers' static
//!   inlines are visible everywhere: they are included);
//! - a strong definition overrides a `__weak` one;
//! - an ops-table call `ops.field()` / `ops->field()` dispatches to every
//!   function bound to `field` in initializers of the ops variable's struct
//!   type (or, for a base that is not a known global, of any struct binding
//!   that field);
//! - `static_call(key)()` and call macros map to an ops type and field
//!   through the API model.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use serde::Serialize;

use crate::api::ApiModel;
use crate::facts::{CallSite, Callee, Event, FileFacts, Function, Global, Stmt, StructInit};

/// Index of a function definition: (file index, function index in file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FnId {
    pub file: u32,
    pub func: u32,
}

/// How a call edge was resolved, for the evidence shown to reviewers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Resolution {
    Direct,
    /// Through an ops table field: `kvm_x86_ops.hardware_enable` bound in `vmx_x86_ops`.
    OpsField {
        ops_type: String,
        field: String,
        bound_in: String,
    },
    /// Through a static call key mapped to an ops field.
    StaticCall {
        key: String,
        ops_type: String,
        field: String,
        bound_in: String,
    },
}

/// A resolved call from a function to a function definition.
#[derive(Debug, Clone, Serialize)]
pub struct CallEdge<'a> {
    #[serde(skip)]
    pub site: &'a CallSite,
    pub callee: FnId,
    pub resolution: Resolution,
}

/// One architecture's linked view of the facts.
pub struct Program<'a> {
    /// `None` for a program of common code only.
    pub arch: Option<String>,
    pub files: &'a [Arc<FileFacts>],
    /// Files in scope for this arch (indices into `files`).
    pub in_scope: Vec<u32>,
    /// Function definitions in scope, after `__weak` overriding.
    pub functions: Vec<FnId>,
    function_set: HashSet<FnId>,
    /// Visible (non-static or header) definitions by name.
    global_fns: HashMap<&'a str, Vec<FnId>>,
    /// File-local (static) definitions by (file, name); several when the
    /// file defines the function in both branches of an `#ifdef`.
    /// (By file, then name: a lookup by a borrowed name needs no key.)
    static_fns: HashMap<u32, HashMap<&'a str, Vec<FnId>>>,
    /// Globals in scope by name.
    pub globals: HashMap<&'a str, Vec<(u32, &'a Global)>>,
    /// Struct initializers by struct type.
    inits_by_type: HashMap<&'a str, Vec<(u32, &'a StructInit)>>,
    /// Struct initializers by variable name.
    inits_by_var: HashMap<&'a str, Vec<(u32, &'a StructInit)>>,
    /// Run-time field bindings `x.field = fn;` by field.
    field_assigns: HashMap<&'a str, Vec<(u32, String, String)>>,
    /// Resolved call edges, per caller.
    pub calls: HashMap<FnId, Vec<CallEdge<'a>>>,
    /// Callers of each function (reverse edges): (caller, index into `calls[caller]`).
    pub callers: HashMap<FnId, Vec<(FnId, usize)>>,
    /// The range of `calls[caller]` holding one call site's edges (they
    /// are contiguous), by the site's address: rules and the propagation
    /// ask "what does this call reach" for every call they walk.
    site_edges: HashMap<usize, (u32, u32)>,
}

fn is_header(path: &str) -> bool {
    path.ends_with(".h")
}

/// Strip `struct`, `const`, pointers and qualifiers from a type to its tag.
pub fn type_tag(type_text: &str) -> &str {
    let mut t = type_text.trim();
    for prefix in ["static ", "const ", "struct ", "union ", "volatile "] {
        while let Some(rest) = t.strip_prefix(prefix) {
            t = rest.trim_start();
        }
    }
    let t = t.trim_end_matches(|c: char| c == '*' || c.is_whitespace());
    t.split_whitespace().next().unwrap_or("")
}

impl<'a> Program<'a> {
    /// Link common code plus `arch` (all files of that arch).
    pub fn link(files: &'a [Arc<FileFacts>], arch: Option<&str>, api: &ApiModel) -> Program<'a> {
        let in_scope: Vec<u32> = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.arch.is_none() || f.arch.as_deref() == arch)
            .map(|(i, _)| i as u32)
            .collect();

        let mut global_fns: HashMap<&'a str, Vec<FnId>> = HashMap::default();
        let mut static_fns: HashMap<u32, HashMap<&'a str, Vec<FnId>>> = HashMap::default();
        let mut globals: HashMap<&'a str, Vec<(u32, &'a Global)>> = HashMap::default();
        let mut inits_by_type: HashMap<&'a str, Vec<(u32, &'a StructInit)>> = HashMap::default();
        let mut inits_by_var: HashMap<&'a str, Vec<(u32, &'a StructInit)>> = HashMap::default();
        let mut field_assigns: HashMap<&'a str, Vec<(u32, String, String)>> = HashMap::default();
        for &fi in &in_scope {
            let file = &files[fi as usize];
            for (gi, func) in file.functions.iter().enumerate() {
                let id = FnId { file: fi, func: gi as u32 };
                if func.is_static && !is_header(&file.path) {
                    static_fns.entry(fi).or_default().entry(func.name.as_str()).or_default().push(id);
                } else {
                    global_fns.entry(func.name.as_str()).or_default().push(id);
                }
            }
            for g in &file.globals {
                globals.entry(g.name.as_str()).or_default().push((fi, g));
            }
            for init in &file.initializers {
                inits_by_type.entry(init.struct_type.as_str()).or_default().push((fi, init));
                inits_by_var.entry(init.var_name.as_str()).or_default().push((fi, init));
            }
            for func in &file.functions {
                visit_events(&func.body.stmts, &mut |e| {
                    if let Event::FieldAssign(fa) = e {
                        if let Some(v) = &fa.value_ident {
                            field_assigns.entry(fa.field.as_str()).or_default().push((fi, fa.base.clone(), v.clone()));
                        }
                    }
                });
            }
        }
        // A strong definition overrides `__weak` ones of the same name.
        for ids in global_fns.values_mut() {
            let has_strong = ids.iter().any(|id| !func_of(files, *id).is_weak());
            if has_strong {
                ids.retain(|id| !func_of(files, *id).is_weak());
            }
        }
        let mut functions: Vec<FnId> = global_fns.values().flatten().copied().collect();
        functions.extend(static_fns.values().flat_map(|m| m.values().flatten().copied()));
        functions.sort();
        functions.dedup();

        let mut program = Program {
            arch: arch.map(str::to_string),
            files,
            in_scope,
            function_set: functions.iter().copied().collect(),
            functions,
            global_fns,
            static_fns,
            globals,
            inits_by_type,
            inits_by_var,
            field_assigns,
            calls: HashMap::default(),
            callers: HashMap::default(),
            site_edges: HashMap::default(),
        };
        program.build_edges(api);
        program
    }

    fn build_edges(&mut self, api: &ApiModel) {
        let mut calls: HashMap<FnId, Vec<CallEdge<'a>>> = HashMap::default();
        let mut site_edges: HashMap<usize, (u32, u32)> = HashMap::default();
        for &id in &self.functions {
            let func = func_of(self.files, id);
            let mut edges = Vec::new();
            visit_calls(&func.body.stmts, &mut |site| {
                let start = edges.len() as u32;
                for (callee, resolution) in self.resolve_call(id.file, site, api) {
                    edges.push(CallEdge { site, callee, resolution });
                }
                if edges.len() as u32 > start {
                    site_edges.insert(site as *const CallSite as usize, (start, edges.len() as u32));
                }
            });
            calls.insert(id, edges);
        }
        self.site_edges = site_edges;
        let mut callers: HashMap<FnId, Vec<(FnId, usize)>> = HashMap::default();
        for (&caller, edges) in &calls {
            for (i, e) in edges.iter().enumerate() {
                callers.entry(e.callee).or_default().push((caller, i));
            }
        }
        for v in callers.values_mut() {
            v.sort();
        }
        self.calls = calls;
        self.callers = callers;
    }

    /// The resolved edges of one call site of `caller` (empty when the call
    /// resolves to nothing in this program).
    pub fn edges_at(&self, caller: FnId, site: &CallSite) -> &[CallEdge<'a>] {
        let Some(&(start, end)) = self.site_edges.get(&(site as *const CallSite as usize)) else { return &[] };
        match self.calls.get(&caller) {
            // The address is only a key: the range is used when it indexes
            // the caller's own edges at that very site.
            Some(edges) if edges.get(start as usize).is_some_and(|e| std::ptr::eq(e.site, site)) => {
                &edges[start as usize..end as usize]
            }
            _ => &[],
        }
    }

    /// Whether a definition is part of this program (in scope, not an
    /// overridden `__weak` default).
    pub fn contains(&self, id: FnId) -> bool {
        self.function_set.contains(&id)
    }

    /// The function definition behind an id.
    pub fn func(&self, id: FnId) -> &'a Function {
        func_of(self.files, id)
    }

    pub fn file(&self, id: FnId) -> &'a FileFacts {
        &self.files[id.file as usize]
    }

    /// Resolve a function name as seen from `from_file`.
    pub fn lookup(&self, from_file: u32, name: &str) -> &[FnId] {
        if let Some(ids) = self.static_fns.get(&from_file).and_then(|m| m.get(name)) {
            return ids;
        }
        self.global_fns.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// All definitions with this name in scope (any file).
    pub fn lookup_any(&self, name: &str) -> Vec<FnId> {
        let mut out = self.global_fns.get(name).cloned().unwrap_or_default();
        out.extend(self.static_fns.values().filter_map(|m| m.get(name)).flatten().copied());
        out.sort();
        out
    }

    /// Struct initializers of a variable (e.g. `kvm_syscore_ops`).
    pub fn initializers_of_var(&self, var: &str) -> &[(u32, &'a StructInit)] {
        self.inits_by_var.get(var).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn initializers_of_type(&self, ty: &str) -> &[(u32, &'a StructInit)] {
        self.inits_by_type.get(ty).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Functions bound to `field` of struct type `ty`, with the variable that binds them.
    pub fn bound_functions(&self, ty: &str, field: &str) -> Vec<(FnId, String)> {
        let mut out = Vec::new();
        for (fi, init) in self.initializers_of_type(ty) {
            for b in init.fields.iter().filter(|b| b.field == field) {
                if let Some(v) = &b.value_ident {
                    for &id in self.lookup(*fi, v) {
                        out.push((id, init.var_name.clone()));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The struct type of a global variable (for `ops.field` calls).
    pub fn global_type(&self, name: &str) -> Option<&'a str> {
        let base = name.trim_start_matches('*').trim_start_matches('&');
        self.globals.get(base).and_then(|gs| gs.first()).map(|(_, g)| type_tag(&g.type_text))
    }

    fn resolve_call(&self, file: u32, site: &CallSite, api: &ApiModel) -> Vec<(FnId, Resolution)> {
        match &site.callee {
            Callee::Direct(name) => self.lookup(file, name).iter().map(|&id| (id, Resolution::Direct)).collect(),
            Callee::OpsMember { base, field } => {
                let mut out: Vec<(FnId, Resolution)> = Vec::new();
                if let Some(ty) = self.global_type(base) {
                    for (id, var) in self.bound_functions(ty, field) {
                        out.push((
                            id,
                            Resolution::OpsField { ops_type: ty.to_string(), field: field.clone(), bound_in: var },
                        ));
                    }
                    // Run-time bindings of this base's field.
                    if let Some(assigns) = self.field_assigns.get(field.as_str()) {
                        for (fi, b, v) in assigns {
                            if b == base {
                                for &id in self.lookup(*fi, v) {
                                    out.push((
                                        id,
                                        Resolution::OpsField {
                                            ops_type: ty.to_string(),
                                            field: field.clone(),
                                            bound_in: format!("{b} (assigned)"),
                                        },
                                    ));
                                }
                            }
                        }
                    }
                } else {
                    // A local or parameter (`dev->ops->release`): its type is not
                    // in the facts, so take the struct types binding the field
                    // whose name contains the base's last member (`ops` in
                    // `kvm_device_ops`); none matching means unresolved, which
                    // is better than an edge to every `.release`.
                    let last = base.rsplit(['.', '>']).next().unwrap_or(base).trim();
                    let mut tys: BTreeSet<&str> = BTreeSet::new();
                    for (ty, inits) in &self.inits_by_type {
                        if last.len() >= 3
                            && ty.contains(last)
                            && inits.iter().any(|(_, i)| i.fields.iter().any(|b| &b.field == field))
                        {
                            tys.insert(ty);
                        }
                    }
                    for ty in tys {
                        for (id, var) in self.bound_functions(ty, field) {
                            out.push((
                                id,
                                Resolution::OpsField { ops_type: ty.to_string(), field: field.clone(), bound_in: var },
                            ));
                        }
                    }
                }
                out
            }
            Callee::StaticCall { key, via_macro } => {
                let Some((ty, field)) = api.static_call_target(key, via_macro.as_deref()) else {
                    return Vec::new();
                };
                self.bound_functions(ty, &field)
                    .into_iter()
                    .map(|(id, var)| {
                        (
                            id,
                            Resolution::StaticCall {
                                key: key.clone(),
                                ops_type: ty.to_string(),
                                field: field.clone(),
                                bound_in: var,
                            },
                        )
                    })
                    .collect()
            }
            Callee::Indirect(_) => Vec::new(),
        }
    }

    /// Display name of a function with its file, for evidence.
    pub fn describe(&self, id: FnId) -> String {
        format!("{} ({})", self.func(id).name, self.file(id).path)
    }
}

pub(crate) fn func_of(files: &[Arc<FileFacts>], id: FnId) -> &Function {
    &files[id.file as usize].functions[id.func as usize]
}

/// Visit every event of a statement list, in source order.
pub fn visit_events<'a>(stmts: &'a [Stmt], f: &mut dyn FnMut(&'a Event)) {
    for s in stmts {
        match s {
            Stmt::Simple { events, .. } | Stmt::Return { events, .. } => events.iter().for_each(&mut *f),
            Stmt::Block(b) => visit_events(&b.stmts, f),
            Stmt::If { cond, then_branch, else_branch, .. } => {
                cond.iter().for_each(&mut *f);
                visit_events(&then_branch.stmts, f);
                if let Some(e) = else_branch {
                    visit_events(&e.stmts, f);
                }
            }
            Stmt::Loop { head, body, .. } => {
                head.iter().for_each(&mut *f);
                visit_events(&body.stmts, f);
            }
            Stmt::Switch { cond, body, .. } => {
                cond.iter().for_each(&mut *f);
                visit_events(&body.stmts, f);
            }
            Stmt::ScopedGuard { body, .. } => visit_events(&body.stmts, f),
            Stmt::Preproc { branches, .. } => {
                for b in branches {
                    visit_events(&b.body.stmts, f);
                }
            }
            Stmt::Case { .. } | Stmt::Goto { .. } | Stmt::Label { .. } | Stmt::Break { .. } | Stmt::Continue { .. } => {
            }
        }
    }
}

/// Visit every call site of a statement list, in source order.
pub fn visit_calls<'a>(stmts: &'a [Stmt], f: &mut dyn FnMut(&'a CallSite)) {
    visit_events(stmts, &mut |e| {
        if let Event::Call(c) = e {
            f(c)
        }
    });
}
