//! `kvmtk lint`: the findings a change introduces and fixes, commit by
//! commit, for CI.
//!
//! Each step (a commit of a range, or a patch applied in memory by
//! `patchgen::lint`) is checked against its parent: a finding is
//! *introduced* when its fingerprint is absent from the parent's findings,
//! *fixed* when the parent's fingerprint is absent from the step's. The
//! fingerprint names the rule, arch, function and symbols, not lines, so a
//! line shift is neither.
//!
//! The findings reported as *new* (and rendered with the `check`
//! renderers) are those introduced by any step, so a commit that breaks
//! bisection is caught even when a later one repairs it, minus those
//! accepted by a [`Baseline`]. A new finding still present at the tip is
//! shown as the tip has it (so that SARIF locations match the head of a
//! pull request), otherwise as the step that introduced it had it.
//!
//! # Failing closed
//!
//! A verdict covers what was analyzed, and says so. Each tree checked
//! carries the files its analysis does not cover ([`Unanalyzed`]: not
//! parsed at all, unreadable, a kernel document that did not parse). When
//! those differ between a step and its parent (a file parsed on one side
//! and not on the other, or changed while not parsed), the comparison is
//! not sound: the analysis is whole-program, so a file that drops out can
//! take any finding with it (a root, a lock, a caller). Such a step is
//! *unanalyzed*: it lists the files ([`CoverageChange`]), the parent's
//! findings absent from it are *unknown* (never *fixed*), what it
//! introduces is still reported, and the lint fails whatever `--fail-on`
//! says ([`LintReport::exit_code`]). Objects missing from the repository
//! (a partial clone, a damaged one) and a range reaching the boundary of
//! a shallow clone are errors (exit 2) before any verdict: kvmtk reads the
//! object database and never fetches, and each message says how to get a
//! complete clone.
//!
//! Cost: facts come from a [`FactsCache`] (a commit touching one file
//! re-parses one file), and each arch's findings are memoized by the blob
//! ids of the files that arch's analysis reads, so a commit touching only
//! `arch/x86` re-analyzes x86 only and a commit touching no analyzed file
//! is not analyzed at all. A commit's check costs mostly one arch's
//! analysis, which runs on one core, so commits (and the trees of a patch
//! series) are checked side by side, a window at a time, and recorded in
//! order: the report does not depend on the number of threads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository, Sort};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::ApiModel;
use crate::cache::{FactsCache, ResultCache};
use crate::check::{CheckReport, Checker, Unanalyzed};
use crate::progress::{NoProgress, Progress};
use crate::report::findings as render;
use crate::rules::{Finding, RuleSelection, Severity};
use crate::source::{SourceOptions, SourceSpec, SourceTree};
use crate::write::write_output;

/// A usage or input error (exit status 2): names the file or revision and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LintError {
    /// The whole message, for a user to read.
    pub message: String,
}

impl LintError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> LintError {
        LintError { message: message.into() }
    }
}

impl From<crate::source::SourceError> for LintError {
    fn from(e: crate::source::SourceError) -> LintError {
        LintError::new(e.to_string())
    }
}

// ---------------------------------------------------------------------------
// Baseline

/// Version of the baseline file format.
pub const BASELINE_VERSION: u32 = 1;

/// One accepted finding. Only the fingerprint matters to the tool; the
/// rest is there for the humans reviewing the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BaselineEntry {
    /// The finding's fingerprint (16 hex digits).
    pub fingerprint: String,
    /// Rule id (`HW005`).
    pub rule: String,
    /// The arch whose analysis found it, or `common`.
    pub arch: String,
    /// File the finding was reported in when accepted.
    pub file: String,
    /// The function containing the site.
    pub function: String,
    /// The severity it was accepted at: the same finding at a higher
    /// severity is not accepted (absent in older files: any severity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// Known findings to accept: `{"version": 1, "tool": "kvmtk", "findings": [...]}`,
/// sorted by fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// [`BASELINE_VERSION`].
    pub version: u32,
    /// Always `kvmtk`.
    pub tool: String,
    /// The accepted findings.
    pub findings: Vec<BaselineEntry>,
}

/// The largest `--baseline` file read: a finding's entry takes about
/// 200 bytes, so this holds some 80,000 findings (the real 6.1 tree has
/// a few hundred).
pub const MAX_BASELINE_BYTES: u64 = 16 << 20;

/// The bytes of a baseline file: a regular file of at most
/// [`MAX_BASELINE_BYTES`], refused unread otherwise (a FIFO or
/// `/dev/zero` neither blocks nor fills memory).
fn read_baseline_file(path: &Path) -> Result<Vec<u8>, LintError> {
    use crate::read::{human_size, read_bounded, Links};
    read_bounded(path, MAX_BASELINE_BYTES, Links::Follow).map_err(|e| {
        LintError::new(format!(
            "cannot read baseline `{}`: {e} (a baseline is a JSON file of at most {})",
            path.display(),
            human_size(MAX_BASELINE_BYTES)
        ))
    })
}

impl Baseline {
    /// An empty baseline.
    pub fn empty() -> Baseline {
        Baseline { version: BASELINE_VERSION, tool: "kvmtk".into(), findings: Vec::new() }
    }

