//! `kvmtk check` reports: the findings of a [`CheckReport`] in the forms
//! people and tools read.
//!
//! | function          | for                     | form                                                         |
//! |-------------------|-------------------------|--------------------------------------------------------------|
//! | [`render_text`]   | a maintainer, an editor | gcc / sparse / smatch `path:line:col: warning: ...` + `note:` |
//! | [`render_json`]   | scripts                 | the stable kvmtk JSON schema, documented below               |
//! | [`render_sarif`]  | code scanning, IDEs     | SARIF 2.1.0                                                  |
//! | [`render_github`] | GitHub Actions logs     | `::warning file=...::` workflow commands                     |
//!
//! and [`exit_code`], the process status for `--fail-on`.
//!
//! Every renderer is a pure function of the report: same report, same bytes.
//! Findings and warnings are rendered in the order the report holds them
//! ([`crate::check::check`] sorts findings by file, line, column, rule).
//! Every output ends with a newline.
//!
//! # Text
//!
//! Input warnings first, then each finding followed by its evidence chain
//! (root first, the root marked `root:`) and its related places, then one
//! summary line:
//!
//! ```text
//! arch/x86/kvm/x86.c:120: warning: unbalanced `#if` (the rest is analyzed)
//! arch/x86/kvm/x86.c:12201:2: warning: `vm_list` walked with ... [HW001 unguarded-list-walk]
//! virt/kvm/kvm_main.c:5570:9: note: root: [cpuhp_starting] kvm_starting_cpu, held {}
//! virt/kvm/kvm_main.c:5040:2: note: [cpuhp_starting] hardware_enable_nolock, held {kvm_count_lock}
//! arch/x86/kvm/x86.c:12201:2: note: [cpuhp_starting] kvm_arch_hardware_enable, held {kvm_count_lock}
//! virt/kvm/kvm_main.c:1210:2: note: `vm_list` modified here by list_add() in kvm_create_vm() with {kvm_lock} held
//! 1 finding (0 errors, 1 warning, 0 notes) in arches x86, arm64; 1 input warning
//! ```
//!
//! A warning about no one file prints as `kvmtk: warning: ...`, one without
//! a line as `path: warning: ...`.
//!
//! An evidence step reads `[context] function, held {locks}`, then
//! `, may hold {locks}` (held on some paths only), `, serialized by {locks}`
//! (held by an initiator or the hotplug machinery on the function's behalf)
//! and ` (via registration(callback))` (how the context was entered), each
//! only when there is something to say. Its location is the call site
//! leading to the next step; for the last step, the finding's site.
//!
//! # JSON (schema version 1)
//!
//! A pretty-printed object; keys always appear, in the order listed here,
//! whatever their value (`null` for an absent optional, `[]` for an empty
//! list). Version 1 only ever gains keys at the end of an object; a removed
//! or renamed key or a changed meaning bumps `version`.
//!
//! ```text
//! {
//!   "version": 1,                       integer, the schema version
//!   "tool": "kvmtk",
//!   "tree": "linux-6.1",                the analyzed tree's label (directory or git revision)
//!   "arches": ["x86", "arm64"],         the arches analyzed ("common" when the tree has none)
//!   "findings": [Finding, ...],         sorted by file, line, col, rule
//!   "warnings": [InputWarning, ...]     problems met reading the input
//! }
//!
//! Finding {
//!   "rule": "HW001",                    rule id, see `kvmtk explain`
//!   "name": "unguarded-list-walk",      rule name
//!   "severity": "warning",              "note" | "warning" | "error"
//!   "arch": "x86",                      the arch whose analysis found it; "common" for
//!                                       common code (reported once for all arches)
//!   "file": "arch/x86/kvm/x86.c",       path relative to the tree root, `/`-separated
//!   "line": 12201,                      1-based
//!   "col": 2,                           1-based
//!   "function": "kvm_arch_hardware_enable",  the function containing the site
//!   "message": "...",                   one line; identifiers quoted with backticks
//!   "evidence": [Step, ...],            the chain root -> ... -> site, root first; may be []
//!   "related": [Related, ...],          secondary places (writers, the missing undo, ...)
//!   "symbols": ["vm_list", ...],        what the finding is about
//!   "fingerprint": "0123456789abcdef"   16 hex digits, stable across line shifts: rule +
//!                                       arch + function + symbols; use it to baseline
//! }
//!
//! Step {
//!   "function": "hardware_enable_nolock",
//!   "file": "virt/kvm/kvm_main.c",
//!   "line": 5040,                       the call site leading to the next step
//!   "col": 2,                           (last step: the finding's site)
//!   "context": "ipi",                   execution context: "ioctl", "module_init", "ipi",
//!                                       "cpuhp_starting", "cpuhp_online", "syscore", ...
//!   "held": ["kvm_count_lock"],         locks held on every path here
//!   "may_held": [],                     locks held on some paths only
//!   "serialized_by": ["kvm_lock"],      locks held elsewhere on this function's behalf
//!                                       (an initiator waiting for an IPI, cpus_read_lock)
//!   "via": "on_each_cpu(hardware_enable_nolock)"   string or null: the registration by
//!                                       which this step was entered, when the context changed
//! }
//!
//! Related { "file": "...", "line": 1210, "col": 2, "message": "..." }
//!
//! InputWarning {
//!   "path": "arch/x86/kvm/x86.c",       "" when the warning is about no one file
//!   "line": 120,                        integer or null
//!   "message": "..."
//! }
//! ```
//!
//! # SARIF
//!
//! SARIF 2.1.0, one run. `tool.driver` is `kvmtk` with its version and a
//! `rules` entry for every registered rule (whether it ran or not), so
//! `ruleIndex` is the rule's position in [`REGISTRY`]: `id`, `name`,
//! `shortDescription` (the summary), `fullDescription` (the documentation's
//! "What it finds" section), `help` (the whole documentation, text and
//! markdown) and `defaultConfiguration.level`. Each result has `ruleId`,
//! `ruleIndex`, `level`, `message`, one location (`uriBaseId` `SRCROOT`, the
//! tree root, plus the function as a logical location),
//! `partialFingerprints["kvmtk/v1"]` (the fingerprint), the evidence as
//! `codeFlows[0].threadFlows[0].locations` (each location's message is the
//! step as in the text form; its `state` holds the context and lock sets),
//! `relatedLocations` for the related places (ids from 1), and
//! `properties` `arch` and `symbols`. Input warnings are
//! `invocations[0].toolExecutionNotifications` with level `warning`.
//!
//! # GitHub Actions
//!
//! One workflow command per line: input warnings, then one per finding,
//! `::warning file=F,line=L,col=C,title=HW001 unguarded-list-walk::MESSAGE`
//! (`::error` for errors, `::notice` for notes). The message carries the
//! chain on a second line (`chain: [ioctl] kvm_dev_ioctl -> ... ->
//! kvm_arch_hardware_enable`, the context in brackets where it changes) and
//! one line per related place. Data is escaped per the runner's rules (`%`,
//! CR, LF as `%25`, `%0D`, `%0A`; properties also `:` and `,` as `%3A`,
//! `%2C`).
//!
//! [`REGISTRY`]: crate::rules::REGISTRY

