//! Series step 5: replace the global cpumask that records which CPUs have
//! virtualization enabled with a per-CPU bool.
//!
//! The mask is the one HW005 reports (6.1: `cpus_hardware_enabled`), or,
//! when no HW005 finding names one, the global cpumask of common code whose
//! every per-CPU operation is indexed by the current CPU (a call to
//! `raw_smp_processor_id()` or a local holding its value) and which is
//! otherwise only allocated and freed.
//!
//! Naming: a cpumask is named for the set of CPUs ("cpus_hardware_enabled",
//! "foo_cpus", "foo_mask"); the per-CPU variable says the same of one CPU,
//! so the set words are dropped: the `cpus_`/`cpu_` prefix and the
//! `_cpus`/`_cpumask`/`_mask` suffix (`cpus_hardware_enabled` ->
//! `hardware_enabled`, as upstream named it in 6.3).
//!
//! Edits: the declaration becomes `DEFINE_PER_CPU(bool, name)`;
//! `cpumask_test_cpu(cpu, mask)` -> `__this_cpu_read(name)`,
//! `cpumask_set_cpu()`/`cpumask_clear_cpu()` -> `__this_cpu_write(name,
//! true/false)`; a `cpu` local left unused is removed; the allocation (an
//! `if (!zalloc_cpumask_var(...)) { r = -ENOMEM; goto X; }`) and the frees
//! are removed, and a label left empty by the removed free is dropped with
//! its `goto`s re-pointed to the label it fell through to, so every jump
//! still unwinds exactly what was done before it.

use std::collections::{BTreeMap, BTreeSet};

use analyzer::api::CpumaskOpKind;
use analyzer::facts::{Block, CallSite, Callee, Event, FileFacts, Function, Stmt};
use analyzer::graph::visit_calls;

use super::util::{
    and_list, file_bytes, gotos_to, ident_uses, is_declaration, line_end_incl, line_start, stmt_span, text_of,
    whole_lines, wrap,
};
use super::{Change, Refusal, TransformInput};
use crate::edit::Edit;

/// Slug of this transformation (file names, `--only`).
pub const SLUG: &str = "percpu-enabled";
const NAME: &str = SLUG;

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal { transformation: NAME, reason: reason.into() }
}

/// The per-CPU name for a cpumask name.
pub fn percpu_name(mask: &str) -> String {
    let mut n = mask;
    for p in ["cpus_", "cpu_"] {
        if let Some(r) = n.strip_prefix(p) {
            n = r;
            break;
        }
    }
    for s in ["_cpumask", "_cpus", "_mask"] {
        if let Some(r) = n.strip_suffix(s) {
            n = r;
            break;
        }
    }
    if n == mask || n.is_empty() {
        format!("{mask}_this_cpu")
    } else {
        n.to_string()
    }
}

/// One use of the mask by a cpumask operation.
struct MaskOp<'a> {
    file: &'a FileFacts,
    func: &'a Function,
    call: &'a CallSite,
    function: String,
    kind: CpumaskOpKind,
    /// The local holding the current CPU, when the CPU argument is one.
    cpu_local: Option<String>,
}

/// Locals of `func` only ever assigned the current CPU.
fn current_cpu_locals(input: &TransformInput<'_>, func: &Function) -> BTreeSet<String> {
    let mut good = BTreeSet::new();
    let mut bad = BTreeSet::new();
    fn walk(stmts: &[Stmt], f: &mut dyn FnMut(&Event)) {
        analyzer::graph::visit_events(stmts, f);
    }
    walk(&func.body.stmts, &mut |e| {
        if let Event::LocalAssign(l) = e {
            if l.value_call.as_deref().is_some_and(|c| input.api.is_current_cpu_call(c)) {
                good.insert(l.name.clone());
            } else {
                bad.insert(l.name.clone());
            }
        }
    });
    // Parameters are not the current CPU.
    for p in &func.params {
        bad.insert(p.name.clone());
    }
    good.difference(&bad).cloned().collect()
}