    /// Read a baseline file. A missing, unreadable or malformed file is an
    /// error naming it.
    pub fn load(path: &Path) -> Result<Baseline, LintError> {
        let bytes = read_baseline_file(path)?;
        let b: Baseline = serde_json::from_slice(&bytes).map_err(|e| {
            LintError::new(format!(
                "baseline `{}` is not a kvmtk baseline ({e}); expected JSON {{\"version\": {BASELINE_VERSION}, \"tool\": \"kvmtk\", \"findings\": [...]}} as written by --write-baseline",
                path.display()
            ))
        })?;
        if b.version != BASELINE_VERSION {
            return Err(LintError::new(format!(
                "baseline `{}` has version {}; this kvmtk reads version {BASELINE_VERSION}",
                path.display(),
                b.version
            )));
        }
        Ok(b)
    }

    /// Whether the finding with this fingerprint is accepted at this
    /// severity.
    pub fn contains(&self, fingerprint: &str, severity: Severity) -> bool {
        self.findings.iter().any(|e| e.fingerprint == fingerprint && e.severity.is_none_or(|s| severity <= s))
    }

    /// This baseline plus `findings`, sorted and without duplicates.
    pub fn with(&self, findings: &[Finding]) -> Baseline {
        let mut by_fp: BTreeMap<String, BaselineEntry> =
            self.findings.iter().map(|e| (e.fingerprint.clone(), e.clone())).collect();
        for f in findings {
            by_fp.entry(f.fingerprint.clone()).or_insert_with(|| BaselineEntry {
                fingerprint: f.fingerprint.clone(),
                rule: f.rule.to_string(),
                arch: f.arch.clone(),
                file: f.file.clone(),
                function: f.function.clone(),
                severity: Some(f.severity),
            });
        }
        Baseline { version: BASELINE_VERSION, tool: "kvmtk".into(), findings: by_fp.into_values().collect() }
    }

    /// Write the baseline atomically (a temporary file beside it, renamed).
    pub fn write(&self, path: &Path) -> Result<(), LintError> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        write_output(path, text.as_bytes())
            .map_err(|e| LintError::new(format!("cannot write baseline `{}`: {e}", path.display())))
    }
}

// ---------------------------------------------------------------------------
// Checking trees with memoization

/// What to check and how.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Which files to load (arches, extra paths).
    pub source: SourceOptions,
    /// Which rules to run.
    pub selection: RuleSelection,
}

/// Checks trees one after another through a [`Checker`]: facts come from
/// the cache, whole per-arch results from the result cache.
pub struct Linter<'a> {
    checker: Checker<'a>,
    opts: LintOptions,
    progress: &'a dyn Progress,
}

impl<'a> Linter<'a> {
    /// A linter with the given model, facts cache and options; per-arch
    /// results are memoized in memory.
    pub fn new(api: &'a ApiModel, cache: &'a FactsCache, opts: LintOptions) -> Linter<'a> {
        Linter::with_results(api, cache, ResultCache::in_memory(), opts)
    }

    /// [`Linter::new`] with a result cache of the caller's (persistent
    /// with [`ResultCache::with_dir`]).
    pub fn with_results(
        api: &'a ApiModel,
        cache: &'a FactsCache,
        results: ResultCache,
        opts: LintOptions,
    ) -> Linter<'a> {
        Linter { checker: Checker::new(api, cache, results, opts.selection.clone()), opts, progress: &NoProgress }
    }

    /// This linter, telling `progress` which commit or patch it checks
    /// (one stage, a step per commit or patch).
    pub fn with_progress(self, progress: &'a dyn Progress) -> Linter<'a> {
        Linter { progress, ..self }
    }

    /// Where to report progress (see [`Linter::with_progress`]).
    pub fn progress(&self) -> &'a dyn Progress {
        self.progress
    }

    /// The options this linter loads trees with.
    pub fn options(&self) -> &LintOptions {
        &self.opts
    }

    /// The facts cache.
    pub fn cache(&self) -> &FactsCache {
        self.checker.facts()
    }

    /// The result cache.
    pub fn results(&self) -> &ResultCache {
        self.checker.results()
    }

    /// Load a tree with this linter's options.
    pub fn load(&self, spec: &SourceSpec) -> Result<SourceTree, LintError> {
        Ok(SourceTree::load(spec, &self.opts.source)?)
    }

    /// [`Linter::load`], leaving contents unread until the checker needs
    /// them ([`SourceTree::load_deferred`]).
    pub fn load_deferred(&self, spec: &SourceSpec) -> Result<SourceTree, LintError> {
        Ok(SourceTree::load_deferred(spec, &self.opts.source)?)
    }

    /// Check a loaded tree: the same report as [`crate::check::check`]
    /// on the parsed tree, computed only for what changed since the trees
    /// checked before, with the files it does not cover.
    pub fn check(&self, source: SourceTree) -> TreeCheck {
        let outcome = self.checker.check(source);
        TreeCheck { report: outcome.report, unanalyzed: outcome.unanalyzed }
    }
}

/// One tree's findings and the files they do not cover: one side of a step.
#[derive(Debug, Clone)]
pub struct TreeCheck {
    pub report: CheckReport,
    /// Sorted (see [`Unanalyzed`]).
    pub unanalyzed: Vec<Unanalyzed>,
}

