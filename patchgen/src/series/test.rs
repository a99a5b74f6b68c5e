//! `kvmtk series test`: prove a series patch by patch, without touching
//! the user's tree. For each patch, in order: it applies (in memory), the
//! tree still parses (no new parse problems in the files it touches), the
//! finding delta (a patch introducing a finding fails), its
//! `Kvmtk-Fixes:` claims (each claimed finding must be gone), and
//! optionally a build command and checkpatch.
//!
//! The build runs in ONE scratch directory: the whole base tree is written
//! there once, then each patch's changed files; the command runs with
//! `sh -c`, its working directory the scratch directory, `{dir}` in it
//! replaced by the scratch directory's path (shell-quoted), and
//! `KVMTK_SCRATCH` set to it. The scratch directory is removed afterwards.
//! Nothing is written or deleted outside it: the copy is confined (see
//! [`BaseTree::materialize`]), and a patch that would write or delete
//! through a symbolic link is refused. SIGINT and SIGTERM stop the build's
//! process group and remove the scratch copy (see [`super::scratch`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use analyzer::api::ApiModel;
use analyzer::check::check;
use analyzer::pipeline::ParsedTree;
use analyzer::progress::{NoProgress, Progress};
use analyzer::rules::RuleSelection;
use analyzer::source::SourceSpec;
use serde::Serialize;

use super::apply::strategy::{apply_patch, ApplyOptions, Method};
use super::apply::MailPatch;
use super::scratch::{self, InterruptGuard, Scratch};
use super::tree::{is_analyzed_path, remove_confined, update_parsed, write_confined, BaseTree};
use super::{delta, refs, FindingRef, SeriesError};

/// How to test.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Build command run after each patch (see the module documentation).
    pub build: Option<String>,
    /// Run once in the scratch directory before the first patch's build
    /// (e.g. configuring the kernel).
    pub build_prepare: Option<String>,
    /// `scripts/checkpatch.pl` to run on each patch.
    pub checkpatch: Option<PathBuf>,
    /// Lines of build output kept for a failing build.
    pub tail_lines: usize,
    /// What may be tried when a patch does not apply as written (`-C`,
    /// `-3`, `--keep-going`).
    pub apply: ApplyOptions,
}

/// The outcome of one check of one patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "detail")]
pub enum Outcome {
    Pass,
    Fail(String),
    /// Not run (not requested, or an earlier step failed).
    Skip,
}

impl Outcome {
    fn failed(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
    fn cell(&self, pass: &str) -> String {
        match self {
            Outcome::Pass => pass.to_string(),
            Outcome::Fail(_) => "FAIL".into(),
            Outcome::Skip => "-".into(),
        }
    }
}

/// checkpatch's verdict on one patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpatch {
    pub errors: usize,
    pub warnings: usize,
    /// Its ERROR / WARNING lines.
    pub messages: Vec<String>,
}

/// One patch's results.
#[derive(Debug, Clone, Serialize)]
pub struct PatchResult {
    pub patch: String,
    pub subject: String,
    pub applies: Outcome,
    /// How it applied: `yes`, `already`, `-C1`, `-3` (see
    /// [`Method::label`]); `None` when it did not. Written in JSON only
    /// when not `yes` (as written).
    #[serde(skip_serializing_if = "applied_as_written")]
    pub applied: Option<String>,
    /// How it applied, when not as written, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    /// Verdicts computed on a tree without an earlier patch (`--keep-going`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub parses: Outcome,
    pub fixed: Vec<FindingRef>,
    pub introduced: Vec<FindingRef>,
    /// Number of `Kvmtk-Fixes:` claims, and their outcome.
    pub claimed: usize,
    pub claims: Outcome,
    pub build: Outcome,
    pub checkpatch: Option<Checkpatch>,
    pub ok: bool,
    /// Why it failed, one reason per failed check.
    pub failures: Vec<String>,
}

fn applied_as_written(applied: &Option<String>) -> bool {
    applied.as_deref().is_none_or(|a| a == "yes")
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub tree: String,
    pub series: String,
    pub patches: Vec<PatchResult>,
    pub ok: bool,
}

impl TestReport {
    /// 0 all good, 1 a patch failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.ok)
    }
}

/// Quote for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `cmd` with `{dir}` replaced by the scratch directory, run there (in its
/// own process group: see [`scratch::run_shell`]).
fn run_shell(cmd: &str, dir: &Path) -> Result<(bool, String), SeriesError> {
    scratch::run_shell(&cmd.replace("{dir}", &sh_quote(&dir.to_string_lossy())), dir)
}

