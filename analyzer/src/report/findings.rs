//! `kvmtk check` reports: the findings of a [`CheckReport`] in the forms
//! people and tools read.
//!
//! | function          | for                     | form                                                         |
//! |-------------------|-------------------------|--------------------------------------------------------------|
//! | [`render_text`]   | a maintainer, an editor | gcc / sparse / smatch `path:line:col: warning: ...` + `note:` |
//! | [`render_json`]   | scripts                 | the stable kvmtk JSON schema, documented below               |
//! | [`render_sarif`]  | code scanning, IDEs     | SARIF 2.1.0                                                  |
//! | [`render_github`] | GitHub Actions logs     | `::warning file=...::` workflow commands                     |
//! | [`render_gitlab`] | GitLab CI merge requests | Code Quality report (`artifacts:reports:codequality`)       |
//!
//! and [`render_warnings`], the input warnings for standard error beside
//! the text form, and [`exit_code`], the process status for `--fail-on`.
//!
//! Every renderer is a pure function of the report (and of its
//! [`RenderOptions`]): same report, same bytes. Findings are rendered in
//! the order the report holds them ([`crate::check::check`] sorts them by
//! file, line, column, rule), and in every form before the input warnings,
//! which are summarized: a run on a real tree has more input warnings than
//! a CI log shows annotations. Every output ends with a newline.
//!
//! The forms people read (text, GitHub, GitLab) print each path with
//! [`RenderOptions::path_prefix`] before it, so that it opens from where the
//! command ran ([`path_prefix`]: the tree directory as given, as gcc and
//! sparse print paths; nothing for a git revision, whose paths are the
//! repository's). JSON and SARIF paths are always relative to the tree root.
//!
//! # Text
//!
//! Each finding followed by its evidence chain (root first, the root marked
//! `root:`) and its related places, then one line of counts per rule and
//! one summary line:
//!
//! ```text
//! arch/x86/kvm/x86.c:12201:2: warning: `vm_list` walked with ... [HW001 unguarded-list-walk]
//! virt/kvm/kvm_main.c:5570:9: note: root: [cpuhp_starting] kvm_starting_cpu, held {}
//! virt/kvm/kvm_main.c:5040:2: note: [cpuhp_starting] hardware_enable_nolock, held {kvm_count_lock}
//! arch/x86/kvm/x86.c:12201:2: note: [cpuhp_starting] kvm_arch_hardware_enable, held {kvm_count_lock}
//! virt/kvm/kvm_main.c:1210:2: note: `vm_list` modified here by list_add() in kvm_create_vm() with {kvm_lock} held
//! by rule: HW001 unguarded-list-walk 1
//! 1 finding (0 errors, 1 warning, 0 notes) in arches x86, arm64; 1 input warning
//! ```
//!
//! With [`RenderOptions::quiet`] (`--quiet`), the finding lines only; with
//! [`RenderOptions::color`] (a terminal, `--color`), gcc's colours. The input
//! warnings go to standard error ([`render_warnings`]), after the findings:
//! one line with their count, or with `--verbose` each once as
//! `path:line: warning: message`, followed by one line per arch whose
//! HW014 lock-order graph has something it could not model (`kvmtk: lock
//! order, x86: ...`: unknown classes, waits with no known target; a cut
//! cycle search is a warning even without `--verbose`). A warning about no
//! one file prints as `kvmtk: warning: ...`, one without a line as
//! `path: warning: ...`.
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
//!   "warnings": [InputWarning, ...],    problems met reading the input
//!   "statistics": [ArchStatistics, ...] per analyzed arch, what the analysis could
//!                                       not model (arches where HW014 ran)
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
//!
//! ArchStatistics {
//!   "arch": "x86",
//!   "lock_order": {                     HW014's lock-order graph
//!     "classes": 31,                    lock classes met
//!     "unknown_classes": 2,             lock expressions kept as a class of their own
//!                                       (never merged with another)
//!     "edges": 48,                      order edges A -> B
//!     "unresolved_completion_waits": 0, wait_for_completion*() on a completion whose class
//!                                       is unknown or that nothing signals: no edge
//!     "unresolved_work_waits": 1,       flush/cancel of a work item whose class is unknown
//!                                       or bound to no function: no edge
//!     "unresolved_thread_waits": 0,     kthread_stop() of a task bound to no thread
//!                                       function (stored through an out-parameter): no edge
//!     "cycle_search_cut": false         the cycle search hit its step budget
//!   }
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
//! One workflow command per line: one per finding,
//! `::warning file=F,line=L,col=C,title=HW001 unguarded-list-walk::MESSAGE`
//! (`::error` for errors, `::notice` for notes), then the input warnings as
//! one `::notice title=kvmtk input::` listing them, then
//! `::notice title=kvmtk summary::` with the counts (per severity and per
//! rule). GitHub shows 10 annotations of each level per step: findings come
//! first and input warnings take one notice, so they never hide a finding;
//! the summary says when a level has more than 10. A finding's message
//! carries the chain on a second line (`chain: [ioctl] kvm_dev_ioctl -> ...
//! -> kvm_arch_hardware_enable`, the context in brackets where it changes)
//! and one line per related place. Data is escaped per the runner's rules
//! (`%`, CR, LF as `%25`, `%0D`, `%0A`; properties also `:` and `,` as
//! `%3A`, `%2C`).
//!
//! # GitLab Code Quality
//!
//! A JSON array of issues, the subset of the Code Climate format GitLab
//! reads: one per finding, in order,
//!
//! ```text
//! {
//!   "description": "MESSAGE [HW001 unguarded-list-walk] chain: ...; related: ...",
//!   "check_name": "kvmtk/HW001",
//!   "fingerprint": "0123456789abcdef",   the finding's fingerprint (stable across line shifts)
//!   "severity": "major",                 note: "info", warning: "major", error: "critical"
//!   "location": { "path": "arch/x86/kvm/x86.c", "lines": { "begin": 12201 } }
//! }
//! ```
//!
//! then, when there are input warnings, one `info` issue `kvmtk/input`
//! listing them, at the first one's file.
//!
//! [`REGISTRY`]: crate::rules::REGISTRY