impl TreeCheck {
    /// No tree: the parent of a root commit.
    pub fn empty() -> TreeCheck {
        TreeCheck {
            report: CheckReport {
                tree: String::new(),
                arches: Vec::new(),
                findings: Vec::new(),
                warnings: Vec::new(),
                statistics: Vec::new(),
            },
            unanalyzed: Vec::new(),
        }
    }
}

/// A file whose coverage differs between a step and its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoverageChange {
    pub path: String,
    /// `after`: not analyzed in the step's tree (analyzed, or other
    /// contents, in the parent's); `before`: not analyzed in the parent's.
    pub side: &'static str,
    /// Why it was not analyzed.
    pub reason: String,
}

impl CoverageChange {
    /// `step` is `commit` or `patch`.
    fn describe(&self, step: &str) -> String {
        let (this, parent) = (format!("this {step}'s tree"), format!("the tree before this {step}"));
        let (missing, present) = if self.side == "after" { (this, parent) } else { (parent, this) };
        format!(
            "{}: not analyzed in {missing}, analyzed (or with other contents) in {present}: {}",
            self.path, self.reason
        )
    }
}

/// The coverage differences between `before` and `after`: entries (path,
/// contents, reason) present on one side only.
fn coverage_changes(before: &[Unanalyzed], after: &[Unanalyzed]) -> Vec<CoverageChange> {
    let key = |u: &Unanalyzed| (u.path.clone(), u.blob_id.clone());
    let b: BTreeSet<_> = before.iter().map(key).collect();
    let a: BTreeSet<_> = after.iter().map(key).collect();
    let mut out: Vec<CoverageChange> = after
        .iter()
        .filter(|u| !b.contains(&key(u)))
        .map(|u| CoverageChange { path: u.path.clone(), side: "after", reason: u.reason.clone() })
        .chain(before.iter().filter(|u| !a.contains(&key(u))).map(|u| CoverageChange {
            path: u.path.clone(),
            side: "before",
            reason: u.reason.clone(),
        }))
        .collect();
    out.sort_by(|x, y| (&x.path, x.side).cmp(&(&y.path, y.side)));
    out.dedup();
    out
}

// ---------------------------------------------------------------------------
// The report

/// A finding as the per-step section lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingSummary {
    pub rule: String,
    pub name: String,
    pub severity: Severity,
    pub fingerprint: String,
    pub arch: String,
    pub function: String,
    pub symbols: Vec<String>,
    pub file: String,
    pub line: u32,
    pub message: String,
    /// For an introduced finding the parent had at a lower severity: that
    /// severity (the finding got worse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<Severity>,
}

impl FindingSummary {
    fn of(f: &Finding) -> FindingSummary {
        FindingSummary {
            rule: f.rule.to_string(),
            name: f.name.to_string(),
            severity: f.severity,
            fingerprint: f.fingerprint.clone(),
            arch: f.arch.clone(),
            function: f.function.clone(),
            symbols: f.symbols.clone(),
            file: f.file.clone(),
            line: f.line,
            message: f.message.clone(),
            was: None,
        }
    }

    /// `HW005 note common hardware_enable_nolock (cpus_hardware_enabled) [fp] at file:line`.
    fn describe(&self) -> String {
        let symbols = if self.symbols.is_empty() { String::new() } else { format!(" ({})", self.symbols.join(", ")) };
        let was = self.was.map(|w| format!(" (was {} in the parent)", w.as_str())).unwrap_or_default();
        format!(
            "{} {}{was} {} {}{symbols} [{}] at {}:{}",
            self.rule,
            self.severity.as_str(),
            self.arch,
            self.function,
            self.fingerprint,
            self.file,
            self.line
        )
    }
}

/// One commit (or patch) against its parent.
#[derive(Debug, Clone, Serialize)]
pub struct StepLint {
    /// The commit id, or the patch's name (`0001-x.patch`, `series.mbox#2`).
    pub id: String,
    /// The commit's or patch's subject.
    pub subject: String,
    /// Findings it introduces that the baseline does not accept.
    pub introduced: Vec<FindingSummary>,
    /// Findings it introduces that the baseline accepts.
    pub accepted: Vec<FindingSummary>,
    /// Findings of its parent it removes (empty when `unanalyzed` is not).
    pub fixed: Vec<FindingSummary>,
    /// Files analyzed on one side of the step and not on the other: the
    /// step is not analyzed completely and fails the lint.
    pub unanalyzed: Vec<CoverageChange>,
    /// Findings of its parent absent from it while `unanalyzed` is not
    /// empty: whether it fixes them is unknown.
    pub unknown: Vec<FindingSummary>,
    /// How its patch applied, when not as written: already applied (then
    /// skipped), with reduced context, by a three-way merge, not at all,
    /// or on a tree without an earlier patch that did not apply.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Not checked: its patch was already applied or did not apply.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Time spent loading, parsing and checking its tree (not rendered:
    /// outputs stay deterministic; `KVMTK_TIMINGS` prints it).
    #[serde(skip)]
    pub elapsed: Option<std::time::Duration>,
}

