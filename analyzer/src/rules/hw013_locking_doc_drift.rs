//! # HW013 locking-doc-drift
//!
//! ## What it finds
//! `Documentation/virt/kvm/locking.rst` disagreeing with the code it
//! documents:
//! - a documented lock that no longer exists: a global lock that no file of
//!   the tree defines or takes, or a per-instance lock (`kvm->mmu_lock`)
//!   whose field no file uses any more;
//! - a global lock of common KVM code that protects global data (a global
//!   written with the lock held) but has no entry, and a documented lock
//!   that protects global data its `:Protects:` field does not name (the
//!   data moved under it from a lock that was dropped);
//! - a documented acquisition order ("A is taken outside B") that the code
//!   violates: `A` acquired while `B` is held on the same CPU, on entry or
//!   at the site.
//!
//! Lock names are matched through the API model (`cpus_read_lock()` in the
//! document is the `cpu_hotplug_lock` the code takes), per-instance locks
//! by their last two members (`vcpu->kvm->lock` is a `kvm->lock`). Existence
//! is judged on every file of the tree, whatever arch is analyzed.
//!
//! ## Why is this bad?
//! The review thread plans to "Drop kvm_count_lock and instead protect
//! kvm_usage_count with kvm_lock"; a series that does so must update
//! locking.rst, which otherwise documents a lock nobody takes, with a
//! rationale ("'raw' because hardware enabling/disabling must be atomic
//! /wrt migration") that no longer applies, while the lock that now guards
//! the usage count does not say so. Readers, reviewers and lockdep-driven
//! fixes rely on this document for the lock hierarchy.
//!
//! ## Example
//! ```rst
//! ``guest_count_lock``
//! ^^^^^^^^^^^^^^^^^^^^
//!
//! :Type:        raw_spinlock_t
//! :Protects:    - guest_users
//! ```
//! after a patch that removed `static DEFINE_RAW_SPINLOCK(guest_count_lock);`
//! and now does `mutex_lock(&guest_list_lock); guest_users++;`.
//!
//! ## Fix
//! Update locking.rst in the same series: remove the dropped lock's entry,
//! add the data to the `:Protects:` field of the lock that now guards it
//! (and new locks as entries), and state the acquisition order the code
//! follows.

use std::collections::{BTreeMap, BTreeSet};

use super::queries::{is_global_lock_name, lock_acquisitions, lock_code_name, lock_name_components};
use super::{find_rule, Finding, Related, RuleInput};
use crate::api::ApiModel;
use crate::facts::{AccessKind, Span};
use crate::graph::FnId;
use crate::locks::OccurrenceKind;
use crate::pipeline::LOCKING_RST;

