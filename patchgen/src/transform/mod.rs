//! The refactor series' transformations, one per file, registered once in
//! [`SERIES`] in the seed's order.
//!
//! A transformation reads the analyzed tree (never raw line numbers), checks
//! its preconditions, and returns either a [`Change`] — edits on the
//! original bytes, a kernel-style subject and a commit message that explains
//! why, and the findings it removes — or a [`Refusal`] saying why the tree
//! does not have the expected shape (already converted, renamed, missing).

use analyzer::api::ApiModel;
use analyzer::check::CheckReport;
use analyzer::pipeline::ParsedTree;

use crate::edit::Edit;

pub mod arch_add_vm;
pub mod cpuhp_online;
pub mod drop_count_lock;
pub mod hotplug_lock;
pub mod percpu_enabled;
pub mod unwind_create_vm;
pub mod uret_msr_first_use;
pub mod util;

/// What a transformation sees: the tree as it is after the previous
/// patches of the series, its findings, and the API model.
pub struct TransformInput<'a> {
    pub tree: &'a ParsedTree,
    pub api: &'a ApiModel,
    pub findings: &'a CheckReport,
}

/// The result of a transformation that applies.
#[derive(Debug, Clone)]
pub struct Change {
    /// `KVM: x86: Snapshot user-return MSRs on first use` (without `[PATCH]`).
    pub subject: String,
    /// The commit message body (wrapped at 72 columns): why, citing the
    /// findings removed.
    pub body: String,
    pub edits: Vec<Edit>,
    /// Fingerprints of the findings this change claims to remove (checked
    /// by `series test`).
    pub removes: Vec<String>,
}

/// Why a transformation does not apply to this tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{transformation}: {reason}")]
pub struct Refusal {
    pub transformation: &'static str,
    pub reason: String,
}

/// A registered transformation.
pub struct TransformInfo {
    /// Slug used in file names and `--only` (`uret-msr-first-use`).
    pub slug: &'static str,
    /// One line for listings.
    pub title: &'static str,
    /// Rules whose findings it is expected to remove.
    pub removes_rules: &'static [&'static str],
    pub plan: fn(&TransformInput<'_>) -> Result<Change, Refusal>,
}

/// The series, in order (the seed's order; see docs/rules.md).
pub static SERIES: &[TransformInfo] = &[
    TransformInfo {
        slug: uret_msr_first_use::SLUG,
        title: "x86: snapshot user-return MSRs on first use, not in the enable hook",
        removes_rules: &["HW002"],
        plan: uret_msr_first_use::plan,
    },
    TransformInfo {
        slug: cpuhp_online::SLUG,
        title: "move the hotplug callbacks from the STARTING to the ONLINE section",
        removes_rules: &[],
        plan: cpuhp_online::plan,
    },
    TransformInfo {
        slug: hotplug_lock::SLUG,
        title: "disable CPU hotplug while enabling/disabling on all CPUs",
        removes_rules: &["HW004"],
        plan: hotplug_lock::plan,
    },
    TransformInfo {
        slug: drop_count_lock::SLUG,
        title: "drop the raw usage-count spinlock, protect the count with the VM list's mutex",
        removes_rules: &["HW006"],
        plan: drop_count_lock::plan,
    },
    TransformInfo {
        slug: percpu_enabled::SLUG,
        title: "replace the current-CPU cpumask of enabled CPUs with a per-CPU bool",
        removes_rules: &["HW005"],
        plan: percpu_enabled::plan,
    },
    TransformInfo {
        slug: arch_add_vm::SLUG,
        title: "rename the post-init arch hook to kvm_arch_add_vm(), called under kvm_lock with the usage count",
        removes_rules: &[],
        plan: arch_add_vm::plan,
    },
    TransformInfo {
        slug: unwind_create_vm::SLUG,
        title: "unwind VM creation correctly when it fails after adding the VM to the list",
        removes_rules: &["HW011"],
        plan: unwind_create_vm::plan,
    },
];
