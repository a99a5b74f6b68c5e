//! The refactor series: `kvmtk series generate` and `kvmtk series test`.
//!
//! ```text
//! series.rs        generate: run the transformations in order on an
//!                  in-memory tree, re-checking after each; the cover letter
//! series/format    git format-patch rendering (diffs, diffstat, headers)
//! series/tree      the in-memory tree (incremental re-parse) and its base
//! series/output    atomic output directory, commits on a new branch
//! series/apply     reading format-patch files / mboxes, applying hunks
//! series/test      series test: apply, parse, finding delta, claims,
//!                  build, checkpatch, per patch
//! ```
//!
//! ## Trailer format
//!
//! Every generated patch records the findings it claims to remove, one
//! trailer line each, before its `Signed-off-by:`:
//!
//! ```text
//! Kvmtk-Fixes: HW005 [3f2a9c0e5b7d1e48] hardware_enable_nolock: cpus_hardware_enabled
//! ```
//!
//! that is the rule id, the finding's fingerprint in brackets (brackets keep
//! checkpatch from reading the hex as a commit id), then `function:
//! symbols` for the reader, cut to keep the line within 75 columns. Only
//! the fingerprint is binding: `series test` checks each claimed
//! fingerprint is gone after the patch.

pub mod apply;
pub mod format;
pub mod output;
pub mod scratch;
pub mod test;
pub mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use analyzer::api::ApiModel;
use analyzer::check::{check, CheckReport};
use analyzer::pipeline::ParsedTree;
use analyzer::rules::{Finding, RuleSelection, REGISTRY};
use serde::Serialize;

use crate::edit;
use crate::transform::{TransformInfo, TransformInput};
use format::{Author, FileDiff, MailDate};
use tree::Changes;

/// The trailer naming a finding a patch removes.
pub const FIXES_TRAILER: &str = "Kvmtk-Fixes";
/// The default cover-letter subject.
pub const COVER_SUBJECT: &str = "KVM: Rework hardware enabling";
/// The default author when none is given or configured.
pub const DEFAULT_AUTHOR: &str = "kvmtk <kvmtk@localhost>";

/// A usage or input error (the CLI exits with 2), or a transformation bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SeriesError {
    pub message: String,
}

impl SeriesError {
    pub fn new(message: impl Into<String>) -> SeriesError {
        SeriesError { message: message.into() }
    }
}

/// A finding, as a series reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FindingRef {
    pub rule: String,
    pub fingerprint: String,
    pub arch: String,
    pub function: String,
    pub symbols: Vec<String>,
    pub file: String,
    pub line: u32,
    /// Compared by [`delta`] (a finding that gets worse is introduced).
    #[serde(skip)]
    pub severity: analyzer::rules::Severity,
}

impl FindingRef {
    pub fn of(f: &Finding) -> FindingRef {
        FindingRef {
            rule: f.rule.to_string(),
            fingerprint: f.fingerprint.clone(),
            arch: f.arch.clone(),
            function: f.function.clone(),
            symbols: f.symbols.clone(),
            file: f.file.clone(),
            line: f.line,
            severity: f.severity,
        }
    }

    /// `HW005 common hardware_enable_nolock (cpus_hardware_enabled)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}", self.rule, self.arch, self.function);
        if !self.symbols.is_empty() {
            let _ = write!(s, " ({})", self.symbols.join(", "));
        }
        s
    }

    /// The trailer line claiming this finding is removed: at most 75
    /// columns (checkpatch's commit-log width), dropping whole symbols from
    /// the end of the free text when too long.
    pub fn trailer(&self) -> String {
        let head = format!("{FIXES_TRAILER}: {} [{}] {}", self.rule, self.fingerprint, self.function);
        for keep in (1..=self.symbols.len()).rev() {
            let s = format!("{head}: {}", self.symbols[..keep].join(", "));
            if s.chars().count() <= 75 {
                return s;
            }
        }
        head.chars().take(75).collect::<String>().trim_end().to_string()
    }
}

pub(crate) fn refs(report: &CheckReport) -> Vec<FindingRef> {
    report.findings.iter().map(FindingRef::of).collect()
}