use crate::check::CheckReport;
use crate::contexts::Step;
use crate::rules::Severity;

mod github;
mod json;
mod sarif;
mod text;

pub use github::render_github;
pub use json::{render_json, JSON_SCHEMA_VERSION};
pub use sarif::{render_sarif, FINGERPRINT_KEY, SARIF_SCHEMA, SRCROOT};
pub use text::render_text;

/// The process exit status for `kvmtk check --fail-on <fail_on>`: 1 when any
/// finding is at least as severe as `fail_on`, else 0. Input warnings never
/// fail the check (they are reported, and the rest of the tree is analyzed).
pub fn exit_code(report: &CheckReport, fail_on: Severity) -> i32 {
    i32::from(report.findings.iter().any(|f| f.severity >= fail_on))
}

/// Findings per severity, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    errors: usize,
    warnings: usize,
    notes: usize,
}

impl Counts {
    fn of(report: &CheckReport) -> Counts {
        let mut c = Counts::default();
        for f in &report.findings {
            match f.severity {
                Severity::Error => c.errors += 1,
                Severity::Warning => c.warnings += 1,
                Severity::Note => c.notes += 1,
            }
        }
        c
    }
}

/// `n thing` / `n things`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A lock set as the rules' messages print it: `{}`, `{kvm_lock, kvm_count_lock}`.
fn lock_set(names: &[String]) -> String {
    format!("{{{}}}", names.join(", "))
}

