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
//! Cost: facts come from a [`FactsCache`] (a commit touching one file
//! re-parses one file), and each arch's findings are memoized by the blob
//! ids of the files that arch's analysis reads, so a commit touching only
//! `arch/x86` re-analyzes x86 only and a commit touching no analyzed file
//! is not analyzed at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository, Sort};
use serde::{Deserialize, Serialize};

use crate::api::ApiModel;
use crate::cache::{FactsCache, ResultCache};
use crate::check::{CheckReport, Checker};
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

impl Baseline {
    /// An empty baseline.
    pub fn empty() -> Baseline {
        Baseline { version: BASELINE_VERSION, tool: "kvmtk".into(), findings: Vec::new() }
    }

    /// Read a baseline file. A missing, unreadable or malformed file is an
    /// error naming it.
    pub fn load(path: &Path) -> Result<Baseline, LintError> {
        let bytes = std::fs::read(path)
            .map_err(|e| LintError::new(format!("cannot read baseline `{}`: {e}", path.display())))?;
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

    /// Whether the finding with this fingerprint is accepted.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.findings.iter().any(|e| e.fingerprint == fingerprint)
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
        Linter { checker: Checker::new(api, cache, results, opts.selection.clone()), opts }
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
    /// checked before.
    pub fn check(&mut self, source: SourceTree) -> CheckReport {
        self.checker.check(source).report
    }
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
        }
    }

    /// `HW005 note common hardware_enable_nolock (cpus_hardware_enabled) [fp] at file:line`.
    fn describe(&self) -> String {
        let symbols = if self.symbols.is_empty() { String::new() } else { format!(" ({})", self.symbols.join(", ")) };
        format!(
            "{} {} {} {}{symbols} [{}] at {}:{}",
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
    /// Findings of its parent it removes.
    pub fixed: Vec<FindingSummary>,
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
    /// 1 when a new finding is at least as severe as `fail_on`, else 0.
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        render::exit_code(&self.new, fail_on) as u8
    }
}

/// (id, subject, introduced, fixed, time spent) of one step.
type RawStep = (String, String, Vec<Finding>, Vec<Finding>, Option<std::time::Duration>);

/// Commits of a range: each with its first parent.
type RangeCommits = Vec<(Oid, Option<Oid>)>;

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

impl LintBuilder {
    /// Start from the base tree's report. `mode` is `range` or `patches`.
    pub fn new(mode: &str, subject: &str, base: CheckReport) -> LintBuilder {
        LintBuilder {
            mode: mode.into(),
            subject: subject.into(),
            base,
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
        self.steps.push((id.into(), subject.into(), Vec::new(), Vec::new(), None));
        self.skipped.insert(self.steps.len() - 1);
        self.note(note);
    }

    /// Record a step: `after` is its tree's report, `before` its parent's.
    /// `elapsed` is the time its check took, when measured.
    pub fn push(
        &mut self,
        id: &str,
        subject: &str,
        before: &CheckReport,
        after: CheckReport,
        elapsed: Option<std::time::Duration>,
    ) {
        let introduced = minus(&after, before);
        let fixed = minus(before, &after);
        self.steps.push((id.into(), subject.into(), introduced, fixed, elapsed));
        self.tip = Some(after);
    }

    /// The report, with `baseline` accepting known findings.
    pub fn finish(self, baseline: Option<&Baseline>) -> LintReport {
        let accepted = |f: &Finding| baseline.is_some_and(|b| b.contains(&f.fingerprint));
        let tip = self.tip.as_ref().unwrap_or(&self.base);
        let mut new: BTreeMap<String, Finding> = BTreeMap::new();
        let mut steps = Vec::new();
        for (k, (id, subject, introduced, fixed, elapsed)) in self.steps.iter().enumerate() {
            let (ok, bad): (Vec<&Finding>, Vec<&Finding>) = introduced.iter().partition(|f| accepted(f));
            for f in &bad {
                let at_tip = tip.findings.iter().find(|t| t.fingerprint == f.fingerprint);
                new.entry(f.fingerprint.clone()).or_insert_with(|| at_tip.unwrap_or(f).clone());
            }
            steps.push(StepLint {
                id: id.clone(),
                subject: subject.clone(),
                introduced: bad.into_iter().map(FindingSummary::of).collect(),
                accepted: ok.into_iter().map(FindingSummary::of).collect(),
                fixed: fixed.iter().map(FindingSummary::of).collect(),
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
            new: CheckReport { tree: tip.tree.clone(), arches: tip.arches.clone(), findings, warnings },
        }
    }

    /// All findings introduced by the steps (whatever the baseline), for
    /// `--write-baseline`.
    pub fn introduced(&self) -> Vec<Finding> {
        self.steps.iter().flat_map(|s| s.2.iter().cloned()).collect()
    }
}

// ---------------------------------------------------------------------------
// Rendering

/// Output formats, as for `kvmtk check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintFormat {
    /// Per-step section, then the new findings gcc-style.
    Text,
    /// `{"version", "tool", "mode", "subject", "base", "steps", "report"}`;
    /// `report` is the `check` JSON of the new findings.
    Json,
    /// SARIF 2.1.0 of the new findings.
    Sarif,
    /// GitHub workflow commands for the new findings.
    Github,
}

/// Render a lint report.
pub fn render_report(report: &LintReport, format: LintFormat) -> String {
    match format {
        LintFormat::Text => render_text(report),
        LintFormat::Json => render_json(report),
        LintFormat::Sarif => render::render_sarif(&report.new),
        LintFormat::Github => render::render_github(&report.new),
    }
}

fn render_text(report: &LintReport) -> String {
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
    for (k, st) in report.steps.iter().enumerate() {
        let id = if report.mode == "range" { st.id.get(..12).unwrap_or(&st.id) } else { &st.id };
        let _ = writeln!(s, "[{}/{n}] {id} {}", k + 1, st.subject);
        for note in &st.notes {
            let _ = writeln!(s, "  {note}");
        }
        if st.skipped {
            continue;
        }
        if st.introduced.is_empty() && st.accepted.is_empty() && st.fixed.is_empty() {
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
    }
    let _ = writeln!(s, "new findings:");
    s.push_str(&render::render_text(&report.new));
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
    let spec = |oid: Oid| SourceSpec::Git { repo: PathBuf::from(repo_path), rev: oid.to_string() };
    let base_report = linter.check(linter.load_deferred(&spec(base))?);
    let mut builder = LintBuilder::new("range", &format!("{} {range}", repo_path.display()), base_report.clone());
    let mut reports: HashMap<Oid, CheckReport> = HashMap::new();
    reports.insert(base, base_report);
    let empty = CheckReport { tree: String::new(), arches: Vec::new(), findings: Vec::new(), warnings: Vec::new() };
    for (k, (oid, parent)) in commits.iter().enumerate() {
        let before = match parent {
            None => empty.clone(),
            Some(p) => match reports.get(p) {
                Some(r) => r.clone(),
                // A parent outside the range (the other side of a merge
                // seen first): checked on demand.
                None => linter.check(linter.load_deferred(&spec(*p))?),
            },
        };
        let started = std::time::Instant::now();
        let after = linter.check(linter.load_deferred(&spec(*oid))?);
        let elapsed = started.elapsed();
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
    Ok(builder)
}