fn mask_ops<'a>(input: &'a TransformInput<'_>, mask: &str) -> Vec<MaskOp<'a>> {
    let mut out = Vec::new();
    for file in &input.tree.files {
        for func in &file.functions {
            let locals = current_cpu_locals(input, func);
            visit_calls(&func.body.stmts, &mut |c| {
                let Callee::Direct(name) = &c.callee else { return };
                let Some(op) = input.api.cpumask_op(name) else { return };
                let Some(arg) = c.args.get(op.mask_arg) else { return };
                if arg.ident.as_deref() != Some(mask) {
                    return;
                }
                let cpu_local = op.cpu_arg.and_then(|i| c.args.get(i)).and_then(|a| {
                    let t = a.text.trim();
                    if locals.contains(t) {
                        Some(t.to_string())
                    } else {
                        None
                    }
                });
                out.push(MaskOp { file, func, call: c, function: name.clone(), kind: op.op, cpu_local });
            });
        }
    }
    out
}

/// Whether an indexed op uses the current CPU.
fn indexed_by_current_cpu(input: &TransformInput<'_>, op: &MaskOp<'_>) -> bool {
    if op.cpu_local.is_some() {
        return true;
    }
    let Some(spec) = input.api.cpumask_op(&op.function) else { return false };
    let Some(arg) = spec.cpu_arg.and_then(|i| op.call.args.get(i)) else { return false };
    let t = arg.text.trim();
    t.strip_suffix("()").is_some_and(|c| input.api.is_current_cpu_call(c.trim()))
}

fn is_common(path: &str) -> bool {
    !path.starts_with("arch/")
}

