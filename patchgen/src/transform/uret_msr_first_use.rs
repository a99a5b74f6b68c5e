//! Series step 1: snapshot the user-return MSRs on first use.
//!
//! The arch enable hook calls a function that reads host MSRs
//! (`rdmsrl_safe()`, a state read of the API model) into per-CPU data; the
//! hook runs from the IPI that enables virtualization on all CPUs, where it
//! may interrupt a running guest (HW002). The transformation finds, through
//! the model:
//! - the snapshot function: arch code reachable from IPI context that makes
//!   a state read and takes its per-CPU pointer from a per-CPU accessor
//!   (`per_cpu_ptr(user_return_msrs, cpu)`);
//! - the per-CPU struct type (the type of that per-CPU variable) and its
//!   definition;
//! - the write path: the other functions taking the same per-CPU pointer
//!   that run in process context and never from the IPI
//!   (`kvm_set_user_return_msr()`), all reached with preemption disabled so
//!   the snapshot reads the MSRs of the CPU whose struct it fills;
//! - the enable hook: the callers of the snapshot function.
//!
//! It adds an `initialized` flag to the struct, makes the snapshot take the
//! struct and set the flag, calls it from the write path when the flag is
//! clear, and drops the call from the enable hook (upstream's later shape,
//! "KVM: x86: Drop kvm_user_return_msr_cpu_online()").

use analyzer::contexts::Analysis;
use analyzer::enable_path::is_arch_path;
use analyzer::facts::{Event, Stmt};
use analyzer::graph::{type_tag, FnId};
use analyzer::locks::LockState;
use analyzer::rules::queries::atomic_reason;

use super::util::{
    alone_on_lines, file_bytes, ident_uses, indent_at, is_declaration, line_end_incl, line_start, matching_paren,
    simple_events, stmt_span, struct_body, text_of, whole_lines, wrap,
};
use super::{Change, Refusal, TransformInput};
use crate::edit::Edit;

pub const SLUG: &str = "uret-msr-first-use";
const NAME: &str = "x86: snapshot user-return MSRs on first use";

/// The context whose callbacks may interrupt a running guest (API model key).
const IPI_CONTEXT: &str = "ipi";
/// The flag added to the per-CPU struct.
const FLAG: &str = "initialized";

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal { transformation: NAME, reason: reason.into() }
}

/// A top-level statement `T *local = accessor(var, cpu);` of a function.
struct PercpuPtr {
    stmt: usize,
    local: String,
    var: String,
    /// The CPU argument's identifier, when it is a local.
    cpu_ident: Option<String>,
}

fn percpu_ptr(a: &Analysis<'_>, id: FnId) -> Option<PercpuPtr> {
    let func = a.program.func(id);
    for (i, s) in func.body.stmts.iter().enumerate() {
        let events = simple_events(s);
        for (k, e) in events.iter().enumerate() {
            let Event::Call(c) = e else { continue };
            let analyzer::facts::Callee::Direct(name) = &c.callee else { continue };
            let Some(acc) = a.api.percpu_accessor(name) else { continue };
            let Some(var) = c.args.get(acc.var_arg).and_then(|x| x.ident.clone()) else { continue };
            if !a.program.globals.contains_key(var.as_str()) {
                continue;
            }
            let local = events[k + 1..].iter().find_map(|e| match e {
                Event::LocalAssign(l) if l.value_call.as_deref() == Some(name.as_str()) => Some(l.name.clone()),
                _ => None,
            });
            let Some(local) = local else { continue };
            let cpu_ident = acc.cpu_arg.and_then(|ci| c.args.get(ci)).and_then(|x| x.ident.clone());
            return Some(PercpuPtr { stmt: i, local, var, cpu_ident });
        }
    }
    None
}

