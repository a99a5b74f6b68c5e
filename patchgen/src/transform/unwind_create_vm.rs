//! Series step 7: where VM creation can fail after the VM was added to the
//! global list (the shape commit 5f6de5cbebee introduced), unwind it.
//!
//! The VM-creation function is found as in step 6 (the common function
//! adding to a global list under a global mutex); what it fails to undo
//! comes from its HW011 findings: the exit (`goto X`), and the steps done
//! before it with the call that undoes each (from the teardown twin or the
//! function itself). A new label placed just before `X` undoes those steps
//! in reverse order — a list add by deleting the entry under the lock the
//! add held, another step by the twin's undo call — and falls through to
//! `X`; the failing exits jump there.
//!
//! Refuses when VM creation has no HW011 finding (6.1 and 6.12 unwind
//! correctly), when an undo cannot be written with the creating function's
//! own variables, or when the code before `X` falls through into it.

use std::collections::BTreeSet;

use analyzer::api::{ListOpKind, LockEffect};
use analyzer::facts::{Block, CallSite, Callee, Span, Stmt};
use analyzer::graph::visit_calls;
use analyzer::locks::{call_lock_op, OccurrenceKind};
use analyzer::rules::Finding;

use super::arch_add_vm::find_vm_creation;
use super::util::{file_bytes, gotos_to, indent_at, line_end_incl, line_start, stmt_span, text_of, wrap};
use super::{Change, Refusal, TransformInput};
use crate::edit::Edit;

/// Slug of this transformation (file names, `--only`).
pub const SLUG: &str = "unwind-create-vm";
const NAME: &str = SLUG;

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal { transformation: NAME, reason: reason.into() }
}

fn direct(c: &CallSite) -> Option<&str> {
    match &c.callee {
        Callee::Direct(n) => Some(n),
        _ => None,
    }
}

/// The call at `line:col` among `calls`.
fn call_at<'a>(calls: &[&'a CallSite], line: u32, col: u32) -> Option<&'a CallSite> {
    calls.iter().copied().find(|c| c.span.line == line && c.span.col == col)
}

fn all_calls(stmts: &[Stmt]) -> Vec<&CallSite> {
    let mut out = Vec::new();
    visit_calls(stmts, &mut |c| out.push(c));
    out
}

/// The goto at `line:col`, with its label.
fn goto_at(block: &Block, line: u32, col: u32) -> Option<(Span, String)> {
    for s in &block.stmts {
        let inner: Vec<&Block> = match s {
            Stmt::Goto { span, label } if span.line == line && span.col == col => return Some((*span, label.clone())),
            Stmt::Block(b) => vec![b],
            Stmt::If { then_branch, else_branch, .. } => {
                let mut v = vec![then_branch];
                v.extend(else_branch.iter());
                v
            }
            Stmt::Loop { body, .. } | Stmt::Switch { body, .. } | Stmt::ScopedGuard { body, .. } => vec![body],
            Stmt::Preproc { branches, .. } => branches.iter().map(|b| &b.body).collect(),
            _ => Vec::new(),
        };
        for b in inner {
            if let Some(hit) = goto_at(b, line, col) {
                return Some(hit);
            }
        }
    }
    None
}

/// How HW011's evidence ends for the other exits that skip the same steps.
const SKIPS_TOO: &str = "skips it too";

/// The calls whose failure takes a finding's exits, as its evidence names
/// them ("... before the failing `X()`", "... when `X()` fails skips it too").
fn failing_calls(f: &Finding) -> Vec<String> {
    let name_after = |text: &str, marker: &str| {
        text.split_once(marker).and_then(|(_, rest)| rest.split_once("()`")).map(|(n, _)| n.to_string())
    };
    f.related
        .iter()
        .filter_map(|r| name_after(&r.message, "before the failing `").or_else(|| name_after(&r.message, "when `")))
        .collect()
}

/// A missing step and its undo, from a finding's related evidence (pairs:
/// where the step is done, where its undo is known from).
struct Missing<'a> {
    step: &'a CallSite,
    undo: &'a CallSite,
    undo_in_creator: bool,
}

