//! # HW008 arch-bypass-enable
//!
//! ## What it finds
//! Arch code that turns virtualization on by itself, outside the common
//! enable path. The arch's per-CPU enable machinery is the enable hook the
//! common hotplug startup callback reaches, plus the arch functions only it
//! (not the disable hook) reaches. A bypass is an arch function outside the
//! enable path that calls into that machinery (a part of it that does work
//! of its own), or broadcasts it with `on_each_cpu()`: it owns the on/off
//! state itself (module init enabling "temporarily", a CPU PM notifier
//! re-enabling on low-power exit, pKVM's init enabling EL2 on the boot CPU
//! for good). Functions that only share a helper with the enable hook
//! (capability checks, queries) are not bypasses.
//!
//! A second finding says when the bypass leaves virtualization enabled: its
//! disable runs on some paths only (walked in statement order, conditions
//! not evaluated), or it has no disable at all, so the function returns
//! with it enabled behind the common code's back.
//!
//! ## Why is this bad?
//! From the review thread: "arm64 is also quite evil and circumvents KVM's
//! hardware enabling logic to some extent. kvm_arch_init() =>
//! init_subsystems() unconditionally enables hardware, and for pKVM
//! _leaves_ hardware enabled. And then hyp_init_cpu_pm_notifier()
//! disables/enables hardware across lower power enter+exit, except if pKVM
//! is enabled." The common code's usage count and per-CPU bookkeeping no
//! longer describe the hardware, so any rework of the common path (enabling
//! at load, moving hotplug callbacks) has to reason about a second owner.
//!
//! ## Example
//! ```c
//! int foo_arch_setup(void)
//! {
//!     on_each_cpu(foo_hyp_up, NULL, 1);    /* foo_hyp_up(): the enable hook's worker */
//!     err = foo_probe_el2_features();
//!     if (err || !foo_protected_mode())
//!         on_each_cpu(foo_hyp_down, NULL, 1);    /* left up otherwise */
//!     return err;
//! }
//! ```
//!
//! ## Fix
//! Enable through the common code (its enable/disable-all helpers, or a
//! usage reference held while the arch needs EL2), and let CPU PM and
//! hotplug transitions go through the common per-CPU hooks, so one place
//! knows whether virtualization is on.

use std::collections::BTreeSet;

use super::hw009_double_enable::{Machinery, State, Walker};
use super::{find_rule, Finding, Related, RuleInput};
use crate::graph::FnId;

pub fn check(input: &RuleInput<'_>) -> Vec<Finding> {
    let Some(info) = find_rule("HW008") else { return Vec::new() };
    let a = input.analysis;
    let Some(m) = Machinery::find(input) else { return Vec::new() };
    let hooks = &input.enable_path.enable_hooks[..];
    let mut out = Vec::new();
    let togglers: BTreeSet<FnId> = m.togglers.clone();
    for g in togglers {
        let func = a.program.func(g);
        // The first site entering the enable machinery, and how.
        let probe = Walker::new(a, &m, hooks, 0);
        let mut first: Option<(crate::facts::Span, FnId, bool)> = None;
        crate::graph::visit_calls(&func.body.stmts, &mut |c| {
            if first.is_some() {
                return;
            }
            for &t in probe.targets(g, c).iter() {
                if m.is_enable(g, t, hooks) {
                    let direct = a.program.edges_at(g, c).iter().any(|e| e.callee == t);
                    first = Some((c.span, t, !direct));
                    return;
                }
            }
        });
        let Some((span, target, broadcast)) = first else { continue };
        let target_name = a.program.func(target).name.clone();
        let hook_names: Vec<String> = hooks.iter().map(|&h| format!("`{}()`", a.program.func(h).name)).collect();
        // Evidence: the shortest path from a root to the bypass.
        let reaches = a.reaches(g);
        let best = reaches.iter().enumerate().min_by_key(|(i, r)| (r.depth, *i)).map(|(i, _)| i);
        let root_context = best.map(|ri| reaches[ri].key.context.clone());
        let (evidence, from) = match best {
            Some(ri) => {
                let root = &a.roots[reaches[ri].key.root];
                (a.witness(g, ri, Some(span)), format!(", reached from `{}()` ({})", root.function_name, root.origin))
            }
            None => (Vec::new(), String::new()),
        };
        let how = if broadcast {
            format!("enables virtualization on every CPU by broadcasting `{target_name}()`")
        } else {
            format!("re-enables virtualization by calling `{target_name}()`")
        };
        let message =
            format!("`{}()` {how}, bypassing the common enable path ({}){from}", func.name, hook_names.join(", "));
        let related = vec![Related {
            file: a.program.file(target).path.clone(),
            line: a.program.func(target).name_span.line,
            col: a.program.func(target).name_span.col,
            message: format!("`{target_name}()` is the enable hook's machinery"),
        }];
        // An enable-only bypass is reported once, as never disabled (below).
        if !m.enable_only.contains(&g) {
            out.push(
                Finding::new(
                    info,
                    input,
                    g,
                    span.line,
                    span.col,
                    message,
                    evidence.clone(),
                    bypass_symbols(broadcast, root_context.as_deref(), None),
                )
                .with_related(related),
            );
        }

        // Left enabled: after the enable, the disable runs on some paths only.
        let mut w = Walker::new(a, &m, hooks, 4);
        let mut stack = Vec::new();
        let exit = w.function(g, State { off: true, ..State::default() }, &mut stack);
        if exit.on.is_some() && m.enable_only.contains(&g) {
            let message = format!(
                "`{}()` {how} and never disables again: it returns with virtualization left enabled on every path, \
                 bypassing the common enable path ({}){from}",
                func.name,
                hook_names.join(", ")
            );
            out.push(
                Finding::new(
                    info,
                    input,
                    g,
                    span.line,
                    span.col,
                    message,
                    evidence,
                    bypass_symbols(broadcast, root_context.as_deref(), Some("never-disabled")),
                )
                .with_related(vec![Related {
                    file: a.program.file(g).path.clone(),
                    line: span.line,
                    col: span.col,
                    message: "enabled here, with no disable on any path after it".to_string(),
                }]),
            );
        } else if exit.on.is_some() && exit.off_again {
            let Some(dis) = w.disables.first().and_then(|fr| fr.first().copied()) else { continue };
            let message = format!(
                "`{}()` disables again only on some paths (this disable is conditional): it can return with \
                 virtualization left enabled by `{target_name}()`, behind the common code's back",
                func.name
            );
            out.push(
                Finding::new(
                    info,
                    input,
                    g,
                    dis.1.line,
                    dis.1.col,
                    message,
                    evidence,
                    bypass_symbols(broadcast, root_context.as_deref(), Some("left-enabled")),
                )
                .with_related(vec![Related {
                    file: a.program.file(g).path.clone(),
                    line: span.line,
                    col: span.col,
                    message: "enabled here".to_string(),
                }]),
            );
        }
    }
    out
}

/// What a bypass is about, for the fingerprint: how it enables (a broadcast
/// or a call on one CPU), the context it runs in, and what is wrong with it.
/// No function names: renaming the bypass or the machinery keeps the finding.
fn bypass_symbols(broadcast: bool, context: Option<&str>, wrong: Option<&str>) -> Vec<String> {
    let mut symbols = vec![
        if broadcast { "enables on every CPU" } else { "enables on this CPU" }.to_string(),
        format!("from {}", context.unwrap_or("no root")),
    ];
    symbols.extend(wrong.map(str::to_string));
    symbols
}