/// The whole lint of a range or of a set of patches.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// `range` or `patches`.
    pub mode: String,
    /// What was linted: `repo v6.1..topic`, or the patches on a tree.
    pub subject: String,
    /// The label of the base tree.
    pub base: String,
    pub steps: Vec<StepLint>,
    /// The new findings (see the module documentation) with the input
    /// warnings the change introduces, in `check`'s form.
    #[serde(skip)]
    pub new: CheckReport,
}

impl LintReport {
    /// 1 when a new finding is at least as severe as `fail_on`, or when a
    /// step was not analyzed completely (whatever `fail_on`: its findings
    /// at every severity are unknown), else 0.
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        if self.is_complete() {
            render::exit_code(&self.new, fail_on) as u8
        } else {
            1
        }
    }

    /// Whether every step was analyzed completely.
    pub fn is_complete(&self) -> bool {
        self.steps.iter().all(|s| s.unanalyzed.is_empty())
    }

    /// One line saying which steps were not analyzed completely, or `None`.
    pub fn incomplete_summary(&self) -> Option<String> {
        let bad: Vec<&StepLint> = self.steps.iter().filter(|s| !s.unanalyzed.is_empty()).collect();
        if bad.is_empty() {
            return None;
        }
        let files: BTreeSet<&str> = bad.iter().flat_map(|s| s.unanalyzed.iter().map(|c| c.path.as_str())).collect();
        let unknown: usize = bad.iter().map(|s| s.unknown.len()).sum();
        Some(format!(
            "lint incomplete: {} of {} {} not analyzed completely ({} not analyzed on one side of a step); \
             {unknown} earlier finding{} unknown (not known to be fixed); failing whatever --fail-on says",
            bad.len(),
            self.steps.len(),
            if self.mode == "range" { "commits" } else { "patches" },
            files.into_iter().collect::<Vec<_>>().join(", "),
            if unknown == 1 { " is" } else { "s are" },
        ))
    }
}

/// One step before the baseline is applied.
struct RawStep {
    id: String,
    subject: String,
    introduced: Vec<Finding>,
    /// Fingerprints of `introduced` findings the parent had at a lower
    /// severity, with it.
    was: BTreeMap<String, Severity>,
    fixed: Vec<Finding>,
    unanalyzed: Vec<CoverageChange>,
    unknown: Vec<Finding>,
    elapsed: Option<std::time::Duration>,
}

/// Commits of a range: each with its first parent.
type RangeCommits = Vec<(Oid, Option<Oid>)>;

/// Commits of a range checked at once per thread (see [`lint_range`]).
const COMMITS_IN_FLIGHT_PER_THREAD: usize = 8;

/// Collects steps, then builds the [`LintReport`].
pub struct LintBuilder {
    mode: String,
    subject: String,
    base: CheckReport,
    steps: Vec<RawStep>,
    tip: Option<CheckReport>,
    /// Notes by step index, and the steps skipped (see [`StepLint`]).
    notes: BTreeMap<usize, Vec<String>>,
    skipped: BTreeSet<usize>,
}

/// Findings of `after` whose fingerprint is not in `before`.
fn minus(after: &CheckReport, before: &CheckReport) -> Vec<Finding> {
    let b: BTreeSet<&str> = before.findings.iter().map(|f| f.fingerprint.as_str()).collect();
    after.findings.iter().filter(|f| !b.contains(f.fingerprint.as_str())).cloned().collect()
}

/// The worst severity of each fingerprint among a tree's findings, given
/// as (fingerprint, severity): what the findings of a step are compared
/// with ([`is_new`]).
pub fn worst_severities<'a>(findings: impl IntoIterator<Item = (&'a str, Severity)>) -> BTreeMap<&'a str, Severity> {
    let mut out: BTreeMap<&str, Severity> = BTreeMap::new();
    for (fp, sev) in findings {
        let s = out.entry(fp).or_insert(sev);
        *s = (*s).max(sev);
    }
    out
}

/// Whether a finding is new against the parent's [`worst_severities`]: its
/// fingerprint is absent, or known only at a lower severity (an HW014
/// cycle that needed a path some machines never take and now needs none
/// got worse: `lint`, `series test` and the transformations all count it
/// as introduced).
pub fn is_new(known: &BTreeMap<&str, Severity>, fingerprint: &str, severity: Severity) -> bool {
    known.get(fingerprint).is_none_or(|s| *s < severity)
}

impl LintBuilder {
    /// Start from the base tree's report. `mode` is `range` or `patches`.
    pub fn new(mode: &str, subject: &str, base: &TreeCheck) -> LintBuilder {
        LintBuilder {
            mode: mode.into(),
            subject: subject.into(),
            base: base.report.clone(),
            steps: Vec::new(),
            tip: None,
            notes: BTreeMap::new(),
            skipped: BTreeSet::new(),
        }
    }

    /// Add a note to the last step recorded.
    pub fn note(&mut self, note: &str) {
        if let Some(k) = self.steps.len().checked_sub(1) {
            self.notes.entry(k).or_default().push(note.to_string());
        }
    }