pub fn plan(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let analyses = input.tree.analyze_all(input.api);
    let Some(a) = analyses.first() else { return Err(refuse("the tree has no code to analyze")) };
    let c = find_vm_creation(a).map_err(refuse)?;
    let creator = a.program.func(c.function);
    let findings: Vec<&Finding> = input
        .findings
        .findings
        .iter()
        .filter(|f| f.rule == "HW011" && f.function == creator.name && f.file == c.path)
        .collect();
    if findings.is_empty() {
        return Err(refuse(format!(
            "VM creation already unwinds correctly: no HW011 finding in {}() ({})",
            creator.name, c.path
        )));
    }
    let src = file_bytes(input.tree, &c.path);
    let creator_calls = all_calls(&creator.body.stmts);

    // The exits, their common target and the steps they leave undone.
    let mut exits: Vec<Span> = Vec::new();
    let mut target: Option<String> = None;
    let mut missing_names: Option<Vec<String>> = None;
    let mut missing: Vec<Missing<'_>> = Vec::new();
    for f in &findings {
        let Some((span, label)) = goto_at(&creator.body, f.line, f.col) else {
            return Err(refuse(format!(
                "{}:{}: the HW011 exit is not a `goto` (a `return` would need its own unwind)",
                f.file, f.line
            )));
        };
        match &target {
            Some(t) if *t != label => {
                return Err(refuse(format!(
                    "{}(): the failing exits jump to different labels ({t}, {label})",
                    creator.name
                )))
            }
            _ => target = Some(label),
        }
        let names: Vec<String> =
            f.symbols.iter().filter_map(|s| s.strip_prefix("skips ")).map(str::to_string).collect();
        // The other exits that skip the same steps are the finding's
        // evidence ("... skips it too"); they need the same unwind.
        for other in f.related.iter().filter(|r| r.message.ends_with(SKIPS_TOO)) {
            match goto_at(&creator.body, other.line, other.col) {
                Some((span, l)) if Some(&l) == target.as_ref() => exits.push(span),
                _ => {
                    return Err(refuse(format!(
                        "{}:{}: an exit HW011 names is not a `goto` to the same label",
                        other.file, other.line
                    )))
                }
            }
        }
        match &missing_names {
            Some(m) if *m != names => {
                return Err(refuse(format!("{}(): the failing exits leave different steps undone", creator.name)))
            }
            Some(_) => {}
            None => {
                let steps: Vec<_> = f.related.iter().filter(|r| !r.message.ends_with(SKIPS_TOO)).collect();
                for pair in steps.chunks(2) {
                    let [done, undo] = pair else { continue };
                    let Some(step) = call_at(&creator_calls, done.line, done.col) else {
                        return Err(refuse(format!("{}:{}: cannot find the step HW011 names", done.file, done.line)));
                    };
                    let undo_file = input.tree.files.iter().find(|x| x.path == undo.file);
                    let undo_calls: Vec<&CallSite> = undo_file
                        .map(|x| x.functions.iter().flat_map(|g| all_calls(&g.body.stmts)).collect())
                        .unwrap_or_default();
                    let Some(u) = call_at(&undo_calls, undo.line, undo.col) else {
                        return Err(refuse(format!("{}:{}: cannot find the undo HW011 names", undo.file, undo.line)));
                    };
                    let undo_in_creator = undo.file == c.path && creator_calls.iter().any(|k| std::ptr::eq(*k, u));
                    missing.push(Missing { step, undo: u, undo_in_creator });
                }
                missing_names = Some(names);
            }
        }
        exits.push(span);
    }
    let target = target.unwrap_or_default();
    if missing.is_empty() {
        return Err(refuse(format!("{}(): the HW011 findings name no step to undo", creator.name)));
    }

    // The lock calls around a list add, to repeat around its delete.
    let occurrences = &a.locks[&c.function].occurrences;
    let held_at_call = |k: &CallSite| {
        occurrences.iter().find_map(|o| match o.kind {
            OccurrenceKind::Call(x) if std::ptr::eq(x, k) => Some(o.state.must.clone()),
            _ => None,
        })
    };
    let lock_text = |lock: &str, effect: LockEffect, before: u32| -> Option<String> {
        let mut cands: Vec<&&CallSite> = creator_calls
            .iter()
            .filter(|k| matches!(call_lock_op(input.api, k), Some((e, l, _)) if e == effect && l.name == lock))
            .collect();
        cands.sort_by_key(|k| k.span.start);
        let k = if effect == LockEffect::Acquire {
            cands.into_iter().rev().find(|k| k.span.start < before)
        } else {
            cands.into_iter().find(|k| k.span.start > before)
        }?;
        Some(text_of(src, k.span.start as usize, k.span.end as usize))
    };

    // Undo statements, last step first.
    missing.sort_by_key(|m| std::cmp::Reverse(m.step.span.start));
    let mut lines: Vec<String> = Vec::new();
    let mut unlists = false;
    let mut undone: Vec<String> = Vec::new();
    for m in &missing {
        let step_name = direct(m.step).unwrap_or_default();
        let undo_name = direct(m.undo).unwrap_or_default();
        undone.push(format!("{step_name}()"));
        if let Some(op) = input.api.list_op(step_name).filter(|o| o.op == ListOpKind::Add) {
            let Some(entry) = m.step.args.get(op.entry_arg) else {
                return Err(refuse(format!("{}(): cannot read the entry of `{step_name}()`", creator.name)));
            };
            unlists = true;
            let held = held_at_call(m.step).unwrap_or_default();
            let lock = held.iter().find(|l| l.kind == "mutex" || l.kind.contains("spinlock")).map(|l| l.name.clone());
            let del = format!("{undo_name}({});", entry.text.trim());
            match lock {
                Some(l) => {
                    let (Some(acq), Some(rel)) = (
                        lock_text(&l, LockEffect::Acquire, m.step.span.start),
                        lock_text(&l, LockEffect::Release, m.step.span.start),
                    ) else {
                        return Err(refuse(format!(
                            "{}(): cannot find how `{l}` is taken around `{step_name}()`",
                            creator.name
                        )));
                    };
                    lines.push(format!("{acq};"));
                    lines.push(del);
                    lines.push(format!("{rel};"));
                }
                None => lines.push(del),
            }
            continue;
        }
        // Another step: the undo call, with the creating function's variables.
        let mut args: Vec<String> = Vec::new();
        for arg in &m.undo.args {
            let t = arg.text.trim();
            let known = m.undo_in_creator || m.step.args.iter().any(|s| s.text.trim() == t);
            if !known {
                return Err(refuse(format!(
                    "{}(): cannot tell how to call `{undo_name}()` here: its argument `{t}` is not one of \
                     `{step_name}()`'s",
                    creator.name
                )));
            }
            args.push(t.to_string());
        }
        lines.push(format!("{undo_name}({});", args.join(", ")));
    }

    // The new label just before the exits' target.
    let stmts = &creator.body.stmts;
    let Some(ti) = stmts.iter().position(|s| matches!(s, Stmt::Label { name, .. } if *name == target)) else {
        return Err(refuse(format!("{}(): label `{target}` is not at the top level of the function", creator.name)));
    };
    if !matches!(ti.checked_sub(1).map(|p| &stmts[p]), Some(Stmt::Return { .. } | Stmt::Goto { .. })) {
        return Err(refuse(format!(
            "{}(): the code before label `{target}` falls through into it; cannot add the unwind there",
            creator.name
        )));
    }
    let mut labels = BTreeSet::new();
    for s in stmts {
        if let Stmt::Label { name, .. } = s {
            labels.insert(name.clone());
        }
    }
    let base = if unlists { "out_unlist" } else { "out_undo" };
    let label = [base.to_string(), format!("{base}_vm")]
        .into_iter()
        .find(|l| !labels.contains(l))
        .ok_or_else(|| refuse(format!("{}(): no free label name for the unwind", creator.name)))?;
    let indent = exits.first().map(|e| indent_at(src, e.start as usize)).unwrap_or_default();
    let indent: String = indent.chars().take(1).collect::<String>();
    let indent = if indent.is_empty() { "\t".to_string() } else { indent };
    let mut undo_text = String::new();
    for l in &lines {
        undo_text.push_str(&format!("{indent}{l}\n"));
    }
    // When every jump to the label is a failing exit, the undo goes under
    // the label itself (a label left unused does not compile with -Werror).
    let mut jumps = Vec::new();
    gotos_to(&creator.body, &target, &mut jumps);
    let tstart = stmt_span(&stmts[ti]).start as usize;
    if jumps.len() <= exits.len() {
        let edits = vec![Edit::insert(&c.path, line_end_incl(src, tstart), undo_text)];
        return Ok(change(&c, creator, &findings, &target, &target, &undone, edits));
    }
    let mut edits = vec![Edit::insert(&c.path, line_start(src, tstart), format!("{label}:\n{undo_text}"))];
    for e in &exits {
        let gt = text_of(src, e.start as usize, e.end as usize);
        let Some(at) = gt.rfind(target.as_str()) else { continue };
        let s = e.start as usize + at;
        edits.push(Edit::replace(&c.path, s, s + target.len(), label.clone()));
    }

    Ok(change(&c, creator, &findings, &target, &label, &undone, edits))
}