/// Whether a lock held or taken in code is the documented lock.
fn matches(api: &ApiModel, doc_name: &str, code: &str) -> bool {
    let d = lock_code_name(api, doc_name);
    if is_global_lock_name(&d) {
        return d == code;
    }
    let dc = lock_name_components(&d);
    let cc = lock_name_components(code);
    // `kvm_arch::tsc_write_lock` names a type's member: the field decides.
    let n = if d.contains("::") { 1 } else { 2.min(dc.len()) };
    cc.len() >= n && dc[dc.len() - n..] == cc[cc.len() - n..]
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric() && c != '_').filter(|w| !w.is_empty())
}

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW013") else { return Vec::new() };
    let Some(doc) = input.locking_doc else { return Vec::new() };
    let a = input.analysis;
    let api = input.api;
    let arch = input.arch();
    let applies = |doc_arch: &Option<String>| doc_arch.as_deref().is_none_or(|d| d == arch);
    let mut out = Vec::new();

    // (a) Documented locks that no longer exist: no file of the tree
    // defines or takes them (the tree's answers, by the document's order).
    let mut missing: Vec<&crate::kernel_docs::DocumentedLock> = Vec::new();
    for (i, l) in doc.locks.iter().enumerate() {
        if !applies(&l.arch) {
            continue;
        }
        let exists = input.tree.documented_lock_exists.get(i).copied().unwrap_or(true);
        if exists {
            continue;
        }
        missing.push(l);
        let message = format!(
            "locking.rst documents `{}` ({}), but no code defines or takes it any more; remove the entry{}",
            l.name,
            l.lock_type,
            if l.protects.is_empty() {
                String::new()
            } else {
                format!(" and document what now protects {}", l.protects.join(", "))
            }
        );
        // Evidence: where the data the entry names is written now, and
        // with which locks.
        let named: BTreeSet<&str> = l.protects.iter().flat_map(|p| words(p)).collect();
        let mut related = Vec::new();
        let mut seen = BTreeSet::new();
        let mut ids: Vec<_> = a.locks.keys().copied().collect();
        ids.sort();
        for id in ids {
            for o in &a.locks[&id].occurrences {
                let OccurrenceKind::Access(acc) = o.kind else { continue };
                if acc.kind != AccessKind::Write
                    || !named.contains(acc.name.as_str())
                    || !a.program.globals.contains_key(acc.name.as_str())
                    || !seen.insert(acc.name.clone())
                {
                    continue;
                }
                related.push(Related {
                    file: a.program.file(id).path.clone(),
                    line: acc.span.line,
                    col: acc.span.col,
                    message: format!(
                        "`{}` is written here in {}() with {} held",
                        acc.name,
                        a.program.func(id).name,
                        o.state.must
                    ),
                });
            }
        }
        if related.is_empty() {
            related.push(Related {
                file: LOCKING_RST.to_string(),
                line: l.line,
                col: 1,
                message: format!("no file of the tree defines `{}` or passes it to a lock operation", l.name),
            });
        }
        out.push(
            Finding::at_file(
                info,
                input,
                LOCKING_RST,
                l.line,
                1,
                &l.name,
                message,
                Vec::new(),
                vec![l.name.clone(), "missing".into()],
            )
            .with_related(related),
        );
    }

    // Globals written with a global lock held: lock -> global -> first site.
    let lock_names: BTreeSet<String> = lock_acquisitions(a).into_iter().map(|s| s.lock.name).collect();
    let mut guarded: BTreeMap<String, BTreeMap<String, (FnId, Span)>> = BTreeMap::new();
    let mut ids: Vec<_> = a.locks.keys().copied().collect();
    ids.sort();
    for id in ids {
        for o in &a.locks[&id].occurrences {
            let OccurrenceKind::Access(acc) = o.kind else { continue };
            if acc.kind != AccessKind::Write || lock_names.contains(&acc.name) {
                continue;
            }
            if !a.program.globals.contains_key(acc.name.as_str()) {
                continue;
            }
            for l in o.state.must.iter() {
                if is_global_lock_name(&l.name) && a.program.globals.contains_key(l.name.as_str()) {
                    guarded.entry(l.name.clone()).or_default().entry(acc.name.clone()).or_insert((id, acc.span));
                }
            }
        }
    }
    let documented = |code: &str| {
        doc.locks.iter().any(|l| matches(api, &l.name, code))
            || doc.orderings.iter().any(|o| matches(api, &o.outer, code) || matches(api, &o.inner, code))
    };
    for (lock, data) in &guarded {
        let data_list = |d: &BTreeMap<&String, &(FnId, Span)>| {
            d.iter()
                .map(|(g, (f, _))| format!("`{g}` (written in {}())", a.program.func(*f).name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let related = |d: &BTreeMap<&String, &(FnId, Span)>| {
            d.iter()
                .map(|(g, (f, sp))| Related {
                    file: a.program.file(*f).path.clone(),
                    line: sp.line,
                    col: sp.col,
                    message: format!("`{g}` written here with `{lock}` held"),
                })
                .collect::<Vec<_>>()
        };
        match doc.locks.iter().find(|l| matches(api, &l.name, lock)) {
            // (b) A documented lock guarding data its entry does not name.
            Some(l) => {
                if !applies(&l.arch) {
                    continue;
                }
                // Data the document still puts under a lock that no longer
                // exists: it moved here without the entry being updated.
                let named_in = |lk: &crate::kernel_docs::DocumentedLock, g: &str| {
                    lk.protects.iter().any(|p| words(p).any(|w| w == g))
                };
                let unnamed: BTreeMap<&String, &(FnId, Span)> =
                    data.iter().filter(|(g, _)| !named_in(l, g) && missing.iter().any(|m| named_in(m, g))).collect();
                if unnamed.is_empty() {
                    continue;
                }
                let old: BTreeSet<&str> = missing
                    .iter()
                    .filter(|m| unnamed.keys().any(|g| named_in(m, g)))
                    .map(|m| m.name.as_str())
                    .collect();
                let message = format!(
                    "`{}` now protects {}, which locking.rst still puts under the removed `{}`; its own entry lists only: {}",
                    l.name,
                    data_list(&unnamed),
                    old.into_iter().collect::<Vec<_>>().join("`, `"),
                    l.protects.join("; ")
                );
                let mut symbols = vec![l.name.clone(), "protects".into()];
                symbols.extend(unnamed.keys().map(|g| g.to_string()));
                out.push(
                    Finding::at_file(info, input, LOCKING_RST, l.line, 1, &l.name, message, Vec::new(), symbols)
                        .with_related(related(&unnamed)),
                );
            }
            // (b) An undocumented lock of common code guarding global data.
            None => {
                if documented(lock) {
                    continue;
                }
                let Some((fi, g)) = a.program.globals.get(lock.as_str()).and_then(|v| v.first()) else { continue };
                let path = &a.program.files[*fi as usize].path;
                if crate::enable_path::is_arch_path(path) {
                    continue;
                }
                let all: BTreeMap<&String, &(FnId, Span)> = data.iter().collect();
                let message = format!(
                    "`{lock}` protects {}, but Documentation/virt/kvm/locking.rst has no entry for it",
                    data_list(&all)
                );
                let mut symbols = vec![lock.clone(), "undocumented".into()];
                symbols.extend(all.keys().map(|g| g.to_string()));
                out.push(
                    Finding::at_file(
                        info,
                        input,
                        path,
                        g.name_span.line,
                        g.name_span.col,
                        lock,
                        message,
                        Vec::new(),
                        symbols,
                    )
                    .with_related(related(&all)),
                );
            }
        }
    }

    // (c) Documented orders the code violates.
    let sites = lock_acquisitions(a);
    for ord in &doc.orderings {
        if !applies(&ord.arch) {
            continue;
        }
        let mut hit = None;
        'sites: for s in &sites {
            // A trylock cannot deadlock: it is how code takes a lock out of order.
            if !matches(api, &ord.outer, &s.lock.name) || s.call.contains("trylock") {
                continue;
            }
            let inner_held =
                |set: &crate::locks::LockSet| set.iter().find(|l| matches(api, &ord.inner, &l.name)).cloned();
            if let Some(l) = inner_held(&s.state.must) {
                hit = Some((s, None, l));
                break;
            }
            for (ri, r) in a.reaches(s.function).iter().enumerate() {
                if let Some(l) = inner_held(&r.key.held_must) {
                    hit = Some((s, Some(ri), l));
                    break 'sites;
                }
            }
        }
        let Some((s, ri, inner)) = hit else { continue };
        let fname = &a.program.func(s.function).name;
        let message = format!(
            "locking.rst says {} is taken outside {}, but {}() takes `{}` with `{}` held",
            ord.outer, ord.inner, fname, s.lock.name, inner.name
        );
        let evidence = match ri {
            Some(ri) => a.witness(s.function, ri, Some(s.span)),
            None if !a.reaches(s.function).is_empty() => a.witness(s.function, 0, Some(s.span)),
            None => Vec::new(),
        };
        let related = vec![Related {
            file: a.program.file(s.function).path.clone(),
            line: s.span.line,
            col: s.span.col,
            message: format!("`{}` taken here by {}() with `{}` held", s.lock.name, s.call, inner.name),
        }];
        out.push(
            Finding::at_file(
                info,
                input,
                LOCKING_RST,
                ord.line,
                1,
                &format!("{} -> {}", ord.outer, ord.inner),
                message,
                evidence,
                // The file taking the lock out of order, not the function:
                // renaming it keeps the finding.
                vec![ord.outer.clone(), ord.inner.clone(), a.program.file(s.function).path.clone()],
            )
            .with_related(related),
        );
    }
    out
}