fn run_checkpatch(script: &Path, patch: &MailPatch) -> Result<Checkpatch, SeriesError> {
    let mut tmp = tempfile::Builder::new()
        .prefix("kvmtk-checkpatch-")
        .suffix(".patch")
        .tempfile()
        .map_err(|e| SeriesError::new(format!("cannot create a temporary file: {e}")))?;
    std::io::Write::write_all(&mut tmp, patch.text.as_bytes())
        .map_err(|e| SeriesError::new(format!("cannot write a temporary file: {e}")))?;
    let out = Command::new("perl")
        .arg(script)
        .args(["--no-tree", "-q"])
        .arg(tmp.path())
        .output()
        .map_err(|e| SeriesError::new(format!("cannot run `perl {}`: {e}", script.display())))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("Can't open perl script") {
        return Err(SeriesError::new(format!("--checkpatch: {}", text.trim())));
    }
    let messages: Vec<String> =
        text.lines().filter(|l| l.starts_with("ERROR:") || l.starts_with("WARNING:")).map(str::to_string).collect();
    checkpatch_status(script, patch, out.status.code(), &text, &messages)?;
    Ok(Checkpatch {
        errors: messages.iter().filter(|m| m.starts_with("ERROR:")).count(),
        warnings: messages.iter().filter(|m| m.starts_with("WARNING:")).count(),
        messages,
    })
}

/// What checkpatch's exit status says: 0 clean (or only what it printed),
/// 1 it reported an error or a warning (`checkpatch.pl` exits 1 for
/// either); any other status, death by a signal, or a status 1 without a
/// single report means it did not check the patch, which is an error, never
/// a clean patch.
fn checkpatch_status(
    script: &Path,
    patch: &MailPatch,
    code: Option<i32>,
    text: &str,
    messages: &[String],
) -> Result<(), SeriesError> {
    let reported = !messages.is_empty() || text.lines().any(|l| l.starts_with("CHECK:"));
    let why = match code {
        Some(0) => return Ok(()),
        Some(1) if reported => return Ok(()),
        Some(1) => "exited with status 1 without reporting an error or a warning".to_string(),
        Some(c) => format!("failed (exit status {c})"),
        None => "was killed by a signal".to_string(),
    };
    let mut message = format!("--checkpatch `{}` {why} on {}", script.display(), patch.name);
    let output = tail(text.trim_end(), 5);
    if !output.is_empty() {
        message.push_str(&format!(":\n{output}"));
    }
    Err(SeriesError::new(message))
}

/// Test `patches` against the tree `spec` (already loaded and parsed as
/// `tree`). Errors are usage / input errors; failing patches are in the
/// report.
pub fn test_series(
    spec: &SourceSpec,
    tree: ParsedTree,
    api: &ApiModel,
    series_label: &str,
    patches: &[MailPatch],
    opts: &TestOptions,
) -> Result<TestReport, SeriesError> {
    let base = BaseTree::open(spec)?;
    test_series_on(&base, tree, api, series_label, patches, opts)
}

/// [`test_series`] with an opened base.
pub fn test_series_on(
    base: &BaseTree,
    tree: ParsedTree,
    api: &ApiModel,
    series_label: &str,
    patches: &[MailPatch],
    opts: &TestOptions,
) -> Result<TestReport, SeriesError> {
    test_series_on_with_progress(base, tree, api, series_label, patches, opts, &NoProgress)
}

