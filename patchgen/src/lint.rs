//! `kvmtk lint` on patches not yet committed: mbox or format-patch files
//! applied in memory, one after another, on a base tree (a directory or a
//! git revision), each checked against the tree before it with
//! [`analyzer::lint`]. Nothing is written: the base is only read.
//!
//! A patch that cannot be read is an input error naming the file (and the
//! mail, line or hunk) and what was expected. A patch already in the tree
//! (a stable backport) is skipped and said so; one that does not apply is
//! an input error too (the findings of a tree the patch was not written
//! for mean nothing), unless `--keep-going` asks to lint the others on a
//! tree without it, each step saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use analyzer::lint::{LintBuilder, LintError, Linter, TreeCheck};
use analyzer::source::{arch_of, SourceFile, SourceSpec, SourceTree};

use crate::series::apply::mail;
use crate::series::apply::strategy::{apply_patch, ApplyOptions, Method};
use crate::series::apply::{LoadedSeries, MailPatch};
use crate::series::format::blob_id;
use crate::series::tree::{is_analyzed_path, BaseTree, Changes};

/// Read the patches of every path as `git am` would take them: patch
/// files, mboxes and format-patch directories (`-`: standard input), in
/// the order of their `[PATCH n/m]` numbers, cover letters and replies
/// left out, the newest revision taken (see [`crate::series::apply::mail`]).
/// Every patch must carry a well-formed diff.
pub fn load_patch_inputs(paths: &[PathBuf]) -> Result<LoadedSeries, LintError> {
    if paths.is_empty() {
        return Err(LintError::new("no patch given; expected one or more mbox or format-patch files"));
    }
    for path in paths {
        if path != Path::new("-") && !path.exists() {
            return Err(LintError::new(format!(
                "patch `{}` does not exist; expected an mbox or format-patch file",
                path.display()
            )));
        }
    }
    let loaded = mail::load_inputs(paths).map_err(|e| {
        LintError::new(format!("{}; expected an mbox or format-patch file (git format-patch output)", e.message))
    })?;
    for m in &loaded.patches {
        match &m.files {
            Err(e) => return Err(LintError::new(format!("`{}` is not a valid patch: {e}", m.name))),
            Ok(files) if files.is_empty() => {
                return Err(LintError::new(format!(
                    "`{}` is not a patch: no diff found; expected a unified diff (`diff --git a/PATH b/PATH`, `--- a/PATH`, `+++ b/PATH`, `@@` hunks) as git format-patch writes it",
                    m.name
                )));
            }
            Ok(_) => {}
        }
    }
    Ok(loaded)
}

/// [`load_patch_inputs`] without the notes.
pub fn load_patches(paths: &[PathBuf]) -> Result<Vec<MailPatch>, LintError> {
    Ok(load_patch_inputs(paths)?.patches)
}

/// The contents of `path` in the current state: loaded files first, then
/// files touched by earlier patches outside the loaded set, then the base.
fn read_current(
    path: &str,
    current: &SourceTree,
    overlay: &BTreeMap<String, Option<Vec<u8>>>,
    base: &BaseTree,
) -> Option<Vec<u8>> {
    if let Some(f) = current.file(path) {
        return Some(f.bytes.clone());
    }
    if let Some(o) = overlay.get(path) {
        return o.clone();
    }
    base.read(path).map(|r| r.0)
}

/// `current` with `changes`: changed loaded files get their new bytes and
/// blob id, created files of the analyzed set are added, deleted ones
/// removed. Returns the new tree and the changes to files outside it.
fn updated(current: &SourceTree, changes: &Changes) -> (SourceTree, Changes) {
    let mut next = current.clone();
    let mut outside = Changes::new();
    for (path, bytes) in changes {
        let pos = next.files.binary_search_by(|f| f.path.as_str().cmp(path));
        match (bytes, pos) {
            (Some(b), Ok(i)) => {
                next.files[i].bytes = b.clone();
                next.files[i].blob_id = Some(blob_id(b));
            }
            (Some(b), Err(i)) if is_analyzed_path(path, &next.arches) => {
                let f =
                    SourceFile { path: path.clone(), arch: arch_of(path), bytes: b.clone(), blob_id: Some(blob_id(b)) };
                next.files.insert(i, f);
            }
            (None, Ok(i)) => {
                next.files.remove(i);
            }
            _ => {
                outside.insert(path.clone(), bytes.clone());
            }
        }
    }
    (next, outside)
}

/// Lint `patches` applied in order on the tree `spec`, each against the
/// tree before it, as written only. Returns the collected steps;
/// [`LintBuilder::finish`] makes the report once the baseline is known.
pub fn lint_patches(
    linter: &mut Linter<'_>,
    spec: &SourceSpec,
    patches: &[MailPatch],
) -> Result<LintBuilder, LintError> {
    Ok(lint_patches_with(linter, spec, patches, &ApplyOptions::default())?.builder)
}

/// Trees of a patch series checked at once per thread (see
/// [`lint_patches_with`]).
const TREES_IN_FLIGHT_PER_THREAD: usize = 2;

/// A patch applied (or not) whose step is not recorded yet.
enum Pending<'p> {
    /// Not checked: already applied, or did not apply (with why).
    Skip { name: &'p str, subject: &'p str, note: String },
    /// Checked on `tree`, or the same as its parent when it changes no
    /// analyzed file (`None`); `notes` say how it applied.
    Check { name: &'p str, subject: &'p str, tree: Option<SourceTree>, notes: Vec<String> },
}