use std::collections::BTreeMap;
use std::path::{Component, Path};

use crate::check::CheckReport;
use crate::contexts::Step;
use crate::pipeline::InputWarning;
use crate::rules::Severity;

mod github;
mod gitlab;
mod json;
mod sarif;
mod text;

pub use github::{render_github, render_github_with};
pub use gitlab::render_gitlab;
pub use json::{render_json, JSON_SCHEMA_VERSION};
pub use sarif::{render_sarif, FINGERPRINT_KEY, SARIF_SCHEMA, SRCROOT};
pub use text::{render_text, render_text_with, render_warnings};

/// How the forms people read (text, GitHub, GitLab) show a report. JSON and
/// SARIF do not depend on it: their paths stay relative to the tree root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Put before every path shown, so that a path opens from where the
    /// command ran (`../linux/`; see [`path_prefix`]); empty for paths
    /// relative to the tree root (a repository's root with `--repo`).
    pub path_prefix: String,
    /// Text: one line per finding, no notes, no summary lines.
    pub quiet: bool,
    /// Text: ANSI colours, as gcc on a terminal.
    pub color: bool,
}

impl RenderOptions {
    /// `path` (relative to the tree root) as shown; `""` stays `""`.
    fn path(&self, path: &str) -> String {
        if path.is_empty() {
            String::new()
        } else {
            format!("{}{path}", self.path_prefix)
        }
    }
}

