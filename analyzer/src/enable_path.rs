//! The hardware-enable path of one arch, derived from the model rather than
//! from function names.
//!
//! Common code (files outside `arch/`) registers CPU hotplug callbacks that
//! enable and disable virtualization on one CPU. What those callbacks reach
//! is the enable path:
//! - the **per-CPU enable primitives**: common functions reached from a
//!   common hotplug *startup* callback that call into arch code;
//! - the **arch enable hooks**: arch functions those primitives call
//!   (`kvm_arch_hardware_enable()` in 6.1,
//!   `kvm_arch_enable_virtualization_cpu()` in 6.12, or whatever a tree
//!   calls it);
//! - likewise, from *teardown* callbacks, the disable primitives and hooks.

use std::collections::BTreeSet;

use crate::contexts::Analysis;
use crate::graph::FnId;

/// The enable path of one program.
#[derive(Debug, Clone, Default)]
pub struct EnablePath {
    /// Roots (indices into `Analysis::roots`) of common hotplug startup callbacks.
    pub startup_roots: Vec<usize>,
    pub teardown_roots: Vec<usize>,
    pub enable_primitives: Vec<FnId>,
    pub disable_primitives: Vec<FnId>,
    pub enable_hooks: Vec<FnId>,
    pub disable_hooks: Vec<FnId>,
}

/// Whether a path is arch code.
pub fn is_arch_path(path: &str) -> bool {
    path.starts_with("arch/")
}

impl EnablePath {
    /// Derive the enable path of an analyzed program.
    pub fn find(a: &Analysis<'_>) -> EnablePath {
        let mut ep = EnablePath::default();
        for root in &a.roots {
            if !root.context.starts_with("cpuhp_") {
                continue;
            }
            let path = &a.program.file(root.function).path;
            if is_arch_path(path) {
                continue;
            }
            match root.role.as_deref() {
                Some("startup") => ep.startup_roots.push(root.id),
                Some("teardown") => ep.teardown_roots.push(root.id),
                _ => {}
            }
        }
        let (ep_prims, ep_hooks) = Self::crossings(a, &ep.startup_roots);
        let (dp_prims, dp_hooks) = Self::crossings(a, &ep.teardown_roots);
        ep.enable_primitives = ep_prims;
        ep.enable_hooks = ep_hooks;
        ep.disable_primitives = dp_prims;
        ep.disable_hooks = dp_hooks;
        ep
    }

    /// Walking common code only from the root callbacks: the common
    /// functions that call into arch code, and the arch functions called.
    /// The walk stops at the first arch function, so common helpers that
    /// arch code calls back into do not count.
    fn crossings(a: &Analysis<'_>, roots: &[usize]) -> (Vec<FnId>, Vec<FnId>) {
        let mut prims = BTreeSet::new();
        let mut hooks = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<FnId> = roots.iter().map(|&r| a.roots[r].function).collect();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            for e in a.program.calls.get(&id).into_iter().flatten() {
                if is_arch_path(&a.program.file(e.callee).path) {
                    prims.insert(id);
                    hooks.insert(e.callee);
                } else {
                    stack.push(e.callee);
                }
            }
        }
        (prims.into_iter().collect(), hooks.into_iter().collect())
    }

    pub fn is_enable_hook(&self, id: FnId) -> bool {
        self.enable_hooks.contains(&id)
    }
}