/// One evidence step in words: `[ipi] hardware_enable_nolock, held {},
/// serialized by {kvm_count_lock} (via on_each_cpu(hardware_enable_nolock))`.
fn describe_step(step: &Step) -> String {
    let mut s = format!("[{}] {}, held {}", step.context, step.function, lock_set(&step.held));
    if !step.may_held.is_empty() {
        s.push_str(&format!(", may hold {}", lock_set(&step.may_held)));
    }
    if !step.serialized_by.is_empty() {
        s.push_str(&format!(", serialized by {}", lock_set(&step.serialized_by)));
    }
    if let Some(via) = &step.via {
        s.push_str(&format!(" (via {via})"));
    }
    s
}

/// The chain on one line: `[ioctl] kvm_dev_ioctl -> kvm_create_vm -> [ipi]
/// hardware_enable_nolock -> kvm_arch_hardware_enable`; the context shown at
/// the root and wherever it changes.
fn compact_chain(evidence: &[Step]) -> String {
    let mut parts = Vec::with_capacity(evidence.len());
    let mut context: Option<&str> = None;
    for step in evidence {
        if context != Some(step.context.as_str()) {
            parts.push(format!("[{}] {}", step.context, step.function));
            context = Some(&step.context);
        } else {
            parts.push(step.function.clone());
        }
    }
    parts.join(" -> ")
}

/// `path:line:col` with the parts that are known.
fn position(file: &str, line: u32, col: u32) -> String {
    match (line, col) {
        (0, _) => file.to_string(),
        (l, 0) => format!("{file}:{l}"),
        (l, c) => format!("{file}:{l}:{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(function: &str, context: &str) -> Step {
        Step {
            function: function.into(),
            file: "virt/kvm/kvm_main.c".into(),
            line: 1,
            col: 1,
            context: context.into(),
            held: vec![],
            may_held: vec![],
            serialized_by: vec![],
            via: None,
        }
    }

    #[test]
    fn chain_shows_context_changes_only() {
        let chain = [step("a", "ioctl"), step("b", "ioctl"), step("c", "ipi"), step("d", "ipi")];
        assert_eq!(compact_chain(&chain), "[ioctl] a -> b -> [ipi] c -> d");
        assert_eq!(compact_chain(&[]), "");
    }

    #[test]
    fn step_mentions_only_what_is_there() {
        let mut s = step("hardware_enable_nolock", "ipi");
        assert_eq!(describe_step(&s), "[ipi] hardware_enable_nolock, held {}");
        s.held = vec!["a".into(), "b".into()];
        s.may_held = vec!["c".into()];
        s.serialized_by = vec!["kvm_count_lock".into()];
        s.via = Some("on_each_cpu(hardware_enable_nolock)".into());
        assert_eq!(
            describe_step(&s),
            "[ipi] hardware_enable_nolock, held {a, b}, may hold {c}, serialized by {kvm_count_lock} \
             (via on_each_cpu(hardware_enable_nolock))"
        );
    }

    #[test]
    fn positions() {
        assert_eq!(position("f.c", 3, 4), "f.c:3:4");
        assert_eq!(position("f.c", 3, 0), "f.c:3");
        assert_eq!(position("f.c", 0, 0), "f.c");
    }
}