    /// Record a step that was not checked (its patch was already applied,
    /// or did not apply), with why.
    pub fn skip(&mut self, id: &str, subject: &str, note: &str) {
        self.steps.push(RawStep {
            id: id.into(),
            subject: subject.into(),
            introduced: Vec::new(),
            was: BTreeMap::new(),
            fixed: Vec::new(),
            unanalyzed: Vec::new(),
            unknown: Vec::new(),
            elapsed: None,
        });
        self.skipped.insert(self.steps.len() - 1);
        self.note(note);
    }

    /// Record a step: `after` is its tree's check, `before` its parent's.
    /// `elapsed` is the time its check took, when measured. Where the two
    /// do not cover the same files, the parent's findings absent from
    /// `after` are unknown rather than fixed.
    pub fn push(
        &mut self,
        id: &str,
        subject: &str,
        before: &TreeCheck,
        after: TreeCheck,
        elapsed: Option<std::time::Duration>,
    ) {
        let known = worst_severities(before.report.findings.iter().map(|f| (f.fingerprint.as_str(), f.severity)));
        let introduced: Vec<Finding> =
            after.report.findings.iter().filter(|f| is_new(&known, &f.fingerprint, f.severity)).cloned().collect();
        // Those the parent had at a lower severity: they got worse.
        let was: BTreeMap<String, Severity> = introduced
            .iter()
            .filter_map(|f| known.get(f.fingerprint.as_str()).map(|s| (f.fingerprint.clone(), *s)))
            .collect();
        let gone = minus(&before.report, &after.report);
        let unanalyzed = coverage_changes(&before.unanalyzed, &after.unanalyzed);
        let (fixed, unknown) = if unanalyzed.is_empty() { (gone, Vec::new()) } else { (Vec::new(), gone) };
        self.steps.push(RawStep {
            id: id.into(),
            subject: subject.into(),
            introduced,
            was,
            fixed,
            unanalyzed,
            unknown,
            elapsed,
        });
        self.tip = Some(after.report);
    }

    /// The report, with `baseline` accepting known findings.
    pub fn finish(self, baseline: Option<&Baseline>) -> LintReport {
        let accepted = |f: &Finding| baseline.is_some_and(|b| b.contains(&f.fingerprint, f.severity));
        let tip = self.tip.as_ref().unwrap_or(&self.base);
        let mut new: BTreeMap<String, Finding> = BTreeMap::new();
        let mut steps = Vec::new();
        for (k, RawStep { id, subject, introduced, was, fixed, unanalyzed, unknown, elapsed }) in
            self.steps.iter().enumerate()
        {
            let (ok, bad): (Vec<&Finding>, Vec<&Finding>) = introduced.iter().partition(|f| accepted(f));
            for f in &bad {
                let at_tip = tip.findings.iter().find(|t| t.fingerprint == f.fingerprint);
                new.entry(f.fingerprint.clone()).or_insert_with(|| at_tip.unwrap_or(f).clone());
            }
            steps.push(StepLint {
                id: id.clone(),
                subject: subject.clone(),
                introduced: bad
                    .into_iter()
                    .map(|f| FindingSummary { was: was.get(&f.fingerprint).copied(), ..FindingSummary::of(f) })
                    .collect(),
                accepted: ok.into_iter().map(FindingSummary::of).collect(),
                fixed: fixed.iter().map(FindingSummary::of).collect(),
                unanalyzed: unanalyzed.clone(),
                unknown: unknown.iter().map(FindingSummary::of).collect(),
                notes: self.notes.get(&k).cloned().unwrap_or_default(),
                skipped: self.skipped.contains(&k),
                elapsed: *elapsed,
            });
        }
        let mut findings: Vec<Finding> = new.into_values().collect();
        findings.sort_by(|a, b| (&a.file, a.line, a.col, a.rule).cmp(&(&b.file, b.line, b.col, b.rule)));
        let warnings = tip.warnings.iter().filter(|w| !self.base.warnings.contains(w)).cloned().collect();
        LintReport {
            mode: self.mode,
            subject: self.subject,
            base: self.base.tree.clone(),
            steps,
            // What the tip's analysis could not model.
            new: CheckReport {
                tree: tip.tree.clone(),
                arches: tip.arches.clone(),
                findings,
                warnings,
                statistics: tip.statistics.clone(),
            },
        }
    }

    /// All findings introduced by the steps (whatever the baseline), for
    /// `--write-baseline`.
    pub fn introduced(&self) -> Vec<Finding> {
        self.steps.iter().flat_map(|s| s.introduced.iter().cloned()).collect()
    }
}

// ---------------------------------------------------------------------------
// Rendering

/// Output formats, as for `kvmtk check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintFormat {
    /// Per-step section, then the new findings gcc-style, then (when a
    /// step was not analyzed completely) a `lint incomplete:` line.
    Text,
    /// `{"version", "tool", "mode", "subject", "base", "steps", "report",
    /// "complete"}`; `report` is the `check` JSON of the new findings. Each
    /// step: `id`, `subject`, `introduced` (a finding the parent had at
    /// a lower severity carries it as `was`), `accepted`, `fixed`,
    /// `unanalyzed` (`[{"path", "side": "after" | "before", "reason"}]`:
    /// files analyzed on one side of the step only) and `unknown` (the
    /// parent's findings absent from a step with `unanalyzed` files: not
    /// known to be fixed). `complete` is false when any step has
    /// `unanalyzed` files (the lint then fails).
    Json,
    /// SARIF 2.1.0 of the new findings; a step not analyzed completely
    /// sets `invocations[0].executionSuccessful` to false and adds an
    /// `error` notification per file to `toolExecutionNotifications`.
    Sarif,
    /// GitHub workflow commands for the new findings, after an `::error`
    /// per file a step did not analyze completely.
    Github,
    /// GitLab Code Quality issues for the new findings.
    Gitlab,
}