/// What to put before a tree-relative path so that it names the file from
/// `cwd`, as gcc and sparse print the paths they were given: a relative
/// `tree` as given (`../linux/`, `linux/`; `""` for `.`), an absolute one
/// relative to `cwd` when inside it, else absolute. Ends with `/` unless
/// empty.
pub fn path_prefix(tree: &Path, cwd: &Path) -> String {
    let relative = if tree.is_absolute() { tree.strip_prefix(cwd).unwrap_or(tree) } else { tree };
    let mut parts: Vec<String> = Vec::new();
    for c in relative.components() {
        match c {
            Component::CurDir => {}
            Component::RootDir => parts.push(String::new()),
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    match parts.as_slice() {
        [] => String::new(),
        [root] if root.is_empty() => "/".to_string(),
        _ => parts.join("/") + "/",
    }
}

/// Findings per rule, by rule id: `(id, name, count)`.
fn rule_counts(report: &CheckReport) -> Vec<(&'static str, &'static str, usize)> {
    let mut by_rule: BTreeMap<&'static str, (&'static str, usize)> = BTreeMap::new();
    for f in &report.findings {
        by_rule.entry(f.rule).or_insert((f.name, 0)).1 += 1;
    }
    by_rule.into_iter().map(|(id, (name, n))| (id, name, n)).collect()
}

/// The per-rule summary: `by rule: HW001 unguarded-list-walk 3, HW007
/// sleep-in-atomic 1`; `None` without findings.
fn rule_summary(report: &CheckReport) -> Option<String> {
    let counts = rule_counts(report);
    (!counts.is_empty()).then(|| {
        let parts: Vec<String> = counts.iter().map(|(id, name, n)| format!("{id} {name} {n}")).collect();
        format!("by rule: {}", parts.join(", "))
    })
}

/// `15 input warnings in 9 files`: what a summary of the warnings says.
fn warnings_count(warnings: &[InputWarning]) -> String {
    let files: std::collections::BTreeSet<&str> =
        warnings.iter().map(|w| w.path.as_str()).filter(|p| !p.is_empty()).collect();
    let mut s = plural(warnings.len(), "input warning", "input warnings");
    if !files.is_empty() {
        s.push_str(&format!(" in {}", plural(files.len(), "file", "files")));
    }
    s
}

/// One warning as gcc prints one: `path:line: warning: message`
/// (`kvmtk: warning: ...` when it is about no one file).
fn warning_line(w: &InputWarning, opts: &RenderOptions) -> String {
    let at = if w.path.is_empty() {
        "kvmtk".to_string()
    } else {
        match w.line {
            Some(l) => format!("{}:{l}", opts.path(&w.path)),
            None => opts.path(&w.path),
        }
    };
    format!("{at}: warning: {}", w.message)
}

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
    fn path_prefixes_as_gcc_prints_paths() {
        let cwd = Path::new("/home/me/src");
        assert_eq!(path_prefix(Path::new("."), cwd), "");
        assert_eq!(path_prefix(Path::new("./linux/"), cwd), "linux/");
        assert_eq!(path_prefix(Path::new("../linux"), cwd), "../linux/");
        assert_eq!(path_prefix(Path::new("/home/me/src/linux"), cwd), "linux/");
        assert_eq!(path_prefix(Path::new("/home/me/src"), cwd), "");
        assert_eq!(path_prefix(Path::new("/srv/linux"), cwd), "/srv/linux/");
        assert_eq!(path_prefix(Path::new("/"), cwd), "/");
        let opts = RenderOptions { path_prefix: "../linux/".into(), ..Default::default() };
        assert_eq!(opts.path("virt/kvm/kvm_main.c"), "../linux/virt/kvm/kvm_main.c");
        assert_eq!(opts.path(""), "");
    }

    #[test]
    fn positions() {
        assert_eq!(position("f.c", 3, 4), "f.c:3:4");
        assert_eq!(position("f.c", 3, 0), "f.c:3");
        assert_eq!(position("f.c", 0, 0), "f.c");
    }
}
