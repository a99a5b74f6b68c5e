//! The wart rules HW001-HW014.
//!
//! One rule, one file, named after the rule; the file's `//!` doc comment
//! is the rule's documentation (`kvmtk explain HW001` prints it) in fixed
//! sections: what it finds, why it matters, example, fix. Every rule is
//! registered once, in [`REGISTRY`], and reads the model (contexts, locks,
//! facts classified through the API model), never raw text.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::api::ApiModel;
use crate::contexts::{Analysis, Step};
use crate::enable_path::EnablePath;
use crate::graph::FnId;
use crate::kernel_docs::LockingDoc;

pub mod queries;

mod hw001_unguarded_list_walk;
mod hw002_irq_state_snapshot;
mod hw003_overloaded_enable_hook;
mod hw004_hotplug_unsafe_broadcast;
mod hw005_current_cpu_cpumask;
mod hw006_atomic_only_lock;
mod hw007_sleep_in_atomic;
mod hw008_arch_bypass_enable;
mod hw009_double_enable;
mod hw010_private_usage_tracking;
mod hw011_error_path_skips_undo;
mod hw012_spurious_heavy_enable;
mod hw013_locking_doc_drift;
mod hw014_lock_order_cycle;

/// How bad a finding is; orders as `note < warning < error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "note" => Some(Severity::Note),
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// A rule's identity and documentation.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    /// One line, for listings.
    pub summary: &'static str,
    /// The rule file's source; its leading `//!` lines are the documentation.
    source: &'static str,
    pub check: fn(&RuleInput<'_>) -> Vec<Finding>,
}

impl RuleInfo {
    /// The rule's documentation: the `//!` doc comment of its file.
    pub fn doc(&self) -> String {
        let mut out = String::new();
        for line in self.source.lines() {
            let Some(rest) = line.strip_prefix("//!") else {
                if out.is_empty() && line.trim().is_empty() {
                    continue;
                }
                break;
            };
            out.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            out.push('\n');
        }
        out
    }
}

macro_rules! rule {
    ($module:ident, $id:literal, $name:literal, $sev:expr, $summary:literal) => {
        RuleInfo {
            id: $id,
            name: $name,
            severity: $sev,
            summary: $summary,
            source: include_str!(concat!(stringify!($module), ".rs")),
            check: $module::check,
        }
    };
}

/// Every rule, in id order. The one place rules are registered.
pub static REGISTRY: &[RuleInfo] = &[
    rule!(hw001_unguarded_list_walk, "HW001", "unguarded-list-walk", Severity::Warning,
        "a list is walked without the lock its writers hold, from a context that runs concurrently with them"),
    rule!(hw002_irq_state_snapshot, "HW002", "irq-state-snapshot", Severity::Warning,
        "per-CPU host state is snapshotted in code reachable from IPI / hardirq context"),
    rule!(hw003_overloaded_enable_hook, "HW003", "overloaded-enable-hook", Severity::Note,
        "an arch hardware-enable hook does the work of more than one concern"),
    rule!(hw004_hotplug_unsafe_broadcast, "HW004", "hotplug-unsafe-broadcast", Severity::Warning,
        "a broadcast to online CPUs runs without the CPU hotplug lock while a hotplug callback maintains the same state"),
    rule!(hw005_current_cpu_cpumask, "HW005", "current-cpu-cpumask", Severity::Note,
        "a global cpumask only ever indexed by the current CPU; a per-CPU variable does the job"),
    rule!(hw006_atomic_only_lock, "HW006", "atomic-only-lock", Severity::Note,
        "a raw spinlock is needed only because one holder runs in an atomic hotplug section"),
    rule!(hw007_sleep_in_atomic, "HW007", "sleep-in-atomic", Severity::Error,
        "a sleeping lock or call is reachable from atomic context"),
    rule!(hw008_arch_bypass_enable, "HW008", "arch-bypass-enable", Severity::Warning,
        "an arch enables virtualization outside the common enable path"),
    rule!(hw009_double_enable, "HW009", "double-enable", Severity::Warning,
        "one root reaches the per-CPU enable primitive twice without a disable between"),
    rule!(hw010_private_usage_tracking, "HW010", "private-usage-tracking", Severity::Note,
        "an arch keeps its own usage counter mirroring the common usage count"),
    rule!(hw011_error_path_skips_undo, "HW011", "error-path-skips-undo", Severity::Error,
        "an error path after a step that has an undo does not run the undo"),
    rule!(hw012_spurious_heavy_enable, "HW012", "spurious-heavy-enable", Severity::Note,
        "a costly enable hook runs when no VM needs it"),
    rule!(hw013_locking_doc_drift, "HW013", "locking-doc-drift", Severity::Warning,
        "Documentation/virt/kvm/locking.rst disagrees with the code"),
    rule!(hw014_lock_order_cycle, "HW014", "lock-order-cycle", Severity::Error,
        "lock classes are acquired in a cycle (possible circular locking dependency)"),
];