/// The change's message around its edits.
#[allow(clippy::too_many_arguments)]
fn change(
    c: &super::arch_add_vm::VmCreation,
    creator: &analyzer::facts::Function,
    findings: &[&Finding],
    target: &str,
    label: &str,
    undone: &[String],
    edits: Vec<Edit>,
) -> Change {
    let failing: BTreeSet<String> = findings.iter().flat_map(|f| failing_calls(f)).collect();
    let failing = failing.into_iter().map(|f| format!("{f}()")).collect::<Vec<_>>().join(", ");
    let undone_list = undone.join(" or ");
    let fix = if label == target {
        format!("Undo those steps at `{target}`, in reverse order as the VM's teardown does.")
    } else {
        format!(
            "Jump to a new label, `{label}`, that undoes those steps in reverse order, as the VM's \
             teardown does, and falls through to `{target}`."
        )
    };
    let body = format!(
        "If {failing} fails in {creator}(), the VM has already been added to \
         {head}, but the error path jumps to `{target}`, which does not undo \
         {undone_list}: the VM is freed while still on {head}, where every walker \
         of the list can reach it, and whatever the architecture set up for it \
         is leaked. This is the shape the review of the hardware enabling \
         rework pointed out in the error path added by commit 5f6de5cbebee \
         (\"KVM: Prevent module exit until all VMs are freed\").\n\n\
         {fix}\n\n\
         Removes: HW011 error-path-skips-undo ({creator}()).",
        creator = creator.name,
        head = c.head,
    );
    Change {
        subject: format!("KVM: Unwind {}() fully if it fails after adding to {}", creator.name, c.head),
        body: wrap(&body, 72),
        edits,
        removes: findings.iter().map(|f| f.fingerprint.clone()).collect(),
    }
}
