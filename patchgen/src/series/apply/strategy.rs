//! Applying a whole patch to a tree the way a maintainer of a stable or
//! distro tree does with `git am`: as written (hunks may move, as with
//! `git apply`); else, when its changes are already there (it
//! reverse-applies, or every hunk's result is present: a stable backport),
//! as "already applied"; else with reduced context when asked (`-C N`);
//! else, with a repository, by a three-way merge from the blobs its
//! `index` lines name (`-3`). Each way is reported, so the user sees what
//! was needed.

use std::path::Path;

use git2::{IndexEntry, IndexTime, ObjectType, Oid, Repository};

use super::{apply_file, apply_file_with, postimage_present, FilePatch, HunkOptions, MailPatch};
use crate::series::tree::Changes;

/// What may be tried when a patch does not apply as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `-C N`: hunks may match with N lines of context.
    pub min_context: Option<usize>,
    /// `-3`: merge from the blobs named by the patch's `index` lines, read
    /// from this repository (nothing is written to it).
    pub three_way: Option<std::path::PathBuf>,
    /// Go on with the next patches when one does not apply.
    pub keep_going: bool,
}

/// How a patch was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// As written (maybe at an offset).
    Clean,
    /// Its changes are already in the tree: nothing to apply.
    AlreadyApplied(String),
    /// Only with reduced context (`-C N`): which hunks.
    ReducedContext(usize, Vec<String>),
    /// By a three-way merge: which files.
    ThreeWay(Vec<String>),
}

impl Method {
    /// A short label for tables: `yes`, `already`, `-C1`, `-3`.
    pub fn label(&self) -> String {
        match self {
            Method::Clean => "yes".into(),
            Method::AlreadyApplied(_) => "already".into(),
            Method::ReducedContext(n, _) => format!("-C{n}"),
            Method::ThreeWay(_) => "-3".into(),
        }
    }

    /// A sentence for reports; `None` when applied as written.
    pub fn describe(&self) -> Option<String> {
        match self {
            Method::Clean => None,
            Method::AlreadyApplied(why) => Some(format!("already applied, skipped: {why}")),
            Method::ReducedContext(n, hunks) => {
                Some(format!("applied with reduced context (-C{n}): {}", hunks.join(", ")))
            }
            Method::ThreeWay(files) => Some(format!("applied by three-way merge (-3): {}", files.join(", "))),
        }
    }
}

/// A patch's changes and how they were obtained.
#[derive(Debug, Clone)]
pub struct Applied {
    pub changes: Changes,
    pub method: Method,
}

/// Apply `files` in order; `read` gives a path's current contents.
fn apply_all(
    name: &str,
    files: &[FilePatch],
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    opts: HunkOptions,
) -> Result<(Changes, Vec<String>), String> {
    let mut changes = Changes::new();
    let mut reduced = Vec::new();
    for fp in files {
        let current = |p: &str| changes.get(p).cloned().unwrap_or_else(|| read(p));
        // A created file must not exist yet: look it up to say so.
        let old = current(fp.old_path.as_deref().or(fp.new_path.as_deref()).unwrap_or(""));
        let a = apply_file_with(name, fp, old.as_deref(), opts).map_err(|e| e.message)?;
        for (hunk, ctx) in &a.reduced {
            reduced.push(format!(
                "{} hunk #{hunk} with {ctx} line{} of context",
                fp.path(),
                if *ctx == 1 { "" } else { "s" }
            ));
        }
        if let Some(o) = &fp.old_path {
            if fp.new_path.as_deref() != Some(o.as_str()) {
                changes.insert(o.clone(), None);
            }
        }
        if let Some(n) = &fp.new_path {
            changes.insert(n.clone(), a.new);
        }
    }
    Ok((changes, reduced))
}

/// Why the patch's changes are already in the tree, if they are.
fn already_applied(name: &str, files: &[FilePatch], read: &dyn Fn(&str) -> Option<Vec<u8>>) -> Option<String> {
    let reversed: Vec<FilePatch> = files.iter().rev().map(FilePatch::reversed).collect();
    if apply_all(name, &reversed, read, HunkOptions::default()).is_ok() {
        return Some("it reverse-applies".into());
    }
    let present = files.iter().all(|fp| {
        let path = fp.new_path.as_deref().or(fp.old_path.as_deref()).unwrap_or("");
        postimage_present(fp, read(path).as_deref())
    });
    present.then(|| "every hunk's result is already in the tree".into())
}