/// Whether `id` reads host state (a state read of the API model) into the
/// struct its per-CPU pointer `local` points to: directly (`&local->x`) or
/// through a local stored there (`rdmsrl_safe(msr, &value); local->x = value;`).
fn snapshots_into(a: &Analysis<'_>, id: FnId, local: &str) -> bool {
    let into_local = |t: &str| {
        let t = t.trim().trim_start_matches('&').trim_start_matches('(').trim();
        t == local || t.starts_with(&format!("{local}->")) || t.starts_with(&format!("{local}."))
    };
    let mut dests: Vec<String> = Vec::new();
    let mut stored: Vec<(String, String)> = Vec::new();
    let mut direct = false;
    analyzer::graph::visit_events(&a.program.func(id).body.stmts, &mut |e| match e {
        Event::Call(c) => {
            let analyzer::facts::Callee::Direct(n) = &c.callee else { return };
            let Some(sr) = a.api.state_read(n) else { return };
            let Some(d) = c.args.get(sr.dest_arg) else { return };
            if into_local(&d.text) {
                direct = true;
            } else if let Some(i) = &d.ident {
                dests.push(i.clone());
            }
        }
        Event::FieldAssign(fa) => {
            if let Some(v) = &fa.value_ident {
                stored.push((fa.base.clone(), v.clone()));
            }
        }
        _ => {}
    });
    direct || stored.iter().any(|(base, v)| into_local(base) && dests.contains(v))
}

fn exported(a: &Analysis<'_>, id: FnId) -> bool {
    let name = &a.program.func(id).name;
    a.program.file(id).top_level_macros.iter().any(|m| {
        m.name.starts_with("EXPORT_SYMBOL") && m.args.iter().any(|x| x.ident.as_deref() == Some(name.as_str()))
    })
}

fn in_ipi(a: &Analysis<'_>, id: FnId) -> bool {
    a.reaches(id).iter().any(|r| r.key.context == IPI_CONTEXT)
}

/// `foo_cpu_online` -> `foo_init_cpu`: the snapshot no longer runs when a
/// CPU comes online. Names that do not say so are kept.
fn init_name(old: &str) -> String {
    for suffix in ["_cpu_online", "_online", "_cpu_up", "_cpu_starting"] {
        if let Some(stem) = old.strip_suffix(suffix) {
            return format!("{stem}_init_cpu");
        }
    }
    old.to_string()
}

struct Found<'a> {
    a: Analysis<'a>,
    snapshot: FnId,
    ptr: PercpuPtr,
}