/// Fixed (in `before`, not in `after`) and introduced findings (in
/// `after`, not in `before` at the same or a higher severity: an HW014
/// cycle that needed a path some machines never take and now needs none
/// is introduced, as `lint` counts it).
pub fn delta(before: &[FindingRef], after: &[FindingRef]) -> (Vec<FindingRef>, Vec<FindingRef>) {
    use analyzer::lint::{is_new, worst_severities};
    let b = worst_severities(before.iter().map(|f| (f.fingerprint.as_str(), f.severity)));
    let a: BTreeSet<&str> = after.iter().map(|f| f.fingerprint.as_str()).collect();
    let fixed = before.iter().filter(|f| !a.contains(f.fingerprint.as_str())).cloned().collect();
    let introduced = after.iter().filter(|f| is_new(&b, &f.fingerprint, f.severity)).cloned().collect();
    (fixed, introduced)
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Only these transformations (slugs); empty: all. A named one that
    /// refuses is an error.
    pub only: Vec<String>,
    pub author: Author,
    pub date: MailDate,
    pub cover_subject: String,
}

impl GenerateOptions {
    pub fn new(author: Author, date: MailDate) -> GenerateOptions {
        GenerateOptions { only: Vec::new(), author, date, cover_subject: COVER_SUBJECT.to_string() }
    }
}

/// The author to use: the one given, else `user.name` / `user.email` of
/// the repository's configuration (with the user's global one), else
/// [`DEFAULT_AUTHOR`].
pub fn resolve_author(given: Option<&str>, repo: Option<&Path>) -> Result<Author, SeriesError> {
    if let Some(a) = given {
        return Author::parse(a);
    }
    if let Some(cfg) = repo.and_then(|r| git2::Repository::open(r).ok()).and_then(|r| r.config().ok()) {
        if let (Ok(name), Ok(email)) = (cfg.get_string("user.name"), cfg.get_string("user.email")) {
            if let Ok(a) = Author::parse(&format!("{name} <{email}>")) {
                return Ok(a);
            }
        }
    }
    Author::parse(DEFAULT_AUTHOR)
}

/// One generated patch.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPatch {
    pub slug: String,
    pub subject: String,
    /// The transformation's commit message body (without trailers).
    pub body: String,
    /// The findings it claims to remove (from the transformation).
    pub claims: Vec<FindingRef>,
    /// Claimed fingerprints that were not findings of the tree it applies to.
    pub unknown_claims: Vec<String>,
    /// What re-checking found.
    pub fixed: Vec<FindingRef>,
    pub introduced: Vec<FindingRef>,
    pub files: Vec<FileDiff>,
    /// The new contents of the files it changes.
    #[serde(skip)]
    pub new_contents: BTreeMap<String, Vec<u8>>,
}

impl SeriesPatch {
    /// The commit message: subject, body, trailers (`Kvmtk-Fixes:` lines
    /// and `Signed-off-by:`), newline-terminated.
    pub fn message(&self, author: &Author) -> String {
        let mut m = format!("{}\n", self.subject.trim());
        let body = self.body.trim_matches('\n').trim_end();
        if !body.is_empty() {
            let _ = write!(m, "\n{body}\n");
        }
        let last_para = body.rsplit("\n\n").next().unwrap_or("");
        let has_sob = last_para.lines().any(|l| l.starts_with("Signed-off-by:"));
        let mut trailers: Vec<String> = self.claims.iter().map(FindingRef::trailer).collect();
        trailers.extend(self.unknown_claims.iter().map(|fp| format!("{FIXES_TRAILER}: ? [{fp}]")));
        if !has_sob {
            trailers.push(format!("Signed-off-by: {author}"));
        }
        if !trailers.is_empty() {
            m.push('\n');
            for t in trailers {
                m.push_str(&t);
                m.push('\n');
            }
        }
        m
    }
}

/// A transformation that did not run.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub slug: String,
    pub title: String,
    pub reason: String,
}

/// A generated series.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub tree: String,
    pub base_commit: Option<String>,
    pub author: Author,
    pub date: MailDate,
    pub cover_subject: String,
    pub patches: Vec<SeriesPatch>,
    /// Transformations that refused, with their reasons.
    pub refused: Vec<Skipped>,
    /// Transformations left out by `--only`.
    pub not_selected: Vec<String>,
    pub before: Vec<FindingRef>,
    pub after: Vec<FindingRef>,
    /// Which rules each transformation addresses (slug, rules).
    pub transforms: Vec<(String, Vec<String>)>,
    /// Problems a reviewer must see: claims not met, findings introduced.
    pub warnings: Vec<String>,
    /// Base and final contents of every touched file (overall diffstat).
    #[serde(skip)]
    pub overall: Vec<FileDiff>,
}