/// Render a lint report.
pub fn render_report(report: &LintReport, format: LintFormat) -> String {
    render_report_with(report, format, &render::RenderOptions::default())
}

/// Render a lint report; `opts` as for `check`'s text, GitHub and GitLab
/// forms (with `opts.quiet`, the text is the new findings' lines only).
pub fn render_report_with(report: &LintReport, format: LintFormat, opts: &render::RenderOptions) -> String {
    match format {
        LintFormat::Text if opts.quiet => render::render_text_with(&report.new, opts),
        LintFormat::Text => render_text(report, opts),
        LintFormat::Json => render_json(report),
        LintFormat::Sarif => render_sarif(report),
        LintFormat::Github => render_github(report, opts),
        LintFormat::Gitlab => render::render_gitlab(&report.new, opts),
    }
}

/// `(step id, change)` for every file a step did not analyze completely.
fn coverage_notices(report: &LintReport) -> Vec<(String, &CoverageChange)> {
    let step = if report.mode == "range" { "commit" } else { "patch" };
    report.steps.iter().flat_map(|s| s.unanalyzed.iter().map(move |c| (format!("{step} {}", s.id), c))).collect()
}

fn render_sarif(report: &LintReport) -> String {
    let sarif = render::render_sarif(&report.new);
    let notices = coverage_notices(report);
    if notices.is_empty() {
        return sarif;
    }
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&sarif) else {
        return sarif;
    };
    if let Some(invocation) = doc.pointer_mut("/runs/0/invocations/0").and_then(|v| v.as_object_mut()) {
        invocation.insert("executionSuccessful".into(), serde_json::Value::Bool(false));
        let list = invocation.entry("toolExecutionNotifications").or_insert_with(|| serde_json::json!([]));
        if let Some(list) = list.as_array_mut() {
            for (id, c) in &notices {
                list.push(serde_json::json!({
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": c.path, "uriBaseId": render::SRCROOT}}}],
                    "message": {"text": format!("{id}: {}; its findings are unknown", c.describe(id.split(' ').next().unwrap_or("step")))},
                    "level": "error",
                }));
            }
        }
    }
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or(sarif);
    out.push('\n');
    out
}

fn render_github(report: &LintReport, opts: &render::RenderOptions) -> String {
    // Workflow command escaping: data `%`, CR, LF; properties also `:`, `,`.
    let data = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    let property = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for (id, c) in coverage_notices(report) {
        let message = format!("{id}: {}; its findings are unknown", c.describe(id.split(' ').next().unwrap_or("step")));
        let _ = writeln!(
            out,
            "::error file={},title={}::{}",
            property(&c.path),
            property("kvmtk lint: not analyzed"),
            data(&message)
        );
    }
    out.push_str(&render::render_github_with(&report.new, opts));
    out
}

fn render_text(report: &LintReport, opts: &render::RenderOptions) -> String {
    let mut s = String::new();
    let n = report.steps.len();
    let _ = writeln!(
        s,
        "lint {}: {n} {} on {}",
        report.subject,
        if report.mode == "range" {
            if n == 1 {
                "commit"
            } else {
                "commits"
            }
        } else if n == 1 {
            "patch"
        } else {
            "patches"
        },
        report.base
    );
    let step = if report.mode == "range" { "commit" } else { "patch" };
    for (k, st) in report.steps.iter().enumerate() {
        let id = if report.mode == "range" { st.id.get(..12).unwrap_or(&st.id) } else { &st.id };
        let _ = writeln!(s, "[{}/{n}] {id} {}", k + 1, st.subject);
        for c in &st.unanalyzed {
            let _ = writeln!(s, "  NOT ANALYZED {}", c.describe(step));
        }
        for note in &st.notes {
            let _ = writeln!(s, "  {note}");
        }
        if st.skipped {
            continue;
        }
        if st.introduced.is_empty() && st.accepted.is_empty() && st.fixed.is_empty() && st.unanalyzed.is_empty() {
            let _ = writeln!(s, "  no change in findings");
        }
        for f in &st.introduced {
            let _ = writeln!(s, "  introduces {}", f.describe());
        }
        for f in &st.accepted {
            let _ = writeln!(s, "  introduces (accepted by the baseline) {}", f.describe());
        }
        for f in &st.fixed {
            let _ = writeln!(s, "  fixes {}", f.describe());
        }
        for f in &st.unknown {
            let _ = writeln!(s, "  unknown (absent, but not analyzed completely) {}", f.describe());
        }
    }
    let _ = writeln!(s, "new findings:");
    s.push_str(&render::render_text_with(&report.new, opts));
    if let Some(line) = report.incomplete_summary() {
        let _ = writeln!(s, "{line}");
    }
    s
}

