//! `kvmtk lint` on patches not yet committed: mbox or format-patch files
//! applied in memory, one after another, on a base tree (a directory or a
//! git revision), each checked against the tree before it with
//! [`analyzer::lint`]. Nothing is written: the base is only read.
//!
//! Any patch that cannot be read or applied is an input error naming the
//! file (and the mail, line or hunk) and what was expected; no report is
//! produced then, since the findings of a tree the patch was not written
//! for mean nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use analyzer::lint::{LintBuilder, LintError, Linter};
use analyzer::source::{arch_of, SourceFile, SourceSpec, SourceTree};

use crate::series::apply::{apply_file, load_series, MailPatch};
use crate::series::format::blob_id;
use crate::series::tree::{is_analyzed_path, BaseTree, Changes};

/// Read the patches of each path, in the order given: an mbox (one or
/// more mails), a single format-patch file, or a format-patch directory.
/// Every mail must carry a well-formed diff.
pub fn load_patches(paths: &[PathBuf]) -> Result<Vec<MailPatch>, LintError> {
    if paths.is_empty() {
        return Err(LintError::new("no patch given; expected one or more mbox or format-patch files"));
    }
    let mut out = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(LintError::new(format!(
                "patch `{}` does not exist; expected an mbox or format-patch file",
                path.display()
            )));
        }
        let mails = load_series(path).map_err(|e| {
            LintError::new(format!("{}; expected an mbox or format-patch file (git format-patch output)", e.message))
        })?;
        let single = mails.len() == 1 && !path.is_dir();
        for mut m in mails {
            // One mail in a file: named after the file alone (`x.patch`, not `x.patch#1`).
            if single {
                m.name = path.file_name().map_or(m.name, |n| n.to_string_lossy().into_owned());
            }
            let where_ =
                if !single { format!("`{}` ({})", path.display(), m.name) } else { format!("`{}`", path.display()) };
            match &m.files {
                Err(e) => {
                    return Err(LintError::new(format!("{where_} is not a valid patch: {e}")));
                }
                Ok(files) if files.is_empty() => {
                    return Err(LintError::new(format!(
                        "{where_} is not a patch: no diff found; expected a unified diff (`diff --git a/PATH b/PATH`, `--- a/PATH`, `+++ b/PATH`, `@@` hunks) as git format-patch writes it"
                    )));
                }
                Ok(_) => out.push(m),
            }
        }
    }
    Ok(out)
}

/// The changes of one patch against the current state: loaded files first,
/// then files touched by earlier patches outside the loaded set, then the
/// base tree.
fn apply_patch(
    p: &MailPatch,
    current: &SourceTree,
    overlay: &BTreeMap<String, Option<Vec<u8>>>,
    base: &BaseTree,
) -> Result<Changes, String> {
    let files = p.files.as_ref().map_err(|e| format!("malformed patch: {e}"))?;
    let mut changes: Changes = BTreeMap::new();
    for fp in files {
        let read = |path: &str, changes: &Changes| -> Option<Vec<u8>> {
            if let Some(c) = changes.get(path) {
                return c.clone();
            }
            if let Some(f) = current.file(path) {
                return Some(f.bytes.clone());
            }
            if let Some(o) = overlay.get(path) {
                return o.clone();
            }
            base.read(path).map(|r| r.0)
        };
        let old = match (&fp.old_path, &fp.new_path) {
            (Some(o), _) => read(o, &changes),
            // A created file must not exist yet: look it up to say so.
            (None, Some(n)) => read(n, &changes),
            (None, None) => None,
        };
        let new = apply_file(&p.name, fp, old.as_deref()).map_err(|e| e.message)?;
        if let Some(o) = &fp.old_path {
            if fp.new_path.as_deref() != Some(o.as_str()) {
                changes.insert(o.clone(), None);
            }
        }
        if let Some(n) = &fp.new_path {
            changes.insert(n.clone(), new);
        }
    }
    Ok(changes)
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
/// tree before it. Returns the collected steps; [`LintBuilder::finish`]
/// makes the report once the baseline is known.
pub fn lint_patches(
    linter: &mut Linter<'_>,
    spec: &SourceSpec,
    patches: &[MailPatch],
) -> Result<LintBuilder, LintError> {
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
    linter.progress().stage("linting patches", Some(patches.len() as u64));
    for p in patches {
        linter.progress().detail(&p.name);
        let changes = apply_patch(p, &current, &overlay, &base).map_err(|e| {
            LintError::new(format!(
                "{e}\n`{}` does not apply to `{label}`; expected a patch for this tree (rebase it, or pass the tree it was written for)",
                p.name
            ))
        })?;
        let started = std::time::Instant::now();
        let (next, outside) = updated(&current, &changes);
        overlay.extend(outside);
        let after = linter.check(next.clone());
        let elapsed = started.elapsed();
        builder.push(&p.name, &p.subject, &before, after.clone(), Some(elapsed));
        current = next;
        before = after;
        linter.progress().advance(1);
    }
    Ok(builder)
}