/// [`test_series_on`], telling `progress` which patch it tests (and
/// builds): one stage, a step per patch.
pub fn test_series_on_with_progress(
    base: &BaseTree,
    tree: ParsedTree,
    api: &ApiModel,
    series_label: &str,
    patches: &[MailPatch],
    opts: &TestOptions,
    progress: &dyn Progress,
) -> Result<TestReport, SeriesError> {
    if let Some(cp) = &opts.checkpatch {
        if !cp.is_file() {
            return Err(SeriesError::new(format!("--checkpatch: `{}` is not a file", cp.display())));
        }
    }
    let tail_lines = if opts.tail_lines == 0 { 20 } else { opts.tail_lines };
    let selection = RuleSelection::default();
    let mut parsed = tree;
    let mut report = check(&parsed, api, &selection);
    // Current contents of files outside the analyzed set touched so far.
    let mut overlay: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    // Declared before the scratch copy, so dropped after it: a signal during
    // its removal is still caught.
    let _interrupts = opts.build.as_ref().map(|_| InterruptGuard::install());
    let scratch = match &opts.build {
        Some(_) => {
            let dir = Scratch::create()?;
            base.materialize(dir.path(), &parsed.source)?;
            if let Some(prep) = &opts.build_prepare {
                progress.stage("preparing the build", None);
                let (ok, out) = run_shell(prep, dir.path())?;
                if !ok {
                    return Err(SeriesError::new(format!(
                        "--build-prepare failed on the base tree: {}",
                        tail(&out, tail_lines)
                    )));
                }
            }
            Some(dir)
        }
        None => None,
    };
    let mut results = Vec::new();
    let mut stopped: Option<String> = None;
    progress.stage("testing patches", Some(patches.len() as u64));
    // Patches that did not apply, with `keep_going`.
    let mut missing: Vec<String> = Vec::new();
    for p in patches {
        progress.advance(1);
        progress.detail(&p.name);
        let mut r = PatchResult {
            patch: p.name.clone(),
            subject: p.subject.clone(),
            applies: Outcome::Skip,
            applied: None,
            how: None,
            notes: Vec::new(),
            parses: Outcome::Skip,
            fixed: Vec::new(),
            introduced: Vec::new(),
            claimed: p.claims.len(),
            claims: Outcome::Skip,
            build: Outcome::Skip,
            checkpatch: None,
            ok: false,
            failures: Vec::new(),
        };
        if let Some(prev) = &stopped {
            r.failures.push(format!("not run: {prev} does not apply"));
            results.push(r);
            continue;
        }
        if let Some(cp) = &opts.checkpatch {
            let c = run_checkpatch(cp, p)?;
            if c.errors > 0 {
                r.failures.push(format!(
                    "checkpatch: {} error(s): {}",
                    c.errors,
                    c.messages.iter().filter(|m| m.starts_with("ERROR:")).cloned().collect::<Vec<_>>().join("; ")
                ));
            }
            r.checkpatch = Some(c);
        }
        // Apply: as written, else already applied, else as `opts.apply` allows.
        let read = |path: &str| -> Option<Vec<u8>> {
            if let Some(f) = parsed.source.file(path) {
                return Some(f.bytes.clone());
            }
            if let Some(o) = overlay.get(path) {
                return o.clone();
            }
            base.read(path).map(|r| r.0)
        };
        let changes = match apply_patch(p, &read, &opts.apply) {
            Ok(a) => {
                r.applies = Outcome::Pass;
                r.applied = Some(a.method.label());
                r.how = a.method.describe();
                if !missing.is_empty() {
                    r.notes.push(format!("computed on a tree without {}, which did not apply", missing.join(", ")));
                }
                if let Method::AlreadyApplied(_) = a.method {
                    r.ok = r.failures.is_empty();
                    results.push(r);
                    continue;
                }
                a.changes
            }
            Err(e) => {
                r.failures.push(format!("does not apply: {e}"));
                r.applies = Outcome::Fail(e);
                if opts.apply.keep_going {
                    missing.push(p.name.clone());
                } else {
                    stopped = Some(p.name.clone());
                }
                results.push(r);
                continue;
            }
        };
        let next = update_parsed(&parsed, &changes);
        for (path, c) in &changes {
            if parsed.source.file(path).is_none() && !is_analyzed_path(path, &parsed.source.arches) {
                overlay.insert(path.clone(), c.clone());
            }
        }
        // Parses: no new parse problems in the touched files.
        let mut parse_problems = Vec::new();
        for path in changes.keys() {
            let before = parsed.files.iter().find(|f| &f.path == path).map_or(0, |f| f.diagnostics.len());
            if let Some(after) = next.files.iter().find(|f| &f.path == path) {
                if after.diagnostics.len() > before {
                    let d = &after.diagnostics[after.diagnostics.len() - 1];
                    parse_problems.push(format!(
                        "{path}: {} new parse problem(s), e.g. line {}: {}",
                        after.diagnostics.len() - before,
                        d.span.line,
                        d.message
                    ));
                }
            }
        }
        r.parses = if parse_problems.is_empty() {
            Outcome::Pass
        } else {
            r.failures.push(format!("does not parse: {}", parse_problems.join("; ")));
            Outcome::Fail(parse_problems.join("; "))
        };
        // Finding delta and claims.
        let next_report = check(&next, api, &selection);
        let (fixed, introduced) = delta(&refs(&report), &refs(&next_report));
        for f in &introduced {
            let mut why = format!("introduces {} [{}] at {}:{}", f.describe(), f.fingerprint, f.file, f.line);
            // Often a finding that survived with other symbols: say so.
            if let Some(g) = fixed.iter().find(|g| g.rule == f.rule && g.arch == f.arch && g.function == f.function) {
                why.push_str(&format!(
                    " (same rule and function as the finding it removes, [{}] with ({}): its symbols changed)",
                    g.fingerprint,
                    g.symbols.join(", ")
                ));
            }
            r.failures.push(why);
        }
        let unmet: Vec<String> = p
            .claims
            .iter()
            .filter_map(|fp| next_report.findings.iter().find(|f| &f.fingerprint == fp))
            .map(|f| format!("{} [{}]", FindingRef::of(f).describe(), f.fingerprint))
            .collect();
        r.claims = if p.claims.is_empty() {
            Outcome::Skip
        } else if unmet.is_empty() {
            Outcome::Pass
        } else {
            for u in &unmet {
                r.failures.push(format!("claims to fix {u}, which remains"));
            }
            Outcome::Fail(unmet.join("; "))
        };
        r.fixed = fixed;
        r.introduced = introduced;
        // Build.
        if let (Some(cmd), Some(dir)) = (&opts.build, &scratch) {
            for (path, c) in &changes {
                match c {
                    Some(bytes) => write_confined(dir.path(), path, bytes),
                    None => remove_confined(dir.path(), path),
                }
                .map_err(|e| SeriesError::new(format!("{}: refused in the scratch copy: {e}", p.name)))?;
            }
            progress.detail(&format!("{}: building", p.name));
            let (ok, out) = run_shell(cmd, dir.path())?;
            r.build = if ok {
                Outcome::Pass
            } else {
                let t = tail(&out, tail_lines);
                let status = out.lines().next().unwrap_or("");
                let first_error = out.lines().skip(1).find(|l| l.contains("error")).or_else(|| t.lines().last());
                r.failures.push(format!("build fails ({status}): {}", first_error.unwrap_or("").trim()));
                Outcome::Fail(t)
            };
        }
        r.ok = r.failures.is_empty();
        parsed = next;
        report = next_report;
        results.push(r);
    }
    // A signal after the last build: still an interruption.
    if scratch.is_some() {
        scratch::check_interrupted()?;
    }
    let ok = results.iter().all(|r| r.ok);
    Ok(TestReport { tree: parsed.source.root_label.clone(), series: series_label.to_string(), patches: results, ok })
}