#[derive(Serialize)]
struct JsonLint<'a> {
    version: u32,
    tool: &'static str,
    mode: &'a str,
    subject: &'a str,
    base: &'a str,
    steps: &'a [StepLint],
    report: serde_json::Value,
    complete: bool,
}

/// Version of the lint JSON document.
pub const LINT_JSON_VERSION: u32 = 1;

fn render_json(report: &LintReport) -> String {
    let doc = JsonLint {
        version: LINT_JSON_VERSION,
        tool: "kvmtk",
        mode: &report.mode,
        subject: &report.subject,
        base: &report.base,
        steps: &report.steps,
        report: serde_json::from_str(&render::render_json(&report.new)).unwrap_or(serde_json::Value::Null),
        complete: report.is_complete(),
    };
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------
// Range mode

/// The commits of `BASE..HEAD` (or `BASE...HEAD`, from their merge base),
/// parents first, each with its first parent (`None` for a root commit).
fn commits_of(repo: &Repository, repo_path: &Path, range: &str) -> Result<(Oid, RangeCommits), LintError> {
    let (sep, merge_base) = match (range.find("..."), range.find("..")) {
        (Some(i), _) => (i, true),
        (None, Some(i)) => (i, false),
        (None, None) => {
            return Err(LintError::new(format!(
                "`{range}` is not a commit range; expected BASE..HEAD (for example v6.1..my-branch)"
            )))
        }
    };
    let (from, to) = (&range[..sep], &range[sep + if merge_base { 3 } else { 2 }..]);
    let resolve = |rev: &str, side: &str| -> Result<Oid, LintError> {
        let rev_or_head = if rev.is_empty() { "HEAD" } else { rev };
        let obj = repo.revparse_single(rev_or_head).map_err(|e| {
            let why = match e.code() {
                ErrorCode::NotFound | ErrorCode::InvalidSpec | ErrorCode::UnbornBranch => "unknown revision".to_string(),
                ErrorCode::Ambiguous => "ambiguous revision".to_string(),
                _ => e.message().to_string(),
            };
            LintError::new(format!(
                "range `{range}` does not resolve in `{}`: {why} `{rev_or_head}` ({side}); expected a commit, branch or tag",
                repo_path.display()
            ))
        })?;
        obj.peel_to_commit().map(|c| c.id()).map_err(|_| {
            LintError::new(format!(
                "range `{range}` in `{}`: `{rev_or_head}` ({side}) is not a commit",
                repo_path.display()
            ))
        })
    };
    let mut base = resolve(from, "BASE")?;
    let head = resolve(to, "HEAD")?;
    let git = |e: git2::Error| LintError::new(format!("git error in `{}`: {}", repo_path.display(), e.message()));
    if merge_base {
        base = repo.merge_base(base, head).map_err(git)?;
    }
    let mut walk = repo.revwalk().map_err(git)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE).map_err(git)?;
    walk.push(head).map_err(git)?;
    walk.hide(base).map_err(git)?;
    let mut out = Vec::new();
    for oid in walk {
        let oid = oid.map_err(git)?;
        let c = repo.find_commit(oid).map_err(git)?;
        out.push((oid, c.parent_ids().next()));
    }
    Ok((base, out))
}

/// The commits a shallow clone holds without their parents (`.git/shallow`).
fn shallow_roots(repo: &Repository) -> BTreeSet<Oid> {
    if !repo.is_shallow() {
        return BTreeSet::new();
    }
    let text = std::fs::read_to_string(repo.path().join("shallow")).unwrap_or_default();
    text.lines().filter_map(|l| Oid::from_str(l.trim()).ok()).collect()
}

/// A commit of the range at the boundary of a shallow clone has no parent
/// here: it would be linted against an empty tree, every finding "new".
/// That is an error saying how to fetch the history.
fn refuse_shallow_boundary(
    repo: &Repository,
    repo_path: &Path,
    range: &str,
    commits: &[(Oid, Option<Oid>)],
) -> Result<(), LintError> {
    let roots = shallow_roots(repo);
    let Some((cut, _)) = commits.iter().find(|(oid, _)| roots.contains(oid)) else {
        return Ok(());
    };
    let r = repo_path.display();
    Err(LintError::new(format!(
        "range `{range}` reaches the boundary of the shallow clone `{r}`: the parent of commit {cut} is not in it, \
         so that commit cannot be compared with its parent (it would be linted against an empty tree); \
         fetch the history: `git -C {r} fetch --unshallow` (or `git -C {r} fetch --deepen=N` until the range's base is an ancestor)"
    )))
}