fn find<'a>(input: &'a TransformInput<'a>) -> Result<Found<'a>, Refusal> {
    for arch in input.tree.arches() {
        let a = input.tree.analyze(arch.as_deref(), input.api);
        let mut hits: Vec<(FnId, PercpuPtr)> = Vec::new();
        for &id in &a.program.functions {
            if !is_arch_path(&a.program.file(id).path) || !in_ipi(&a, id) {
                continue;
            }
            if let Some(p) = percpu_ptr(&a, id).filter(|p| snapshots_into(&a, id, &p.local)) {
                hits.push((id, p));
            }
        }
        match hits.len() {
            0 => continue,
            1 => {
                let (snapshot, ptr) = hits.pop().expect("one hit");
                return Ok(Found { a, snapshot, ptr });
            }
            _ => {
                let names: Vec<String> = hits.iter().map(|(id, _)| format!("{}()", a.program.func(*id).name)).collect();
                return Err(refuse(format!(
                    "several per-CPU state snapshots are reachable from IPI context ({}); expected one",
                    names.join(", ")
                )));
            }
        }
    }
    Err(refuse("no user-return MSR snapshot is reachable from IPI context (no arch function reached from an IPI reads host state into per-CPU data)"))
}

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let Found { a, snapshot, ptr } = find(input)?;
    let tree = input.tree;
    let p = &a.program;
    let s_func = p.func(snapshot);
    let s_path = p.file(snapshot).path.clone();
    let src = file_bytes(tree, &s_path);
    if !s_func.is_static {
        return Err(refuse(format!("{}() is not static: callers outside {s_path} cannot be checked", s_func.name)));
    }

    // The per-CPU struct and its definition.
    let var_global = p.globals.get(ptr.var.as_str()).and_then(|g| g.first()).map(|(_, g)| *g);
    let Some(var_global) = var_global else { return Err(refuse(format!("per-CPU `{}` is not a global", ptr.var))) };
    let tag = type_tag(&var_global.type_text).to_string();
    let mut struct_at = None;
    let var_file = p.files[p.globals[ptr.var.as_str()][0].0 as usize].path.clone();
    let mut paths: Vec<String> = vec![var_file.clone()];
    paths.extend(p.in_scope.iter().map(|&fi| p.files[fi as usize].path.clone()).filter(|x| *x != var_file));
    for path in paths {
        if let Some(b) = struct_body(file_bytes(tree, &path), &tag) {
            struct_at = Some((path, b));
            break;
        }
    }
    let Some((struct_path, (open, close))) = struct_at else {
        return Err(refuse(format!(
            "the definition of struct {tag} (type of per-CPU `{}`) is not in the tree",
            ptr.var
        )));
    };
    let sbytes = file_bytes(tree, &struct_path);
    if !ident_uses(sbytes, open, close, FLAG).is_empty() {
        return Err(refuse(format!("struct {tag} already has a member `{FLAG}`")));
    }

    // The write path: process-context users of the same per-CPU data.
    let mut writers: Vec<(FnId, PercpuPtr)> = Vec::new();
    for &id in &p.functions {
        if id == snapshot || in_ipi(&a, id) {
            continue;
        }
        // Unreached here: only an exported function, called by other
        // modules (vendor modules), is a user.
        if a.reaches(id).is_empty() && !exported(&a, id) {
            continue;
        }
        let atomic_only = !a.reaches(id).is_empty()
            && a.reaches(id).iter().all(|r| a.api.context(&r.key.context).is_some_and(|c| c.atomic));
        if atomic_only {
            continue;
        }
        if let Some(wp) = percpu_ptr(&a, id).filter(|wp| wp.var == ptr.var) {
            writers.push((id, wp));
        }
    }
    if writers.is_empty() {
        return Err(refuse(format!(
            "no process-context user of per-CPU `{}` to take the snapshot on first use",
            ptr.var
        )));
    }
    let all_reached = writers.iter().all(|(w, _)| !a.reaches(*w).is_empty());
    for (w, _) in &writers {
        let wf = p.func(*w);
        if p.file(*w).path != s_path || wf.span.start < s_func.span.start {
            return Err(refuse(format!(
                "{}() must be defined after {}() in {s_path} to call it",
                wf.name, s_func.name
            )));
        }
        // The snapshot reads the MSRs of the CPU it runs on: the writer
        // must not migrate between taking its per-CPU pointer and the reads.
        if let Some(r) = a.reaches(*w).iter().find(|r| atomic_reason(a.api, r, &LockState::default()).is_none()) {
            let path: Vec<String> = a
                .witness(*w, a.reaches(*w).iter().position(|x| std::ptr::eq(x, r)).unwrap_or(0), None)
                .iter()
                .map(|s| format!("{}()", s.function))
                .collect();
            return Err(refuse(format!(
                "{}() may run preemptible ({}), so a snapshot there could read another CPU's MSRs",
                wf.name,
                path.join(" -> ")
            )));
        }
    }

    // The enable hook: the snapshot's callers, all reached from the IPI.
    let callers = p.callers.get(&snapshot).cloned().unwrap_or_default();
    if callers.is_empty() {
        return Err(refuse(format!("{}() has no caller", s_func.name)));
    }
    let new_name = init_name(&s_func.name);
    if new_name != s_func.name && !p.lookup_any(&new_name).is_empty() {
        return Err(refuse(format!("{new_name}() already exists")));
    }

    let mut edits = Vec::new();
    // 1. The flag, after the struct's last `bool` member (or at its end).
    let body = &sbytes[open..close];
    let mut at = line_start(sbytes, close);
    let mut indent = "\t".to_string();
    let mut depth = 0i32;
    let mut k = open;
    for line in body.split_inclusive(|&b| b == b'\n') {
        let t = String::from_utf8_lossy(line);
        if depth == 1 && t.trim_start().starts_with("bool ") && t.trim_end().ends_with(';') {
            at = k + line.len();
            indent = indent_at(sbytes, k);
        }
        depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
        k += line.len();
    }
    edits.push(Edit::insert(&struct_path, at, format!("{indent}bool {FLAG};\n")));

    // 2. The snapshot takes the struct and sets the flag.
    let decl = &s_func.body.stmts[ptr.stmt];
    let dspan = stmt_span(decl);
    let dtext = text_of(src, dspan.start as usize, dspan.end as usize);
    let param = dtext.split('=').next().unwrap_or("").trim().to_string();
    if !is_declaration(&dtext) || !param.ends_with(&ptr.local) {
        return Err(refuse(format!("{}() does not declare its per-CPU pointer as `T *{}`", s_func.name, ptr.local)));
    }
    let name_start = s_func.name_span.start as usize;
    let Some(close_paren) = matching_paren(src, s_func.name_span.end as usize) else {
        return Err(refuse(format!("cannot read the parameters of {}()", s_func.name)));
    };
    edits.push(Edit::replace(&s_path, name_start, close_paren + 1, format!("{new_name}({param})")));
    let (ds, de) = whole_lines(src, dspan.start as usize, dspan.end as usize);
    edits.push(Edit::delete(&s_path, ds, de));
    if let Some(cpu) = &ptr.cpu_ident {
        // Drop the CPU local too when the pointer was its only use.
        let bs = s_func.body_span.start as usize;
        let be = s_func.body_span.end as usize;
        let uses = ident_uses(src, bs, be, cpu);
        let decl_of_cpu = s_func.body.stmts.iter().find(|s| {
            simple_events(s).iter().any(|e| matches!(e, Event::LocalAssign(l) if &l.name == cpu))
                && is_declaration(&text_of(src, stmt_span(s).start as usize, stmt_span(s).end as usize))
        });
        if let Some(cs) = decl_of_cpu {
            let sp = stmt_span(cs);
            let outside = uses
                .iter()
                .filter(|&&u| !(sp.start as usize..sp.end as usize).contains(&u) && !(ds..de).contains(&u))
                .count();
            if outside == 0 {
                let (cs0, ce0) = whole_lines(src, sp.start as usize, sp.end as usize);
                edits.push(Edit::delete(&s_path, cs0, ce0));
            }
        }
    }
    if matches!(s_func.body.stmts.last(), Some(Stmt::Return { .. })) {
        return Err(refuse(format!("{}() ends with a return statement", s_func.name)));
    }
    let body_close = s_func.body_span.end as usize - 1;
    let inner = indent_at(src, dspan.start as usize);
    edits.push(Edit::insert(&s_path, line_start(src, body_close), format!("\n{inner}{}->{FLAG} = true;\n", ptr.local)));

    // 3. The write path snapshots on first use, after its declarations.
    let mut writer_names = Vec::new();
    for (w, wp) in &writers {
        let wf = p.func(*w);
        writer_names.push(format!("{}()", wf.name));
        let first_code = wf.body.stmts.iter().skip(wp.stmt + 1).find(|s| {
            let sp = stmt_span(s);
            !is_declaration(&text_of(src, sp.start as usize, sp.end as usize))
        });
        let Some(first_code) = first_code else {
            return Err(refuse(format!("{}() has no statement after its declarations", wf.name)));
        };
        let pos = line_start(src, stmt_span(first_code).start as usize);
        let ind = indent_at(src, pos);
        let before_blank = pos >= 2 && src[..pos - 1].ends_with(b"\n");
        let lead = if before_blank { "" } else { "\n" };
        edits.push(Edit::insert(
            &s_path,
            pos,
            format!("{lead}{ind}if (!{l}->{FLAG})\n{ind}\t{new_name}({l});\n\n", l = wp.local),
        ));
    }

    // 4. The enable hook no longer snapshots.
    let mut hooks = Vec::new();
    for (c, ei) in &callers {
        let cf = p.func(*c);
        if !in_ipi(&a, *c) {
            return Err(refuse(format!(
                "{}() also calls {}() outside the IPI-reachable enable path",
                cf.name, s_func.name
            )));
        }
        let site = p.calls[c][*ei].site;
        let cpath = &p.file(*c).path;
        let cb = file_bytes(tree, cpath);
        let (ss, se) = (site.span.start as usize, site.span.end as usize);
        if cb.get(se) != Some(&b';') || !alone_on_lines(cb, ss, se + 1) {
            return Err(refuse(format!(
                "the call of {}() in {}() is not a statement of its own",
                s_func.name, cf.name
            )));
        }
        let (ls, mut le) = whole_lines(cb, ss, se + 1);
        // Keep one blank line where the call separated two blank lines, and
        // none right after an opening brace.
        let prev_blank = ls >= 2 && cb[..ls - 1].ends_with(b"\n");
        let next_blank = cb.get(le) == Some(&b'\n');
        if next_blank && (prev_blank || cb[..ls].ends_with(b"{\n")) {
            le = line_end_incl(cb, le);
        }
        edits.push(Edit::delete(cpath, ls, le));
        hooks.push(format!("{}()", cf.name));
    }

    let removes: Vec<String> = input
        .findings
        .findings
        .iter()
        .filter(|f| f.rule == "HW002")
        .filter(|f| {
            f.function == s_func.name
                || f.symbols.contains(&ptr.var)
                || f.evidence.iter().any(|st| st.function == s_func.name)
        })
        .map(|f| f.fingerprint.clone())
        .collect();
    // HW003 is not claimed: the hook keeps its other concerns (the VM-list
    // fix-up), so its finding stays, one concern less.
    let _ = &callers;

    let arch = p.arch.clone().unwrap_or_default();
    let subject = format!("KVM: {arch}: Snapshot user-return MSRs on first use");
    let hook = hooks.join(", ");
    let writers_s = writer_names.join(", ");
    let body = wrap(
        &format!(
            "{hook} calls {s}() to snapshot the host values of the user-return MSRs into the per-CPU \
             struct {tag} (`{var}`). The hook runs from the IPI that enables virtualization on all CPUs \
             (on_each_cpu()), so the snapshot is taken in IRQ context, where the IPI may interrupt a \
             running guest, e.g. one of an out-of-tree hypervisor, and KVM would then record guest values \
             as the host's. The snapshot has nothing to do with enabling virtualization: it is needed only \
             before KVM loads the first guest value of a user-return MSR on a CPU.\n\n\
             Snapshot on first use instead: add a flag to struct {tag}, let {writers_s} take the snapshot \
             through {new}() when the flag is clear, and drop the call from the enable hook. {writers_s} \
             {preempt}, so the snapshot reads the MSRs of the CPU whose struct it fills.\n\n\
             This removes HW002 (irq-state-snapshot: {s}() reads host MSRs into per-CPU `{var}` in code \
             reachable from IPI context) and leaves the hardware-enable hook one concern less (HW003).",
            s = s_func.name,
            var = ptr.var,
            new = new_name,
            preempt = if all_reached {
                "runs with preemption disabled on every path"
            } else {
                "is called by other modules with preemption disabled, as its smp_processor_id() requires"
            },
        ),
        72,
    );
    Ok(Change { subject, body, edits, removes })
}