/// Run `transforms` in order on `tree` (see the module documentation).
pub fn generate(
    tree: ParsedTree,
    api: &ApiModel,
    transforms: &[TransformInfo],
    opts: &GenerateOptions,
) -> Result<Series, SeriesError> {
    for o in &opts.only {
        if !transforms.iter().any(|t| t.slug == o) {
            return Err(SeriesError::new(format!(
                "unknown transformation `{o}` in --only; known: {}",
                transforms.iter().map(|t| t.slug).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let selection = RuleSelection::default();
    let mut parsed = tree;
    let mut report = check(&parsed, api, &selection);
    let before = refs(&report);
    let mut originals: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut series = Series {
        tree: parsed.source.root_label.clone(),
        base_commit: parsed.source.commit.clone(),
        author: opts.author.clone(),
        date: opts.date,
        cover_subject: opts.cover_subject.clone(),
        patches: Vec::new(),
        refused: Vec::new(),
        not_selected: Vec::new(),
        before: before.clone(),
        after: Vec::new(),
        transforms: transforms
            .iter()
            .map(|t| (t.slug.to_string(), t.removes_rules.iter().map(|r| r.to_string()).collect()))
            .collect(),
        warnings: Vec::new(),
        overall: Vec::new(),
    };
    for t in transforms {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| o == t.slug) {
            series.not_selected.push(t.slug.to_string());
            continue;
        }
        let input = TransformInput { tree: &parsed, api, findings: &report };
        let change = match (t.plan)(&input) {
            Ok(c) => c,
            Err(refusal) => {
                if opts.only.iter().any(|o| o == t.slug) {
                    return Err(SeriesError::new(format!(
                        "transformation `{}` (named by --only) refuses this tree: {}",
                        t.slug, refusal.reason
                    )));
                }
                series.refused.push(Skipped { slug: t.slug.into(), title: t.title.into(), reason: refusal.reason });
                continue;
            }
        };
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in &change.edits {
            if files.contains_key(&e.path) {
                continue;
            }
            let f = parsed.source.file(&e.path).ok_or_else(|| {
                SeriesError::new(format!(
                    "bug in transformation `{}`: it edits `{}`, which is not a loaded file of the tree",
                    t.slug, e.path
                ))
            })?;
            files.insert(e.path.clone(), f.bytes.clone());
        }
        let new = edit::apply(&files, &change.edits).map_err(|e| {
            SeriesError::new(format!("bug in transformation `{}`: its edits do not apply: {e}", t.slug))
        })?;
        let new: BTreeMap<String, Vec<u8>> = new.into_iter().filter(|(p, b)| files.get(p) != Some(b)).collect();
        if new.is_empty() {
            series.refused.push(Skipped {
                slug: t.slug.into(),
                title: t.title.into(),
                reason: "its edits change nothing in this tree".into(),
            });
            continue;
        }
        let mut diffs = Vec::new();
        for (path, bytes) in &new {
            diffs.push(format::diff_file(path, Some(&files[path]), Some(bytes), "100644")?);
            originals.entry(path.clone()).or_insert_with(|| files[path].clone());
        }
        let changes: Changes = new.iter().map(|(p, b)| (p.clone(), Some(b.clone()))).collect();
        let next = tree::update_parsed(&parsed, &changes);
        let next_report = check(&next, api, &selection);
        let (fixed, introduced) = delta(&refs(&report), &refs(&next_report));
        let mut claims = Vec::new();
        let mut unknown = Vec::new();
        for fp in &change.removes {
            match report.findings.iter().find(|f| &f.fingerprint == fp) {
                Some(f) => claims.push(FindingRef::of(f)),
                None => unknown.push(fp.clone()),
            }
        }
        let n = series.patches.len() + 1;
        for c in &claims {
            if !fixed.iter().any(|f| f.fingerprint == c.fingerprint) {
                series.warnings.push(format!("patch {n} ({}) claims to fix {} but it remains", t.slug, c.describe()));
            }
        }
        for fp in &unknown {
            series.warnings.push(format!(
                "patch {n} ({}) claims to fix [{fp}], which is not a finding of the tree it applies to",
                t.slug
            ));
        }
        for f in &introduced {
            series.warnings.push(format!("patch {n} ({}) introduces {}", t.slug, f.describe()));
        }
        series.patches.push(SeriesPatch {
            slug: t.slug.to_string(),
            subject: change.subject.clone(),
            body: change.body.clone(),
            claims,
            unknown_claims: unknown,
            fixed,
            introduced,
            files: diffs,
            new_contents: new,
        });
        parsed = next;
        report = next_report;
    }
    series.after = refs(&report);
    for (path, old) in &originals {
        let new = parsed.source.file(path).map(|f| f.bytes.clone()).unwrap_or_default();
        if &new != old {
            series.overall.push(format::diff_file(path, Some(old), Some(&new), "100644")?);
        }
    }
    Ok(series)
}

const ZERO_ID: &str = "0000000000000000000000000000000000000000";

fn mail_head(id: &str, author: &Author, date: &MailDate, prefix: &str, subject: &str, text_non_ascii: bool) -> String {
    let mut s = format!("From {id} Mon Sep 17 00:00:00 2001\n");
    s.push_str(&author.from_header());
    let _ = writeln!(s, "Date: {date}");
    s.push_str(&format::subject_header(prefix, subject));
    if text_non_ascii || !author.name.is_ascii() {
        s.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n");
    }
    s.push('\n');
    s
}

fn version_trailer() -> String {
    format!("-- \nkvmtk {}\n\n", env!("CARGO_PKG_VERSION"))
}

fn stat_of(files: &[FileDiff]) -> String {
    let v: Vec<(&str, usize, usize)> = files.iter().map(|f| (f.path.as_str(), f.added, f.deleted)).collect();
    format::diffstat(&v)
}

/// The file name of patch `n` (1-based): `0001-<slug>.patch`.
pub fn patch_file_name(n: usize, slug: &str) -> String {
    format!("{n:04}-{slug}.patch")
}

/// The cover letter's file name.
pub const COVER_LETTER: &str = "0000-cover-letter.patch";

/// Render one patch as `git format-patch` writes it. `id` is the commit
/// id (or `None`: zeros).
pub fn render_patch(series: &Series, n: usize, id: Option<&str>) -> String {
    let p = &series.patches[n - 1];
    let total = series.patches.len();
    let message = p.message(&series.author);
    let (_, body) = message.split_once('\n').unwrap_or((&message, ""));
    let body = body.strip_prefix('\n').unwrap_or(body);
    let mut s = mail_head(
        id.unwrap_or(ZERO_ID),
        &series.author,
        &series.date,
        &format!("[PATCH {n}/{total}] "),
        p.subject.trim(),
        !message.is_ascii(),
    );
    s.push_str(body);
    s.push_str("---\n");
    s.push_str(&stat_of(&p.files));
    s.push('\n');
    for f in &p.files {
        s.push_str(&f.text);
    }
    s.push_str(&version_trailer());
    s
}

/// A paragraph wrapped at 72 columns: prose (`indent` 0) keeps its
/// continuation lines flush, list items indent them by two more.
fn para(out: &mut String, indent: usize, text: &str) {
    out.push_str(&" ".repeat(indent));
    let cont = if indent == 0 { 0 } else { indent + 2 };
    out.push_str(&format::wrap_words(indent, text, cont, 72));
    out.push('\n');
}

fn rule_name(id: &str) -> &'static str {
    REGISTRY.iter().find(|r| r.id == id).map_or("", |r| r.name)
}

/// Why a finding remains after the series.
fn why_remains(series: &Series, f: &FindingRef) -> String {
    if let Some(n) = series.patches.iter().position(|p| p.introduced.iter().any(|i| i.fingerprint == f.fingerprint)) {
        return format!("introduced by patch {}/{} ({})", n + 1, series.patches.len(), series.patches[n].slug);
    }
    let addressing: Vec<&String> =
        series.transforms.iter().filter(|(_, rules)| rules.contains(&f.rule)).map(|(s, _)| s).collect();
    if addressing.is_empty() {
        return format!("outside this series: no transformation addresses {}", f.rule);
    }
    let mut why = Vec::new();
    for slug in addressing {
        if let Some(r) = series.refused.iter().find(|r| &r.slug == slug) {
            why.push(format!("`{slug}` refused: {}", r.reason));
        } else if series.not_selected.contains(slug) {
            why.push(format!("`{slug}` was not selected (--only)"));
        } else {
            why.push(format!("`{slug}` ran but did not remove this one (not the shape it rewrites)"));
        }
    }
    why.join("; ")
}

/// Render the cover letter. `tip` is the last commit's id, if any.
pub fn render_cover(series: &Series, tip: Option<&str>) -> String {
    let total = series.patches.len();
    let mut b = String::new();
    let base = match &series.base_commit {
        Some(c) => format!("{} (commit {})", series.tree, &c[..c.len().min(12)]),
        None => series.tree.clone(),
    };
    para(
        &mut b,
        0,
        &format!(
            "This series was generated by kvmtk from {base}. It reworks how KVM enables hardware \
             virtualization, following the plan of the KVM-list review of \"KVM: Refactor CPU \
             compatibility check on module initialization\": each patch removes warts that kvmtk \
             reports on the hardware-enable path, and says which."
        ),
    );
    let (fixed, introduced) = delta(&series.before, &series.after);
    b.push('\n');
    para(
        &mut b,
        0,
        &format!(
            "kvmtk reports {} finding{} on the base tree and {} after the series: {} fixed, {} introduced.",
            series.before.len(),
            if series.before.len() == 1 { "" } else { "s" },
            series.after.len(),
            fixed.len(),
            introduced.len()
        ),
    );
    if crate::transform::util::cycle_rule_registered() {
        let rule = crate::transform::util::CYCLE_RULE;
        let closing: Vec<String> = series
            .patches
            .iter()
            .enumerate()
            .filter(|(_, p)| p.introduced.iter().any(|f| f.rule == rule))
            .map(|(i, p)| format!("{}/{total} ({})", i + 1, p.slug))
            .collect();
        b.push('\n');
        if closing.is_empty() {
            para(
                &mut b,
                0,
                &format!(
                    "Lock order: every patch was checked for possible circular locking dependencies ({rule} {}, \
                     lockdep's rules over every path kvmtk analyzes); none introduces one. A transformation \
                     whose locking would close a cycle is refused, with the cycle, below.",
                    rule_name(rule)
                ),
            );
        } else {
            para(
                &mut b,
                0,
                &format!(
                    "Lock order: patch {} introduce{} a possible circular locking dependency ({rule} {}); see \
                     the warnings below.",
                    closing.join(", "),
                    if closing.len() == 1 { "s" } else { "" },
                    rule_name(rule)
                ),
            );
        }
    }
    let mut rules: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for f in &series.before {
        rules.entry(&f.rule).or_default().0 += 1;
    }
    for f in &series.after {
        rules.entry(&f.rule).or_default().1 += 1;
    }
    if !rules.is_empty() {
        b.push_str("\nFindings per rule (before -> after):\n\n");
        for (rule, (x, y)) in &rules {
            let _ = writeln!(b, "  {rule} {:<26} {x:>3} -> {y}", rule_name(rule));
        }
    }
    if !series.patches.is_empty() {
        b.push_str("\nFixed, per patch:\n\n");
        for (i, p) in series.patches.iter().enumerate() {
            let _ = writeln!(b, "  {}/{total} {}:", i + 1, p.slug);
            if p.fixed.is_empty() {
                b.push_str("    (no finding; preparatory)\n");
            }
            for f in &p.fixed {
                para(&mut b, 4, &f.describe());
            }
        }
    }
    if !series.after.is_empty() {
        b.push_str("\nRemaining findings, and why:\n\n");
        for f in &series.after {
            para(&mut b, 2, &format!("{}:", f.describe()));
            para(&mut b, 4, &why_remains(series, f));
        }
    }
    if !series.refused.is_empty() {
        b.push_str("\nRefused transformations (no patch):\n\n");
        for r in &series.refused {
            para(&mut b, 2, &format!("{}: {}", r.slug, r.reason));
        }
    }
    if !series.warnings.is_empty() {
        b.push_str("\nWarnings:\n\n");
        for w in &series.warnings {
            para(&mut b, 2, w);
        }
    }
    b.push('\n');
    let _ = writeln!(b, "{} ({}):", series.author.name, total);
    for p in &series.patches {
        para(&mut b, 2, p.subject.trim());
    }
    b.push('\n');
    b.push_str(&stat_of(&series.overall));
    b.push('\n');
    let mut s = mail_head(
        tip.unwrap_or(ZERO_ID),
        &series.author,
        &series.date,
        &format!("[PATCH 0/{total}] "),
        &series.cover_subject,
        !b.is_ascii(),
    );
    s.push_str(&b);
    s.push_str(&version_trailer());
    s
}

/// All files of the series: the cover letter, then the patches, as
/// (file name, contents). `ids`: the commit ids, when commits were made.
pub fn render(series: &Series, ids: Option<&[String]>) -> Vec<(String, String)> {
    let id = |i: usize| ids.and_then(|v| v.get(i)).map(String::as_str);
    let tip = if series.patches.is_empty() { None } else { id(series.patches.len() - 1) };
    let mut out = vec![(COVER_LETTER.to_string(), render_cover(series, tip))];
    for (i, p) in series.patches.iter().enumerate() {
        out.push((patch_file_name(i + 1, &p.slug), render_patch(series, i + 1, id(i))));
    }
    out
}