/// Look a rule up by id (`HW001`, case-insensitive) or name.
pub fn find_rule(key: &str) -> Option<&'static RuleInfo> {
    REGISTRY.iter().find(|r| r.id.eq_ignore_ascii_case(key) || r.name.eq_ignore_ascii_case(key))
}

/// Everything a rule reads.
pub struct RuleInput<'a> {
    pub analysis: &'a Analysis<'a>,
    pub enable_path: &'a EnablePath,
    pub api: &'a ApiModel,
    pub locking_doc: Option<&'a LockingDoc>,
    /// What the rules ask of the whole tree, beyond this arch's files.
    pub tree: &'a queries::TreeAnswers,
    /// The tree's KVM Kconfig: which `#ifdef`'d common code the arch builds.
    pub kconfig: &'a crate::kconfig::Kconfig,
    /// Where rules leave what they could not model (reported with
    /// `--verbose` and in JSON, never as findings).
    pub stats: &'a RuleStats,
}

/// What the rules of one arch's analysis could not model, filled while
/// they run (each part by the one rule that computes it).
#[derive(Debug, Default)]
pub struct RuleStats {
    /// HW014's order graph: unknown classes, unresolved waits.
    pub lock_order: std::sync::OnceLock<crate::lock_order::LockOrderStats>,
}

impl<'a> RuleInput<'a> {
    pub fn arch(&self) -> String {
        self.analysis.program.arch.clone().unwrap_or_else(|| "common".to_string())
    }
}

/// A place in the tree with a message, for secondary evidence (writer
/// sites, the missing undo, the other holders of a lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// One finding with its evidence. It reads back (from the result cache)
/// only when its rule id and name are those of a registered rule.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub arch: String,
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub function: String,
    pub message: String,
    /// The chain root -> ... -> site, with the context and locks at each step.
    pub evidence: Vec<Step>,
    pub related: Vec<Related>,
    /// What the finding is about (for the fingerprint): the kind of wart
    /// and its object (the list, lock, per-CPU state, broadcast primitive),
    /// never the name of the function it sits in.
    pub symbols: Vec<String>,
    /// Stable identity: rule + arch + file + symbols, not line numbers nor
    /// function names (see [`fingerprint`]).
    pub fingerprint: String,
}

/// [`Finding`] as stored, with owned rule strings, mapped back to the
/// registry's on reading.
#[derive(Deserialize)]
struct StoredFinding {
    rule: String,
    name: String,
    severity: Severity,
    arch: String,
    file: String,
    line: u32,
    col: u32,
    function: String,
    message: String,
    evidence: Vec<Step>,
    related: Vec<Related>,
    symbols: Vec<String>,
    fingerprint: String,
}

impl<'de> Deserialize<'de> for Finding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Finding, D::Error> {
        let s = StoredFinding::deserialize(d)?;
        let info = REGISTRY
            .iter()
            .find(|r| r.id == s.rule && r.name == s.name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule {} {}", s.rule, s.name)))?;
        Ok(Finding {
            rule: info.id,
            name: info.name,
            severity: s.severity,
            arch: s.arch,
            file: s.file,
            line: s.line,
            col: s.col,
            function: s.function,
            message: s.message,
            evidence: s.evidence,
            related: s.related,
            symbols: s.symbols,
            fingerprint: s.fingerprint,
        })
    }
}

impl Finding {
    /// A finding at a function's call or access site; `symbols` name what
    /// it is about (the list, the lock, the mask), so the fingerprint survives
    /// unrelated line shifts, and the file it is in stands for the place:
    /// renaming the function or moving the code into a helper of the same
    /// file keeps the identity.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        info: &RuleInfo,
        input: &RuleInput<'_>,
        at: FnId,
        line: u32,
        col: u32,
        message: String,
        evidence: Vec<Step>,
        symbols: Vec<String>,
    ) -> Finding {
        let program = &input.analysis.program;
        let function = program.func(at).name.clone();
        // A finding in common code is the same finding whichever arch's
        // analysis found it: one identity, merged across arches.
        let file = program.file(at).path.clone();
        let arch = if crate::enable_path::is_arch_path(&file) { input.arch() } else { "common".to_string() };
        let fingerprint = fingerprint(info.id, &arch, &file, &symbols);
        Finding {
            rule: info.id,
            name: info.name,
            severity: info.severity,
            arch,
            file,
            line,
            col,
            function,
            message,
            evidence,
            related: Vec::new(),
            symbols,
            fingerprint,
        }
    }

    /// A finding at a place that is not inside a function: a line of
    /// `Documentation/virt/kvm/locking.rst`, a file-scope definition.
    /// `function_label` stands for the function in the report and the
    /// fingerprint (e.g. the documented lock's name).
    #[allow(clippy::too_many_arguments)]
    pub fn at_file(
        info: &RuleInfo,
        input: &RuleInput<'_>,
        file: &str,
        line: u32,
        col: u32,
        function_label: &str,
        message: String,
        evidence: Vec<Step>,
        symbols: Vec<String>,
    ) -> Finding {
        let arch = if crate::enable_path::is_arch_path(file) { input.arch() } else { "common".to_string() };
        let fingerprint = fingerprint(info.id, &arch, function_label, &symbols);
        Finding {
            rule: info.id,
            name: info.name,
            severity: info.severity,
            arch,
            file: file.to_string(),
            line,
            col,
            function: function_label.to_string(),
            message,
            evidence,
            related: Vec::new(),
            symbols,
            fingerprint,
        }
    }

    pub fn with_related(mut self, related: Vec<Related>) -> Finding {
        self.related = related;
        self
    }

    pub fn with_severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }
}

