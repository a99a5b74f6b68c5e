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
pub static SERIES: &[TransformInfo] = &[];