/// Three-way merge of each file that does not apply as written: the blob
/// its `index` line names is the ancestor, the patch applied to it is
/// theirs, the tree's contents ours (`git am -3`).
fn three_way(
    name: &str,
    files: &[FilePatch],
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    repo_path: &Path,
) -> Result<(Changes, Vec<String>), String> {
    let repo = Repository::open(repo_path)
        .map_err(|e| format!("-3: cannot open `{}`: {}", repo_path.display(), e.message()))?;
    // Merged files are written to an in-memory object store that takes
    // every write: the repository is only read.
    let odb = repo.odb().map_err(|e| e.message().to_string())?;
    let _mempack = odb.add_new_mempack_backend(1000).map_err(|e| e.message().to_string())?;
    let mut changes = Changes::new();
    let mut merged = Vec::new();
    for fp in files {
        let current = |p: &str| changes.get(p).cloned().unwrap_or_else(|| read(p));
        let path = fp.path().to_string();
        let ours = current(fp.old_path.as_deref().or(fp.new_path.as_deref()).unwrap_or(""));
        let new = match apply_file(name, fp, ours.as_deref()) {
            Ok(n) => n,
            Err(_) => {
                let (Some(blob), Some(ours), Some(_)) = (&fp.old_blob, &ours, &fp.new_path) else {
                    return Err(format!("`{path}` has no `index` line, or is created or deleted"));
                };
                let base = repo
                    .find_object_by_prefix(blob, Some(ObjectType::Blob))
                    .ok()
                    .and_then(|o| o.into_blob().ok())
                    .ok_or_else(|| format!("blob {blob} of `{path}` is not in `{}`", repo_path.display()))?;
                let theirs = apply_file(name, fp, Some(base.content()))
                    .map_err(|_| format!("the patch does not apply to its own blob {blob} of `{path}`"))?
                    .unwrap_or_default();
                let m = merge3(&repo, &odb, base.id(), ours, &theirs, &path)?;
                merged.push(format!("{path} from blob {blob}"));
                Some(m)
            }
        };
        if let Some(o) = &fp.old_path {
            if fp.new_path.as_deref() != Some(o.as_str()) {
                changes.insert(o.clone(), None);
            }
        }
        if let Some(n) = &fp.new_path {
            changes.insert(n.clone(), new);
        }
    }
    Ok((changes, merged))
}

fn merge3(
    repo: &Repository,
    odb: &git2::Odb<'_>,
    base: Oid,
    ours: &[u8],
    theirs: &[u8],
    path: &str,
) -> Result<Vec<u8>, String> {
    let entry = |id: Oid, len: usize| IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: len as u32,
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    };
    let write = |b: &[u8]| odb.write(ObjectType::Blob, b).map_err(|e| e.message().to_string());
    let (o, t) = (write(ours)?, write(theirs)?);
    let r = repo
        .merge_file_from_index(&entry(base, 0), &entry(o, ours.len()), &entry(t, theirs.len()), None)
        .map_err(|e| e.message().to_string())?;
    if !r.is_automergeable() {
        return Err(format!("`{path}` has conflicts"));
    }
    Ok(r.content().to_vec())
}

/// Apply one patch: as written, else already applied, else with `-C`, else
/// by `-3`. The error is the first failing hunk as written, and what the
/// other ways found.
pub fn apply_patch(
    p: &MailPatch,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    opts: &ApplyOptions,
) -> Result<Applied, String> {
    let files = p.files.as_ref().map_err(|e| format!("malformed patch: {e}"))?;
    if files.is_empty() {
        return Err(format!("{}: no diff in this patch", p.name));
    }
    let first = match apply_all(&p.name, files, read, HunkOptions::default()) {
        Ok((changes, _)) => return Ok(Applied { changes, method: Method::Clean }),
        Err(e) => e,
    };
    if let Some(why) = already_applied(&p.name, files, read) {
        return Ok(Applied { changes: Changes::new(), method: Method::AlreadyApplied(why) });
    }
    let mut tried = Vec::new();
    if let Some(n) = opts.min_context {
        match apply_all(&p.name, files, read, HunkOptions { min_context: Some(n) }) {
            Ok((changes, hunks)) => return Ok(Applied { changes, method: Method::ReducedContext(n, hunks) }),
            Err(e) => tried.push(format!("with -C{n}: {}", e.lines().next().unwrap_or(""))),
        }
    }
    if let Some(repo) = &opts.three_way {
        match three_way(&p.name, files, read, repo) {
            Ok((changes, merged)) => return Ok(Applied { changes, method: Method::ThreeWay(merged) }),
            Err(e) => tried.push(format!("with -3: {e}")),
        }
    }
    if tried.is_empty() {
        Err(first)
    } else {
        Err(format!("{first}\nalso tried {}", tried.join("; ")))
    }
}