/// FNV-1a over the identity parts, as 16 hex digits: stable across runs,
/// platforms and releases (unlike `std`'s hasher). `place` is the file a
/// finding is in ([`Finding::new`]) or the label of a place outside
/// functions ([`Finding::at_file`]); `symbols` are what it is about, in any
/// order. Function names are not part of it: a refactor that renames a
/// function or extracts a helper is not a fix plus a new finding.
pub fn fingerprint(rule: &str, arch: &str, place: &str, symbols: &[String]) -> String {
    let mut h = crate::hash::Fnv::default();
    h.part(rule.as_bytes()).part(arch.as_bytes()).part(place.as_bytes());
    let sorted: BTreeSet<&String> = symbols.iter().collect();
    for s in sorted {
        h.part(s.as_bytes());
    }
    format!("{:016x}", h.finish())
}

/// Which rules to run and what to keep.
#[derive(Debug, Clone, Default)]
pub struct RuleSelection {
    /// Only these ids (empty: all).
    pub only: Vec<String>,
    pub ignore: Vec<String>,
    pub min_severity: Option<Severity>,
}

impl RuleSelection {
    /// A hash of what the selection enables (stable across runs), for
    /// cache keys: the enabled rules, in registry order, and the minimum
    /// severity.
    pub fn fingerprint(&self) -> u64 {
        let mut text = String::new();
        for r in REGISTRY.iter().filter(|r| self.enabled(r)) {
            text.push_str(r.id);
            text.push(',');
        }
        text.push_str(self.min_severity.map_or("-", Severity::as_str));
        crate::hash::fnv(&[text.as_bytes()])
    }

    pub fn enabled(&self, info: &RuleInfo) -> bool {
        let hit =
            |list: &[String]| list.iter().any(|k| k.eq_ignore_ascii_case(info.id) || k.eq_ignore_ascii_case(info.name));
        (self.only.is_empty() || hit(&self.only)) && !hit(&self.ignore)
    }
}

/// Run the selected rules over one analyzed arch. Findings are sorted by
/// file, line, rule, deduplicated (one per function and object) and given
/// distinct fingerprints ([`distinct_fingerprints`]).
pub fn run_rules(input: &RuleInput<'_>, selection: &RuleSelection) -> Vec<Finding> {
    use rayon::prelude::*;
    // Rules are independent passes over one analysis: in parallel, so that
    // re-analyzing one arch (an edit, a commit) uses both cores; collected in
    // registry order, so the output does not depend on scheduling.
    let per_rule: Vec<Vec<Finding>> =
        REGISTRY.par_iter().filter(|r| selection.enabled(r)).map(|r| (r.check)(input)).collect();
    let mut findings: Vec<Finding> =
        per_rule.into_iter().flatten().filter(|f| selection.min_severity.is_none_or(|m| f.severity >= m)).collect();
    findings.sort_by(|a, b| (&a.file, a.line, a.col, a.rule).cmp(&(&b.file, b.line, b.col, b.rule)));
    // The same wart reached twice in one function (two walks of one list,
    // one state through two paths) is one finding.
    let mut seen = BTreeSet::new();
    findings.retain(|f| {
        let symbols: BTreeSet<String> = f.symbols.iter().cloned().collect();
        seen.insert((f.fingerprint.clone(), f.function.clone(), symbols))
    });
    distinct_fingerprints(&mut findings);
    findings
}

/// Give findings that share an identity (same rule, arch, file and object,
/// in different functions) distinct fingerprints: the first in file order
/// keeps it, the n-th gets it hashed with n. The order of such findings in
/// a file survives renames and helper extractions, so their identities do
/// too. `findings` is sorted by place.
pub fn distinct_fingerprints(findings: &mut [Finding]) {
    let mut count: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for f in findings.iter_mut() {
        let n = count.entry(f.fingerprint.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            let mut h = crate::hash::Fnv::default();
            h.part(f.fingerprint.as_bytes()).part(&n.to_le_bytes());
            f.fingerprint = format!("{:016x}", h.finish());
        }
    }
}