/// The terminal table and the failure details.
pub fn render_text(report: &TestReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "series {} on {}", report.series, report.tree);
    let w = report.patches.iter().map(|p| p.patch.chars().count()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        s,
        "{:<w$}  {:<7} {:<6} {:>5} {:>10}  {:<6} {:<5} checkpatch",
        "patch", "applies", "parses", "fixed", "introduced", "claims", "build"
    );
    for p in &report.patches {
        let not_run = p.applies != Outcome::Pass || p.applied.as_deref() == Some("already");
        let num = |n: usize| if not_run { "-".to_string() } else { n.to_string() };
        let claims = match &p.claims {
            Outcome::Skip if p.claimed == 0 && !not_run => "none".to_string(),
            Outcome::Pass => format!("{0}/{0}", p.claimed),
            o => o.cell(""),
        };
        let cp = match &p.checkpatch {
            None => "-".to_string(),
            Some(c) => format!("{}E {}W", c.errors, c.warnings),
        };
        let _ = writeln!(
            s,
            "{:<w$}  {:<7} {:<6} {:>5} {:>10}  {:<6} {:<5} {cp}",
            p.patch,
            p.applied.clone().unwrap_or_else(|| p.applies.cell("yes")),
            p.parses.cell("yes"),
            num(p.fixed.len()),
            num(p.introduced.len()),
            claims,
            p.build.cell("ok"),
        );
    }
    // What a stable tree needed: already applied, -C, -3, a tree without a patch.
    let special: Vec<&PatchResult> = report.patches.iter().filter(|p| p.how.is_some() || !p.notes.is_empty()).collect();
    if !special.is_empty() {
        let _ = writeln!(s, "\napplied other than as written:");
        for p in special {
            for line in p.how.iter().chain(&p.notes) {
                let _ = writeln!(s, "  {}: {line}", p.patch);
            }
        }
    }
    let failed: Vec<&PatchResult> = report.patches.iter().filter(|p| !p.ok).collect();
    if failed.is_empty() {
        let _ = writeln!(s, "\nall {} patches pass", report.patches.len());
    } else {
        for p in &failed {
            let _ = writeln!(s, "\n{} FAILED:", p.patch);
            for f in &p.failures {
                for (k, line) in f.lines().enumerate() {
                    let _ = writeln!(s, "{}{line}", if k == 0 { "  - " } else { "    " });
                }
            }
            if let Outcome::Fail(out) = &p.build {
                let _ = writeln!(s, "  build output (tail):");
                for line in out.lines() {
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
        let _ = writeln!(s, "\n{} of {} patches failed", failed.len(), report.patches.len());
    }
    s
}

/// The report as JSON.
pub fn render_json(report: &TestReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}

impl Outcome {
    /// True when this step passed or did not run.
    pub fn ok(&self) -> bool {
        !self.failed()
    }
}
