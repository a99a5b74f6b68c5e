//! Series step 2: move the common hotplug callbacks from the STARTING to
//! the ONLINE section.
//!
//! The common code registers a hotplug state whose section, read from the
//! tree's `cpuhotplug.h`, is STARTING: its callbacks run on the incoming CPU
//! with interrupts disabled, so they cannot sleep (the lock they take must
//! be a raw spinlock, HW006's premise) and cannot fail (an enable failure
//! on the incoming CPU is swallowed). The transformation finds, through the
//! model:
//! - the registration: the common roots in context `cpuhp_starting` with
//!   roles startup/teardown and the call that registered them;
//! - the state in `enum cpuhp_state` (facts of `cpuhotplug.h`) and the
//!   place of the new one, right after the hotplug core's idle-thread state
//!   (the first ONLINE-section state run on the incoming CPU);
//! - the enable primitive the startup callback calls, and the `atomic_t`
//!   failure counter it increments when enabling fails.
//!
//! It replaces the state by an ONLINE one (`_STARTING` -> `_ONLINE`),
//! renames the callbacks (`starting` -> `online`, `dying` -> `offline`),
//! the registration name (`"kvm/cpu:starting"` -> `"kvm/cpu:online"`) and
//! every use of the state (removal sites), and lets the online callback
//! fail with -EIO (upstream commit aaf12a7b4323's shape).

use analyzer::contexts::Analysis;
use analyzer::enable_path::{is_arch_path, EnablePath};
use analyzer::facts::{Block, CallSite, Callee, Event, Stmt};
use analyzer::graph::FnId;
use analyzer::kernel_docs::cpuhotplug::CpuhpSection;
use analyzer::pipeline::CPUHOTPLUG_H;

use super::util::{
    file_bytes, ident_uses, indent_at, line_end_incl, line_start, matching_paren, stmt_span, text_of, whole_lines, wrap,
};
use super::{Change, Refusal, TransformInput};
use crate::edit::Edit;

pub const SLUG: &str = "cpuhp-online";
const NAME: &str = "move hotplug callbacks to the ONLINE section";

/// The hotplug core's state after which the incoming CPU runs its idle
/// thread: the first ONLINE-section state whose callbacks run on the
/// incoming CPU (upstream put KVM's state right after it).
const ONLINE_ANCHOR: &str = "CPUHP_AP_ONLINE_IDLE";
const STARTING_CTX: &str = "cpuhp_starting";
const ONLINE_CTX: &str = "cpuhp_online";

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal { transformation: NAME, reason: reason.into() }
}

/// Replace the `_`-separated word `from` by `to` in an identifier or string.
fn rename_word(name: &str, from: &str, to: &str) -> String {
    let parts: Vec<&str> = name.split(['_', ':', '/', '"']).collect();
    if !parts.contains(&from) {
        return name.to_string();
    }
    let mut out = String::new();
    let mut word = String::new();
    for c in name.chars() {
        if c == '_' || c == ':' || c == '/' || c == '"' {
            out.push_str(if word == from { to } else { &word });
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(if word == from { to } else { &word });
    out
}

fn callback_name(old: &str) -> String {
    let n = rename_word(old, "starting", "online");
    if n != old {
        return n;
    }
    rename_word(old, "dying", "offline")
}

fn state_name(old: &str) -> Option<String> {
    let i = old.rfind("_STARTING")?;
    Some(format!("{}_ONLINE{}", &old[..i], &old[i + "_STARTING".len()..]))
}

/// The registration call at `span` in function `id`.
fn call_at<'a>(a: &Analysis<'a>, id: FnId, start: u32) -> Option<&'a CallSite> {
    let mut out = None;
    analyzer::graph::visit_calls(&a.program.func(id).body.stmts, &mut |s| {
        if s.span.start == start {
            out = Some(s);
        }
    });
    out
}

/// Where a call statement sits: in a brace-less `if` (the `if` statement)
/// or in a block.
enum Parent<'a> {
    BracelessIf(&'a Stmt),
    Block,
}