/// Check the trees of `pending` in parallel, then record every step in
/// order, each against the one before it (`before` at first). Returns
/// the last tree's check.
fn record(
    linter: &Linter<'_>,
    builder: &mut LintBuilder,
    mut pending: Vec<Pending<'_>>,
    before: TreeCheck,
) -> TreeCheck {
    use rayon::prelude::*;
    let trees: Vec<Option<SourceTree>> = pending
        .iter_mut()
        .map(|q| match q {
            Pending::Check { tree, .. } => tree.take(),
            Pending::Skip { .. } => None,
        })
        .collect();
    let checked: Vec<Option<(TreeCheck, std::time::Duration)>> = trees
        .into_par_iter()
        .map(|t| {
            t.map(|t| {
                let started = std::time::Instant::now();
                (linter.check(t), started.elapsed())
            })
        })
        .collect();
    let mut before = before;
    for (q, c) in pending.into_iter().zip(checked) {
        match q {
            Pending::Skip { name, subject, note } => builder.skip(name, subject, &note),
            Pending::Check { name, subject, notes, .. } => {
                let (after, elapsed) = match c {
                    Some((after, elapsed)) => (after, Some(elapsed)),
                    None => (before.clone(), Some(std::time::Duration::ZERO)),
                };
                builder.push(name, subject, &before, after.clone(), elapsed);
                for n in &notes {
                    builder.note(n);
                }
                before = after;
                linter.progress().advance(1);
            }
        }
    }
    before
}

/// What [`lint_patches_with`] collected.
pub struct PatchLint {
    pub builder: LintBuilder,
    /// Patches that did not apply (with `keep_going`); the lint is
    /// incomplete without them.
    pub not_applied: Vec<String>,
}

/// [`lint_patches`] for stable and distro trees: a patch already in the
/// tree is skipped and said so; `opts` allows reduced context and a
/// three-way merge; with `keep_going` a patch that does not apply is
/// reported and the rest linted on a tree without it.
pub fn lint_patches_with(
    linter: &mut Linter<'_>,
    spec: &SourceSpec,
    patches: &[MailPatch],
    opts: &ApplyOptions,
) -> Result<PatchLint, LintError> {
    let source = linter.load(spec)?;
    let base = BaseTree::open(spec).map_err(|e| LintError::new(e.message))?;
    let label = source.root_label.clone();
    let mut current = source.clone();
    let mut before = linter.check(source);
    let names: Vec<&str> = patches.iter().map(|p| p.name.as_str()).collect();
    let subject = match names.as_slice() {
        [one] => one.to_string(),
        [first, .., last] => format!("{first}..{last}"),
        [] => "no patches".to_string(),
    };
    let mut builder = LintBuilder::new("patches", &subject, &before);
    let mut overlay: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut not_applied: Vec<String> = Vec::new();
    linter.progress().stage("linting patches", Some(patches.len() as u64));
    // Patches apply one after another, but each tree is checked on its
    // own: the trees of a window of patches are checked in parallel (see
    // `analyzer::lint::lint_range`), then recorded in order. A window is
    // small: each tree it holds is a whole copy of the sources.
    let window = rayon::current_num_threads().max(1) * TREES_IN_FLIGHT_PER_THREAD;
    let linter = &*linter;
    let mut pending: Vec<Pending> = Vec::new();
    for (k, p) in patches.iter().enumerate() {
        linter.progress().detail(&p.name);
        let read = |path: &str| read_current(path, &current, &overlay, &base);
        let applied = match apply_patch(p, &read, opts) {
            Ok(a) => a,
            Err(e) if opts.keep_going => {
                let note = format!("did not apply, skipped: {e}");
                pending.push(Pending::Skip { name: &p.name, subject: &p.subject, note });
                not_applied.push(p.name.clone());
                continue;
            }
            Err(e) => {
                return Err(LintError::new(format!(
                    "{e}\n`{}` does not apply to `{label}`; expected a patch for this tree (rebase it, or pass the tree it was written for; --keep-going lints the others, -C N and -3 apply as git am does)",
                    p.name
                )))
            }
        };
        if let Method::AlreadyApplied(_) = applied.method {
            let note = applied.method.describe().unwrap_or_default();
            pending.push(Pending::Skip { name: &p.name, subject: &p.subject, note });
            continue;
        }
        let (next, outside) = updated(&current, &applied.changes);
        // A patch touching only files outside the analyzed set changes no finding.
        let analyzed_changed = outside.len() < applied.changes.len();
        overlay.extend(outside);
        let mut notes: Vec<String> = applied.method.describe().into_iter().collect();
        if !not_applied.is_empty() {
            notes.push(format!("computed on a tree without {}, which did not apply", not_applied.join(", ")));
        }
        let tree = analyzed_changed.then(|| next.clone());
        current = next;
        pending.push(Pending::Check { name: &p.name, subject: &p.subject, tree, notes });
        let in_flight = pending.iter().filter(|q| matches!(q, Pending::Check { tree: Some(_), .. })).count();
        if in_flight >= window || k + 1 == patches.len() {
            before = record(linter, &mut builder, std::mem::take(&mut pending), before);
        }
    }
    record(linter, &mut builder, pending, before);
    Ok(PatchLint { builder, not_applied })
}