/// The cpumask to convert.
fn find_mask(input: &TransformInput<'_>) -> Result<String, Refusal> {
    let masks: BTreeSet<String> = input
        .tree
        .files
        .iter()
        .filter(|f| is_common(&f.path))
        .flat_map(|f| f.globals.iter())
        .filter(|g| !g.is_extern && input.api.is_cpumask_type(&g.type_text))
        .map(|g| g.name.clone())
        .collect();
    let mut named: BTreeSet<String> = input
        .findings
        .findings
        .iter()
        .filter(|f| f.rule == "HW005")
        .flat_map(|f| f.symbols.iter())
        .filter(|s| masks.contains(*s))
        .cloned()
        .collect();
    if named.is_empty() {
        for m in &masks {
            let ops = mask_ops(input, m);
            let indexed: Vec<&MaskOp<'_>> = ops
                .iter()
                .filter(|o| matches!(o.kind, CpumaskOpKind::Test | CpumaskOpKind::Set | CpumaskOpKind::Clear))
                .collect();
            let others = ops.iter().any(|o| o.kind == CpumaskOpKind::Whole);
            if !indexed.is_empty() && !others && indexed.iter().all(|o| indexed_by_current_cpu(input, o)) {
                named.insert(m.clone());
            }
        }
    }
    match named.len() {
        1 => Ok(named.into_iter().next().unwrap_or_default()),
        0 => Err(refuse(
            "no global cpumask indexed by the current CPU: no HW005 finding, and no global cpumask of common code \
             is only tested, set and cleared for the CPU the code runs on (the state is already per-CPU)",
        )),
        _ => Err(refuse(format!(
            "several global cpumasks are indexed only by the current CPU ({}); convert them one at a time",
            named.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The statement (at any depth) whose span holds `pos`, with the block
/// holding it and its index there.
fn stmt_holding(block: &Block, pos: usize) -> Option<(&Block, usize)> {
    for (i, s) in block.stmts.iter().enumerate() {
        let sp = stmt_span(s);
        if !((sp.start as usize) <= pos && pos < sp.end as usize) {
            continue;
        }
        let inner: Vec<&Block> = match s {
            Stmt::Block(b) => vec![b],
            Stmt::If { then_branch, else_branch, cond, .. } => {
                // A call in the condition belongs to the `if` itself.
                if cond
                    .iter()
                    .any(|e| matches!(e, Event::Call(c) if (c.span.start as usize) <= pos && pos < c.span.end as usize))
                {
                    return Some((block, i));
                }
                let mut v = vec![then_branch];
                v.extend(else_branch.iter());
                v
            }
            Stmt::Loop { body, .. } | Stmt::Switch { body, .. } | Stmt::ScopedGuard { body, .. } => vec![body],
            Stmt::Preproc { branches, .. } => branches.iter().map(|b| &b.body).collect(),
            _ => Vec::new(),
        };
        for b in inner {
            if let Some(hit) = stmt_holding(b, pos) {
                return Some(hit);
            }
        }
        return Some((block, i));
    }
    None
}

fn is_blank_line(src: &[u8], start: usize) -> bool {
    let end = line_end_incl(src, start);
    start < src.len() && src[start..end].iter().all(|b| b.is_ascii_whitespace())
}

/// Delete whole lines `start..end`, and the blank line after them when the
/// line before is blank or opens a block (no double blank lines, no blank
/// line after `{`).
fn delete_lines(path: &str, src: &[u8], start: usize, end: usize) -> Edit {
    let (s, e) = whole_lines(src, start, end);
    let prev_blank_or_open = s == 0 || {
        let ps = line_start(src, s - 1);
        let prev = text_of(src, ps, s);
        prev.trim().is_empty() || prev.trim_end().ends_with('{')
    };
    let e = if prev_blank_or_open && is_blank_line(src, e) { line_end_incl(src, e) } else { e };
    Edit::delete(path, s, e)
}

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let mask = find_mask(input)?;
    let new = percpu_name(&mask);
    let Some((decl_file, decl)) = input
        .tree
        .files
        .iter()
        .filter(|f| is_common(&f.path))
        .find_map(|f| f.globals.iter().find(|g| g.name == mask && !g.is_extern).map(|g| (f, g)))
    else {
        return Err(refuse(format!("`{mask}` is not defined in common code")));
    };
    // The new name must be free.
    for f in &input.tree.files {
        let taken = f.globals.iter().any(|g| g.name == new)
            || f.functions.iter().any(|g| g.name == new)
            || f.prototypes.iter().any(|g| g.name == new);
        if taken {
            return Err(refuse(format!("`{new}`, the per-CPU name for `{mask}`, is already used in {}", f.path)));
        }
    }
    let dsrc = file_bytes(input.tree, &decl_file.path);
    if !ident_uses(dsrc, 0, dsrc.len(), &new).is_empty() {
        return Err(refuse(format!("`{new}`, the per-CPU name for `{mask}`, is already used in {}", decl_file.path)));
    }

    let ops = mask_ops(input, &mask);
    let mut edits: Vec<Edit> = Vec::new();
    let mut handled: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    handled.entry(decl_file.path.clone()).or_default().insert(decl.name_span.start as usize);
    // Replaced call spans per function (for the unused-local check).
    let mut replaced: BTreeMap<(String, usize), Vec<(usize, usize)>> = BTreeMap::new();
    let mut cpu_locals: BTreeMap<(String, usize), (String, &Function)> = BTreeMap::new();
    let mut users: BTreeSet<String> = BTreeSet::new();
    for op in &ops {
        let src = file_bytes(input.tree, &op.file.path);
        let arg = &op.call.args[input.api.cpumask_op(&op.function).map(|s| s.mask_arg).unwrap_or(0)];
        handled
            .entry(op.file.path.clone())
            .or_default()
            .insert(arg.span.start as usize + arg.text.find(mask.as_str()).unwrap_or(0));
        let (cs, ce) = (op.call.span.start as usize, op.call.span.end as usize);
        let key = (op.file.path.clone(), op.func.span.start as usize);
        let new_call = match (op.kind, op.function.as_str()) {
            (CpumaskOpKind::Test, "cpumask_test_cpu") => format!("__this_cpu_read({new})"),
            (CpumaskOpKind::Set, "cpumask_set_cpu") => format!("__this_cpu_write({new}, true)"),
            (CpumaskOpKind::Clear, "cpumask_clear_cpu") => format!("__this_cpu_write({new}, false)"),
            (CpumaskOpKind::Alloc | CpumaskOpKind::Free, _) => String::new(),
            _ => {
                return Err(refuse(format!(
                    "{}() ({}:{}) uses `{}()` on `{mask}`, which has no per-CPU equivalent here",
                    op.func.name, op.file.path, op.call.span.line, op.function
                )))
            }
        };
        if !new_call.is_empty() {
            if !indexed_by_current_cpu(input, op) {
                return Err(refuse(format!(
                    "{}() ({}:{}) indexes `{mask}` by a CPU other than the current one",
                    op.func.name, op.file.path, op.call.span.line
                )));
            }
            edits.push(Edit::replace(&op.file.path, cs, ce, new_call));
            replaced.entry(key.clone()).or_default().push((cs, ce));
            if let Some(l) = &op.cpu_local {
                cpu_locals.insert(key, (l.clone(), op.func));
            }
            users.insert(op.func.name.clone());
            continue;
        }
        // Allocation and free: whole statements go.
        let Some((block, i)) = stmt_holding(&op.func.body, cs) else {
            return Err(refuse(format!(
                "{}:{}: cannot find the statement of `{}()`",
                op.file.path, op.call.span.line, op.function
            )));
        };
        let stmt = &block.stmts[i];
        let sp = stmt_span(stmt);
        match (op.kind, stmt) {
            (CpumaskOpKind::Alloc, Stmt::If { then_branch, else_branch: None, .. }) => {
                fn only_unwind(b: &Block) -> bool {
                    b.stmts.iter().all(|s| match s {
                        Stmt::Goto { .. } => true,
                        Stmt::Block(inner) => only_unwind(inner),
                        Stmt::Simple { events, .. } => !events.iter().any(|e| matches!(e, Event::Call(_))),
                        _ => false,
                    })
                }
                if !only_unwind(then_branch) {
                    return Err(refuse(format!(
                        "{}:{}: the failure branch of `{}()` does more than set the error and jump",
                        op.file.path, op.call.span.line, op.function
                    )));
                }
                edits.push(delete_lines(&op.file.path, src, sp.start as usize, sp.end as usize));
            }
            (CpumaskOpKind::Free, Stmt::Simple { events, .. })
                if events.iter().filter(|e| matches!(e, Event::Call(_))).count() == 1 =>
            {
                edits.push(delete_lines(&op.file.path, src, sp.start as usize, sp.end as usize));
                // A label left empty falls through to the next one: drop it
                // and send its gotos there.
                let prev_label = i.checked_sub(1).and_then(|p| match &block.stmts[p] {
                    Stmt::Label { name, span } => Some((name.clone(), *span)),
                    _ => None,
                });
                let next_label = match block.stmts.get(i + 1) {
                    Some(Stmt::Label { name, .. }) => Some(name.clone()),
                    _ => None,
                };
                if let (Some((label, lspan)), Some(next)) = (prev_label, next_label) {
                    let (ls, le) = whole_lines(src, lspan.start as usize, lspan.end as usize);
                    edits.push(Edit::delete(&op.file.path, ls, le));
                    let mut gs = Vec::new();
                    gotos_to(&op.func.body, &label, &mut gs);
                    for g in gs {
                        let gt = text_of(src, g.start as usize, g.end as usize);
                        let Some(at) = gt.rfind(label.as_str()) else { continue };
                        let s = g.start as usize + at;
                        edits.push(Edit::replace(&op.file.path, s, s + label.len(), next.clone()));
                    }
                }
            }
            _ => {
                return Err(refuse(format!(
                    "{}:{}: `{}()` is not in a shape this transformation removes (expected `if (!{}(...)) {{ ... goto \
                     ...; }}` for the allocation and a statement of its own for the free)",
                    op.file.path, op.call.span.line, op.function, op.function
                )))
            }
        }
    }
    if users.is_empty() {
        return Err(refuse(format!("`{mask}` is never tested, set or cleared")));
    }

    // Locals holding the current CPU that are no longer used.
    for ((path, _), (local, func)) in &cpu_locals {
        let src = file_bytes(input.tree, path);
        let body = &func.body_span;
        let spans = &replaced[&(path.clone(), func.span.start as usize)];
        let mut decl_stmt: Option<analyzer::facts::Span> = None;
        for s in &func.body.stmts {
            if let Stmt::Simple { span, events, .. } = s {
                if events.iter().any(|e| matches!(e, Event::LocalAssign(l) if &l.name == local))
                    && is_declaration(&text_of(src, span.start as usize, span.end as usize))
                {
                    decl_stmt = Some(*span);
                }
            }
        }
        let Some(d) = decl_stmt else { continue };
        let still_used = ident_uses(src, body.start as usize, body.end as usize, local).into_iter().any(|at| {
            !(d.start as usize..d.end as usize).contains(&at) && !spans.iter().any(|&(s, e)| s <= at && at < e)
        });
        let dtext = text_of(src, d.start as usize, d.end as usize);
        // Only `int cpu = raw_smp_processor_id();`, one declarator.
        if !still_used && !dtext.contains(',') {
            edits.push(delete_lines(path, src, d.start as usize, d.end as usize));
        }
    }

    // The declaration.
    let (ds, de) = (decl.span.start as usize, decl.span.end as usize);
    let decl_text = text_of(dsrc, ds, de);
    let stat = if decl.is_static || decl_text.trim_start().starts_with("static") { "static " } else { "" };
    let (ls, le) = whole_lines(dsrc, ds, de);
    let line = text_of(dsrc, ls, le);
    if line.trim() != decl_text.trim() && !line.trim().ends_with(';') {
        return Err(refuse(format!(
            "{}:{}: the declaration of `{mask}` shares its line",
            decl_file.path, decl.span.line
        )));
    }
    edits.push(Edit::replace(&decl_file.path, ls, le, format!("{stat}DEFINE_PER_CPU(bool, {new});\n")));

    // Nothing else may refer to the mask.
    for f in &input.tree.source.files {
        if !(f.path.ends_with(".c") || f.path.ends_with(".h")) {
            continue;
        }
        for at in ident_uses(&f.bytes, 0, f.bytes.len(), &mask) {
            if !handled.get(&f.path).is_some_and(|h| h.contains(&at)) {
                let line = f.bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(refuse(format!(
                    "{}:{line} refers to `{mask}` in a way this transformation does not rewrite",
                    f.path
                )));
            }
        }
    }

    let removes: Vec<String> = input
        .findings
        .findings
        .iter()
        .filter(|f| f.rule == "HW005" && f.symbols.iter().any(|s| s == &mask))
        .map(|f| f.fingerprint.clone())
        .collect();
    let users = and_list(&users.into_iter().map(|u| format!("{u}()")).collect::<Vec<_>>());
    let mut body = format!(
        "Use a per-CPU bool, `{new}`, instead of the global cpumask `{mask}` to \
         track which CPUs have enabled hardware virtualization.\n\n\
         `{mask}` is only ever tested, set and cleared for the CPU the code is \
         running on ({users}), so a global mask buys nothing: it has to be \
         allocated when KVM is loaded, with an error path of its own, and freed \
         on exit, and every CPU writes the same cache lines. A per-CPU variable, \
         like arm64's kvm_arm_hardware_enabled, does the job with \
         __this_cpu_read() and __this_cpu_write() and needs no allocation.\n\n\
         Drop the allocation, the frees and the error label that only freed the \
         mask; the remaining labels still unwind exactly what was done.\n\n"
    );
    if !removes.is_empty() {
        body.push_str(&format!("Removes: HW005 current-cpu-cpumask (`{mask}`).\n"));
    }
    Ok(Change {
        subject: "KVM: Use a per-CPU variable to track which CPUs have enabled virtualization".to_string(),
        body: wrap(body.trim_end(), 72),
        edits,
        removes,
    })
}

#[cfg(test)]
mod tests {
    use super::percpu_name;

    #[test]
    fn names_drop_the_set_words() {
        assert_eq!(percpu_name("cpus_hardware_enabled"), "hardware_enabled");
        assert_eq!(percpu_name("virt_on_cpus"), "virt_on");
        assert_eq!(percpu_name("enabled_mask"), "enabled");
        assert_eq!(percpu_name("enabled"), "enabled_this_cpu");
    }
}