fn find_parent(block: &Block, pos: u32) -> Option<Parent<'_>> {
    for s in &block.stmts {
        let sp = stmt_span(s);
        if !(sp.start <= pos && pos < sp.end) {
            continue;
        }
        return match s {
            Stmt::Simple { .. } => Some(Parent::Block),
            Stmt::If { then_branch, else_branch, .. } => {
                if then_branch.span.start <= pos && pos < then_branch.span.end {
                    let braced = then_branch.stmts.len() != 1 || stmt_span(&then_branch.stmts[0]) != then_branch.span;
                    if !braced {
                        return Some(Parent::BracelessIf(s));
                    }
                    find_parent(then_branch, pos)
                } else {
                    else_branch.as_ref().and_then(|b| find_parent(b, pos))
                }
            }
            Stmt::Block(b) => find_parent(b, pos),
            _ => None,
        };
    }
    None
}

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let tree = input.tree;
    let Some(cpuhp) = tree.cpuhp.as_ref() else {
        return Err(refuse(format!("{CPUHOTPLUG_H} is missing or unreadable: hotplug sections are unknown")));
    };
    // The common code's STARTING registration, in the first arch with one.
    let mut chosen = None;
    let mut online_already: Option<String> = None;
    for arch in tree.arches() {
        let a = tree.analyze(arch.as_deref(), input.api);
        let ep = EnablePath::find(&a);
        let starting: Vec<usize> = ep
            .startup_roots
            .iter()
            .copied()
            .filter(|&r| a.roots[r].context == STARTING_CTX && a.roots[r].registered_at.is_some())
            .collect();
        if starting.is_empty() {
            if let Some(&r) = ep.startup_roots.iter().find(|&&r| a.roots[r].context == ONLINE_CTX) {
                let root = &a.roots[r];
                let state = root.origin.split(['(', ')']).nth(1).unwrap_or("?").to_string();
                online_already.get_or_insert(format!("{state}, {}", root.function_name));
            }
            continue;
        }
        chosen = Some((a, ep, starting));
        break;
    }
    let Some((a, ep, starting)) = chosen else {
        return Err(refuse(match online_already {
            Some(what) => {
                format!("the common enable path registers its hotplug callbacks in the ONLINE section already ({what})")
            }
            None => "the common code registers no hotplug callbacks in the STARTING section".to_string(),
        }));
    };
    let p = &a.program;
    let startup_root = &a.roots[starting[0]];
    let (reg_path, reg_span) = startup_root.registered_at.clone().expect("filtered");
    let others: Vec<&str> = starting[1..]
        .iter()
        .filter(|&&r| a.roots[r].registered_at.as_ref().map(|x| x.1) != Some(reg_span))
        .map(|&r| a.roots[r].function_name.as_str())
        .collect();
    if !others.is_empty() {
        return Err(refuse(format!(
            "the common code registers several STARTING-section states ({} and {}); expected one",
            startup_root.function_name,
            others.join(", ")
        )));
    }
    // The registering function and call.
    let reg_fn = p
        .functions
        .iter()
        .copied()
        .find(|&id| p.file(id).path == reg_path && call_at(&a, id, reg_span.start).is_some());
    let Some(reg_fn) = reg_fn else { return Err(refuse("cannot find the hotplug registration call")) };
    let site = call_at(&a, reg_fn, reg_span.start).expect("found");
    let Callee::Direct(reg_name) = &site.callee else { return Err(refuse("indirect registration")) };
    let reg = a.api.registration(reg_name).ok_or_else(|| refuse("unknown registration"))?;
    let state_arg = site.args.get(reg.cpuhp_state_arg.unwrap_or(0)).ok_or_else(|| refuse("no state argument"))?;
    let old_state = state_arg.text.trim().to_string();
    let Some(new_state) = state_name(&old_state) else {
        return Err(refuse(format!("cannot derive an ONLINE state name from `{old_state}` (no `_STARTING`)")));
    };
    if cpuhp.get(&new_state).is_some() {
        return Err(refuse(format!("{new_state} already exists in {CPUHOTPLUG_H}")));
    }
    if cpuhp.section_of(ONLINE_ANCHOR) != Some(CpuhpSection::Online) {
        return Err(refuse(format!("{ONLINE_ANCHOR} is not an ONLINE-section state of {CPUHOTPLUG_H}")));
    }
    // Callbacks: startup and teardown, by role.
    let cb_of = |role: &str| {
        a.roots
            .iter()
            .find(|r| r.registered_at.as_ref().map(|x| x.1) == Some(reg_span) && r.role.as_deref() == Some(role))
            .map(|r| r.function)
    };
    let Some(up) = cb_of("startup") else { return Err(refuse("the registration has no startup callback")) };
    let down = cb_of("teardown");
    let mut renames: Vec<(FnId, String, String)> = Vec::new();
    for id in std::iter::once(up).chain(down) {
        let old = p.func(id).name.clone();
        let new = callback_name(&old);
        if new != old {
            if !p.lookup_any(&new).is_empty() {
                return Err(refuse(format!("{new}() already exists")));
            }
            renames.push((id, old, new));
        }
    }
    let up_new = renames.iter().find(|r| r.0 == up).map(|r| r.2.clone()).unwrap_or_else(|| p.func(up).name.clone());

    // The enable primitive the startup callback calls, and its failure counter.
    let up_fn = p.func(up);
    let up_path = p.file(up).path.clone();
    let src = file_bytes(tree, &up_path);
    let edges = p.calls.get(&up).cloned().unwrap_or_default();
    let Some(edge) =
        edges.iter().find(|e| ep.enable_primitives.contains(&e.callee) && !is_arch_path(&p.file(e.callee).path))
    else {
        return Err(refuse(format!("{}() does not call a per-CPU enable primitive", up_fn.name)));
    };
    let prim = p.func(edge.callee);
    let mut counter = None;
    analyzer::graph::visit_events(&prim.body.stmts, &mut |e| {
        if let Event::Call(c) = e {
            for arg in c.args.iter().filter(|x| x.address_of) {
                let Some(g) = arg.ident.as_deref() else { continue };
                let is_atomic =
                    p.globals.get(g).and_then(|v| v.first()).is_some_and(|(_, g)| g.type_text.trim() == "atomic_t");
                if is_atomic && counter.is_none() {
                    counter = Some(g.to_string());
                }
            }
        }
    });
    let Some(counter) = counter else {
        return Err(refuse(format!(
            "{}() records no failure in an atomic_t counter: cannot tell whether enabling failed on the incoming CPU",
            prim.name
        )));
    };
    if !ident_uses(src, up_fn.body_span.start as usize, up_fn.body_span.end as usize, "ret").is_empty() {
        return Err(refuse(format!("{}() already has a `ret`", up_fn.name)));
    }
    let Some(Stmt::Return { span: ret_span, .. }) = up_fn.body.stmts.last() else {
        return Err(refuse(format!("{}() does not end with a return", up_fn.name)));
    };
    let ret_text = text_of(src, ret_span.start as usize, ret_span.end as usize);
    if ret_text.split_whitespace().collect::<String>() != "return0;" {
        return Err(refuse(format!("{}() does not end with `return 0;`", up_fn.name)));
    }

    let mut edits = Vec::new();
    // The callbacks' names, wherever the facts name them in their file.
    for (id, old, new) in &renames {
        let f = p.func(*id);
        let path = &p.file(*id).path;
        edits.push(Edit::replace(path, f.name_span.start as usize, f.name_span.end as usize, new.clone()));
        let _ = old;
    }
    // The registration: state, name, callbacks.
    for arg in &site.args {
        let t = arg.text.trim();
        let new = if t == old_state {
            Some(new_state.clone())
        } else if t.starts_with('"') {
            Some(rename_word(t, "starting", "online")).filter(|n| n != t)
        } else {
            renames.iter().find(|r| r.1 == t).map(|r| r.2.clone())
        };
        if let Some(n) = new {
            edits.push(Edit::replace(&reg_path, arg.span.start as usize, arg.span.end as usize, n));
        }
    }
    // Other uses of the state (removal sites) in every file.
    let mut removal_sites = 0;
    for f in &tree.files {
        for func in &f.functions {
            analyzer::graph::visit_calls(&func.body.stmts, &mut |c| {
                if f.path == reg_path && c.span == site.span {
                    return;
                }
                for arg in c.args.iter().filter(|x| x.text.trim() == old_state) {
                    edits.push(Edit::replace(
                        &f.path,
                        arg.span.start as usize,
                        arg.span.end as usize,
                        new_state.clone(),
                    ));
                    removal_sites += 1;
                }
            });
        }
    }
    // The enum: drop the STARTING state, add the ONLINE one after the anchor.
    let hfacts = tree.files.iter().find(|f| f.path == CPUHOTPLUG_H);
    let en = hfacts.and_then(|f| f.enums.iter().find(|e| e.enumerators.iter().any(|x| x.name == old_state)));
    let Some(en) = en else {
        return Err(refuse(format!("`{old_state}` is not in enum cpuhp_state of {CPUHOTPLUG_H}")));
    };
    let hsrc = file_bytes(tree, CPUHOTPLUG_H);
    let old_e = en.enumerators.iter().find(|x| x.name == old_state).expect("found");
    let Some(anchor) = en.enumerators.iter().find(|x| x.name == ONLINE_ANCHOR) else {
        return Err(refuse(format!("{ONLINE_ANCHOR} is not in {CPUHOTPLUG_H}")));
    };
    let (ls, le) = whole_lines(hsrc, old_e.span.start as usize, old_e.span.end as usize);
    if text_of(hsrc, ls, le).trim() != format!("{old_state},") {
        return Err(refuse(format!("`{old_state}` does not have a line of its own in {CPUHOTPLUG_H}")));
    }
    edits.push(Edit::delete(CPUHOTPLUG_H, ls, le));
    let anchor_end = line_end_incl(hsrc, anchor.span.start as usize);
    edits.push(Edit::insert(
        CPUHOTPLUG_H,
        anchor_end,
        format!("{}{new_state},\n", indent_at(hsrc, anchor.span.start as usize)),
    ));

    // The online callback may fail.
    let ind = indent_at(src, stmt_span(&up_fn.body.stmts[0]).start as usize);
    let body_open = up_fn.body_span.start as usize;
    edits.push(Edit::insert(
        &up_path,
        line_end_incl(src, body_open),
        format!(
            "{ind}int ret = 0;\n\n\
             {ind}/*\n\
             {ind} * Abort the CPU online process if hardware virtualization cannot\n\
             {ind} * be enabled. Otherwise running VMs would encounter unrecoverable\n\
             {ind} * errors when scheduled to this CPU.\n\
             {ind} */\n"
        ),
    ));
    let call = edge.site;
    let (cs, ce) = (call.span.start as usize, call.span.end as usize);
    if src.get(ce) != Some(&b';') {
        return Err(refuse(format!("the call of {}() is not a statement of its own", prim.name)));
    }
    let call_text = text_of(src, cs, ce);
    let lines = |i: &str| {
        format!("atomic_set(&{counter}, 0);\n{i}{call_text};\n{i}if (atomic_read(&{counter}))\n{i}\tret = -EIO;")
    };
    match find_parent(&up_fn.body, call.span.start) {
        Some(Parent::BracelessIf(Stmt::If { span, then_branch, .. })) => {
            let if_ind = indent_at(src, span.start as usize);
            let Some(cond_close) = matching_paren(src, span.start as usize) else {
                return Err(refuse("cannot read the `if` around the enable call"));
            };
            let inner = format!("{if_ind}\t");
            edits.push(Edit::replace(
                &up_path,
                cond_close + 1,
                then_branch.span.end as usize,
                format!(" {{\n{inner}{}\n{if_ind}}}", lines(&inner)),
            ));
        }
        Some(Parent::Block) => {
            let i = indent_at(src, cs);
            edits.push(Edit::replace(&up_path, cs, ce + 1, lines(&i)));
        }
        _ => return Err(refuse(format!("cannot place the failure check around the call of {}()", prim.name))),
    }
    edits.push(Edit::replace(&up_path, ret_span.start as usize, ret_span.end as usize, "return ret;"));

    // Arch STARTING states after the moved one relied on running after it.
    let mut later_arch_states: Vec<String> = Vec::new();
    let old_index = cpuhp.get(&old_state).map(|s| s.index).unwrap_or(i64::MAX);
    for f in tree.files.iter().filter(|f| is_arch_path(&f.path)) {
        for func in &f.functions {
            analyzer::graph::visit_calls(&func.body.stmts, &mut |c| {
                let Callee::Direct(n) = &c.callee else { return };
                let Some(r) = input.api.registration(n) else { return };
                let Some(st) = r.cpuhp_state_arg.and_then(|i| c.args.get(i)) else { return };
                let st = st.text.trim();
                if let Some(s) = cpuhp.get(st) {
                    if s.section == Some(CpuhpSection::Starting)
                        && s.index > old_index
                        && !later_arch_states.contains(&st.to_string())
                    {
                        later_arch_states.push(st.to_string());
                    }
                }
            });
        }
    }

    let up_old = p.func(up).name.clone();
    let down_names = down
        .map(|d| {
            let o = p.func(d).name.clone();
            let n = callback_name(&o);
            format!(" and {o}() to {n}()")
        })
        .unwrap_or_default();
    let subject = format!("KVM: Rename and move {old_state} to ONLINE section");
    let mut msg = format!(
        "The hotplug callbacks that enable and disable virtualization on a CPU ({up_old}() and its teardown \
         twin) are registered for {old_state}, a state of the STARTING section: they run on the incoming \
         CPU with interrupts disabled. So they must not sleep, which is why the lock they share with the \
         enable/disable-all paths has to be a raw spinlock, and they cannot fail: when enabling \
         virtualization fails on the incoming CPU, {prim}() only counts the failure in {counter} and the CPU \
         comes online anyway, so VMs scheduled there hit unrecoverable errors.\n\n\
         Move the state to the ONLINE section, right after {ONLINE_ANCHOR} (process context, still on the \
         incoming CPU, before the scheduler may run tasks there), as {new_state}. Rename {up_old}() to \
         {up_new}(){down_names}, and \"starting\" to \"online\" in the name the state is registered with. {up_new}() now aborts \
         the CPU online process with -EIO when enabling fails, using the existing failure counter (reset \
         under the lock before enabling, so a stale failure of another path is not taken for this one).\n\n\
         In the ONLINE section the incoming CPU is already in cpu_online_mask, so a broadcast to the online \
         CPUs may enable it before {up_new}() runs; {prim}() does nothing on a CPU that has it enabled \
         already. Disabling CPU hotplug around those broadcasts follows in the next patch.\n\n\
         No finding disappears by itself: no holder of the raw spinlock runs in atomic context any more \
         (the premise of HW006), and the lock is dropped later in the series.",
        prim = prim.name,
    );
    if removal_sites > 0 {
        msg = msg.replace("registered with.", "registered with; update the removal sites.");
    }
    if !later_arch_states.is_empty() {
        msg.push_str(&format!(
            "\n\nNote: arch STARTING states that ran after {old_state} now run before {new_state} on an \
             incoming CPU ({}); their callbacks must not depend on virtualization being enabled there.",
            later_arch_states.join(", ")
        ));
    }
    let _ = line_start;
    Ok(Change { subject, body: wrap(&msg, 72), edits, removes: Vec::new() })
}