/// Lint each commit of `range` (`BASE..HEAD`) of the repository `repo`
/// against its first parent (a root commit against no findings). Returns
/// the collected steps; [`LintBuilder::finish`] makes the report once the
/// baseline is known.
pub fn lint_range(linter: &mut Linter<'_>, repo_path: &Path, range: &str) -> Result<LintBuilder, LintError> {
    if !repo_path.exists() {
        return Err(LintError::new(format!(
            "`{}` does not exist; expected a git repository holding a kernel tree",
            repo_path.display()
        )));
    }
    let repo = Repository::open(repo_path).map_err(|_| {
        LintError::new(format!(
            "`{}` is not a git repository; expected a repository (or bare repository) holding a kernel tree",
            repo_path.display()
        ))
    })?;
    let (base, commits) = commits_of(&repo, repo_path, range)?;
    refuse_shallow_boundary(&repo, repo_path, range, &commits)?;
    let spec = |oid: Oid| SourceSpec::Git { repo: PathBuf::from(repo_path), rev: oid.to_string() };
    let base_report = linter.check(linter.load_deferred(&spec(base))?);
    let mut builder = LintBuilder::new("range", &format!("{} {range}", repo_path.display()), &base_report);
    let mut reports: HashMap<Oid, TreeCheck> = HashMap::new();
    reports.insert(base, base_report);
    linter.progress().stage("linting commits", Some(commits.len() as u64));
    // Each commit's tree is checked on its own (its parent's report is
    // only compared with it), so a window of commits is checked in
    // parallel: a commit's cost is mostly one arch's analysis, which runs
    // on one core, so commits side by side are what fills the others.
    // The caches make the order irrelevant to the work done (a file new
    // in one commit is parsed once, by whichever check needs it first).
    // Steps are then recorded in commit order, and the window bounds the
    // reports kept at once on long ranges.
    let window = rayon::current_num_threads().max(1) * COMMITS_IN_FLIGHT_PER_THREAD;
    let linter = &*linter;
    for (w, chunk) in commits.chunks(window).enumerate() {
        let checked: Vec<Result<(TreeCheck, std::time::Duration), LintError>> = chunk
            .par_iter()
            .map(|(oid, _)| {
                linter.progress().detail(&oid.to_string()[..12]);
                let started = std::time::Instant::now();
                let after = linter.check(linter.load_deferred(&spec(*oid))?);
                linter.progress().advance(1);
                Ok((after, started.elapsed()))
            })
            .collect();
        for (j, ((oid, parent), result)) in chunk.iter().zip(checked).enumerate() {
            let k = w * window + j;
            let (after, elapsed) = result?;
            let before = match parent {
                None => TreeCheck::empty(),
                Some(p) => match reports.get(p) {
                    Some(r) => r.clone(),
                    // A parent outside the range (the other side of a merge
                    // seen first): checked on demand.
                    None => linter.check(linter.load_deferred(&spec(*p))?),
                },
            };
            let subject = repo.find_commit(*oid).ok().and_then(|c| c.summary().map(str::to_string)).unwrap_or_default();
            builder.push(&oid.to_string(), &subject, &before, after.clone(), Some(elapsed));
            reports.insert(*oid, after);
            // Parents are only needed by their children: keep memory flat on
            // long linear ranges.
            if commits.get(k + 1).is_some_and(|(_, p)| *p == Some(*oid)) {
                if let Some(p) = parent {
                    if commits.iter().skip(k + 1).all(|(_, q)| q != &Some(*p)) {
                        reports.remove(p);
                    }
                }
            }
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::REGISTRY;

    fn finding(fingerprint: &str, severity: Severity) -> Finding {
        let info = REGISTRY.iter().find(|r| r.id == "HW014").unwrap();
        Finding {
            rule: info.id,
            name: info.name,
            severity,
            arch: "x86".into(),
            file: "arch/x86/kvm/x86.c".into(),
            line: 1,
            col: 1,
            function: "f".into(),
            message: String::new(),
            evidence: Vec::new(),
            related: Vec::new(),
            symbols: Vec::new(),
            fingerprint: fingerprint.into(),
        }
    }

    fn tree(findings: Vec<Finding>) -> TreeCheck {
        let mut t = TreeCheck::empty();
        t.report.findings = findings;
        t
    }

    #[test]
    fn a_finding_that_gets_worse_is_introduced_and_one_that_gets_better_is_not_fixed() {
        let before = tree(vec![finding("aa", Severity::Warning), finding("bb", Severity::Error)]);
        let after = tree(vec![finding("aa", Severity::Error), finding("bb", Severity::Warning)]);
        let mut b = LintBuilder::new("range", "t", &before);
        b.push("1", "worse and better", &before, after, None);
        let report = b.finish(None);
        let step = &report.steps[0];
        let introduced: Vec<(&str, Option<Severity>)> =
            step.introduced.iter().map(|f| (f.fingerprint.as_str(), f.was)).collect();
        assert_eq!(introduced, [("aa", Some(Severity::Warning))]);
        assert!(step.fixed.is_empty(), "{:?}", step.fixed);
        assert!(step.introduced[0].describe().contains("error (was warning in the parent)"));
        assert_eq!(report.new.findings.len(), 1);
    }

    #[test]
    fn a_baseline_accepts_a_finding_at_its_severity_or_lower() {
        let b = Baseline::empty().with(&[finding("aa", Severity::Warning)]);
        assert!(b.contains("aa", Severity::Warning));
        assert!(b.contains("aa", Severity::Note));
        assert!(!b.contains("aa", Severity::Error));
        assert!(!b.contains("bb", Severity::Note));
        // An entry written before severities were recorded accepts any.
        let old: Baseline = serde_json::from_str(
            r#"{"version": 1, "tool": "kvmtk", "findings": [{"fingerprint": "aa", "rule": "HW014",
                "arch": "x86", "file": "x.c", "function": "f"}]}"#,
        )
        .unwrap();
        assert!(old.contains("aa", Severity::Error));
    }
}
