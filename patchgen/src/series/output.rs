//! Writing a series: the format-patch files into a directory, atomically
//! (a temporary directory beside it, renamed into place), and optionally
//! the commits on a new branch of the repository, without touching HEAD,
//! the index or the work tree.

use std::fs;
use std::path::{Path, PathBuf};

use git2::{FileMode, Oid, Repository, Signature, Time};

use super::{render, Series, SeriesError};

/// Where to write a series.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub out: PathBuf,
    /// Replace a non-empty `out`.
    pub force: bool,
    /// Also create the commits on a new branch.
    pub branch: Option<BranchTarget>,
}

/// A new branch for the series' commits, on top of `rev` of `repo`.
#[derive(Debug, Clone)]
pub struct BranchTarget {
    pub repo: PathBuf,
    pub rev: String,
    pub name: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The commit ids, when a branch was created.
    pub commits: Vec<String>,
}

fn err(what: &str, p: &Path, e: impl std::fmt::Display) -> SeriesError {
    SeriesError::new(format!("{what} {}: {e}", p.display()))
}

/// The directory `out` is created in.
fn parent_of(out: &Path) -> &Path {
    out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Refuse an output directory that exists and is not empty (unless
/// `force`), that is not a directory, or whose parent is not a directory.
/// First cleans what a killed earlier run left beside it (see
/// [`remove_stale_staging`]), so that a restored directory is checked too.
pub fn check_out_dir(out: &Path, force: bool) -> Result<(), SeriesError> {
    remove_stale_staging(out);
    match fs::metadata(out) {
        Err(_) => {
            let parent = parent_of(out);
            if parent.is_dir() {
                Ok(())
            } else {
                Err(SeriesError::new(format!(
                    "cannot write `{}`: {} is not a directory",
                    out.display(),
                    parent.display()
                )))
            }
        }
        Ok(m) if !m.is_dir() => {
            Err(SeriesError::new(format!("output `{}` exists and is not a directory", out.display())))
        }
        Ok(_) => {
            let non_empty = fs::read_dir(out).map_err(|e| err("cannot read", out, e))?.next().is_some();
            if non_empty && !force {
                Err(SeriesError::new(format!(
                    "output directory `{}` exists and is not empty; pass --force to replace it",
                    out.display()
                )))
            } else if non_empty {
                check_replaceable(out)
            } else {
                Ok(())
            }
        }
    }
}

/// The file every series directory holds, so that `--force` replaces only
/// what kvmtk wrote (hidden, so `DIR/*.patch` and `git send-email DIR`
/// do not see it).
pub const MARKER: &str = ".kvmtk-series";

const MARKER_TEXT: &str = "A patch series written by `kvmtk series generate`; \
`--force` may replace this directory.\n";

/// `--force` replaces a non-empty `out` only when it is a series kvmtk
/// wrote: a real directory (not a link to one) holding [`MARKER`].
fn check_replaceable(out: &Path) -> Result<(), SeriesError> {
    let refuse = |why: &str| {
        Err(SeriesError::new(format!("--force refuses to replace `{}`: {why}; nothing was changed", out.display())))
    };
    if fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
        return refuse("it is a symbolic link (give the directory itself)");
    }
    if !fs::symlink_metadata(out.join(MARKER)).is_ok_and(|m| m.is_file()) {
        return refuse(&format!(
            "it is not a series kvmtk wrote (no `{MARKER}` file in it); remove it yourself or choose another --out"
        ));
    }
    Ok(())
}

/// Refuses an `--out` that is, contains, or is inside one of `inputs`
/// (the tree or repository the series is made from): `--force` would
/// delete it, and a series written into the input changes it. Paths are
/// compared after resolution (symbolic links, `..`), and an `--out` that
/// does not exist yet by its nearest existing ancestor.
pub fn check_out_not_input(out: &Path, inputs: &[&Path]) -> Result<(), SeriesError> {
    let out_real = resolve_existing(out);
    // A repository given by its `.git` also protects its work tree.
    let mut protected: Vec<(PathBuf, &Path)> = Vec::new();
    for input in inputs {
        protected.extend(fs::canonicalize(input).ok().map(|p| (p, *input)));
        if let Ok(repo) = Repository::open(input) {
            for p in [Some(repo.path()), repo.workdir()].into_iter().flatten() {
                protected.extend(fs::canonicalize(p).ok().map(|p| (p, *input)));
            }
        }
    }
    for (input_real, input) in protected {
        let relation = if out_real == input_real {
            "is"
        } else if input_real.starts_with(&out_real) {
            "contains"
        } else if out_real.starts_with(&input_real) {
            "is inside"
        } else {
            continue;
        };
        return Err(SeriesError::new(format!(
            "--force refuses output `{}`: it {relation} the input `{}`; choose an --out outside it",
            out.display(),
            input.display()
        )));
    }
    Ok(())
}

/// `path` resolved: its nearest existing ancestor canonicalized, the rest
/// appended.
fn resolve_existing(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(real) = fs::canonicalize(cur) {
            let mut p = real;
            for c in rest.iter().rev() {
                p.push(c);
            }
            return p;
        }
        match (cur.file_name(), cur.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

/// A directory beside `out` that is removed on drop unless kept.
struct Staging {
    dir: Option<tempfile::TempDir>,
}

/// Write `files` into `out` atomically: everything is written into a
/// temporary directory beside `out`, which then replaces `out`. On error
/// nothing is left behind (and a replaced `out` is restored).
pub fn write_dir_atomic(out: &Path, files: &[(String, String)], force: bool) -> Result<Vec<PathBuf>, SeriesError> {
    check_out_dir(out, force)?;
    let staging = stage(out, files)?;
    commit_staging(out, staging)
}

/// The prefix of the temporary directories beside `out`: the staging
/// directory (`.NAME.kvmtk-XXXXXX`) and, with `--force`, the one holding
/// the replaced directory (`.NAME.kvmtk-old-XXXXXX/old`).
fn staging_prefix(out: &Path) -> String {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "series".into());
    format!(".{name}.kvmtk-")
}

/// Clean up after a run that was killed (SIGINT, SIGKILL, power loss)
/// before it could: a temporary directory is not removed when the process
/// dies by a signal. A replaced directory moved aside is put back when
/// `out` is missing (the kill came between the two renames), otherwise it
/// is deleted like the staging directories. A run writing to the same
/// `out` at the same time would lose its staging directory and fail.
pub fn remove_stale_staging(out: &Path) {
    let parent = parent_of(out);
    let prefix = staging_prefix(out);
    let Ok(entries) = fs::read_dir(parent) else { return };
    let mut stale: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    stale.sort();
    let old_prefix = format!("{prefix}old-");
    for dir in stale {
        let is_aside = dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&old_prefix));
        if is_aside && fs::symlink_metadata(out).is_err() && dir.join("old").is_dir() {
            let _ = fs::rename(dir.join("old"), out);
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn stage(out: &Path, files: &[(String, String)]) -> Result<Staging, SeriesError> {
    let parent = parent_of(out);
    if !parent.is_dir() {
        return Err(SeriesError::new(format!(
            "cannot write `{}`: {} is not a directory",
            out.display(),
            parent.display()
        )));
    }
    let tmp = tempfile::Builder::new()
        .prefix(&staging_prefix(out))
        .tempdir_in(parent)
        .map_err(|e| err("cannot create a temporary directory in", parent, e))?;
    for (file, text) in files.iter().map(|(f, t)| (f.as_str(), t.as_str())).chain([(MARKER, MARKER_TEXT)]) {
        let p = tmp.path().join(file);
        fs::write(&p, text).map_err(|e| err("cannot write", &p, e))?;
    }
    Ok(Staging { dir: Some(tmp) })
}

fn commit_staging(out: &Path, mut staging: Staging) -> Result<Vec<PathBuf>, SeriesError> {
    let tmp = staging.dir.take().expect("staged");
    let mut names: Vec<PathBuf> = fs::read_dir(tmp.path())
        .map_err(|e| err("cannot read", tmp.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| n != MARKER)
        .map(|n| out.join(n))
        .collect();
    names.sort();
    let exists = fs::symlink_metadata(out).is_ok();
    let empty_dir = exists && fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
    if !exists || empty_dir {
        let path = tmp.keep();
        if let Err(e) = fs::rename(&path, out) {
            let _ = fs::remove_dir_all(&path);
            return Err(err("cannot move the series into", out, e));
        }
        return Ok(names);
    }
    // Replace a non-empty directory (--force): move it aside, move the new
    // one in, then delete the old one; restore it if the second step fails.
    let parent = parent_of(out);
    let aside = tempfile::Builder::new()
        .prefix(&format!("{}old-", staging_prefix(out)))
        .tempdir_in(parent)
        .map_err(|e| err("cannot create a temporary directory in", parent, e))?;
    let aside_path = aside.path().join("old");
    fs::rename(out, &aside_path).map_err(|e| err("cannot move aside", out, e))?;
    let path = tmp.keep();
    if let Err(e) = fs::rename(&path, out) {
        let _ = fs::rename(&aside_path, out);
        let _ = fs::remove_dir_all(&path);
        return Err(err("cannot move the series into", out, e));
    }
    drop(aside);
    Ok(names)
}

fn git_err(repo: &Path, e: git2::Error) -> SeriesError {
    SeriesError::new(format!("{}: {}", repo.display(), e.message()))
}

/// Check a branch can be created: valid name, not existing, and a
/// revision naming a commit.
pub fn check_branch(target: &BranchTarget) -> Result<(), SeriesError> {
    let refname = format!("refs/heads/{}", target.name);
    check_branch_name(&target.name)?;
    let repo = Repository::open(&target.repo).map_err(|e| git_err(&target.repo, e))?;
    if repo.find_reference(&refname).is_ok() {
        return Err(SeriesError::new(format!(
            "branch `{}` already exists in {}; choose another name",
            target.name,
            target.repo.display()
        )));
    }
    repo.revparse_single(&target.rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| SeriesError::new(format!("--branch needs --rev to name a commit: {}", e.message())))?;
    Ok(())
}

/// A branch name as `git check-ref-format --branch` accepts it (a valid
/// `refs/heads/NAME`, not starting with `-`), and not one git reads as
/// something else: `HEAD` (`refs/heads/HEAD` makes `HEAD` ambiguous) and
/// `@` (git's shorthand for `HEAD`).
pub fn check_branch_name(name: &str) -> Result<(), SeriesError> {
    let why = if name == "HEAD" || name == "@" {
        Some("git reads it as HEAD, the current branch".to_string())
    } else if name.starts_with('-') {
        Some("it starts with `-`".to_string())
    } else if !git2::Reference::is_valid_name(&format!("refs/heads/{name}")) {
        Some("not a valid git branch name (see `git check-ref-format --branch`)".to_string())
    } else {
        None
    };
    match why {
        Some(why) => Err(SeriesError::new(format!("invalid branch name `{name}`: {why}"))),
        None => Ok(()),
    }
}

/// Create the series' commits (objects only, no reference) on top of
/// `rev`: author and committer are the series' author at its date, the
/// messages are the patches' messages. Returns the commit ids in order.
pub fn create_commits(series: &Series, repo_path: &Path, rev: &str) -> Result<Vec<String>, SeriesError> {
    let repo = Repository::open(repo_path).map_err(|e| git_err(repo_path, e))?;
    let mut parent = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| SeriesError::new(format!("--branch needs --rev to name a commit: {}", e.message())))?;
    let time = Time::new(series.date.epoch, series.date.offset_minutes);
    let sig = Signature::new(&series.author.name, &series.author.email, &time).map_err(|e| git_err(repo_path, e))?;
    let mut ids = Vec::new();
    for p in &series.patches {
        let base = parent.tree().map_err(|e| git_err(repo_path, e))?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (path, bytes) in &p.new_contents {
            let blob = repo.blob(bytes).map_err(|e| git_err(repo_path, e))?;
            let mode = match base.get_path(Path::new(path)).map(|e| e.filemode()) {
                Ok(0o100755) => FileMode::BlobExecutable,
                _ => FileMode::Blob,
            };
            update.upsert(path.as_str(), blob, mode);
        }
        let tree_id = update.create_updated(&repo, &base).map_err(|e| git_err(repo_path, e))?;
        let tree = repo.find_tree(tree_id).map_err(|e| git_err(repo_path, e))?;
        let id: Oid = repo
            .commit(None, &sig, &sig, &p.message(&series.author), &tree, &[&parent])
            .map_err(|e| git_err(repo_path, e))?;
        ids.push(id.to_string());
        parent = repo.find_commit(id).map_err(|e| git_err(repo_path, e))?;
    }
    Ok(ids)
}

/// Write the series (and its branch) per `opts`; nothing is left behind on
/// error.
pub fn write_series(series: &Series, opts: &WriteOptions) -> Result<Written, SeriesError> {
    check_out_dir(&opts.out, opts.force)?;
    let commits = match &opts.branch {
        Some(b) => {
            check_branch(b)?;
            create_commits(series, &b.repo, &b.rev)?
        }
        None => Vec::new(),
    };
    let files = render(series, if commits.is_empty() { None } else { Some(&commits) });
    let staging = stage(&opts.out, &files)?;
    let mut created_ref = None;
    if let Some(b) = &opts.branch {
        let repo = Repository::open(&b.repo).map_err(|e| git_err(&b.repo, e))?;
        let tip = match commits.last() {
            Some(c) => Oid::from_str(c).map_err(|e| git_err(&b.repo, e))?,
            None => {
                repo.revparse_single(&b.rev).and_then(|o| o.peel_to_commit()).map_err(|e| git_err(&b.repo, e))?.id()
            }
        };
        let refname = format!("refs/heads/{}", b.name);
        repo.reference(&refname, tip, false, "kvmtk series generate").map_err(|e| git_err(&b.repo, e))?;
        created_ref = Some((b.repo.clone(), refname));
    }
    match commit_staging(&opts.out, staging) {
        Ok(files) => Ok(Written { files, commits }),
        Err(e) => {
            if let Some((repo, refname)) = created_ref {
                if let Ok(r) = Repository::open(&repo) {
                    if let Ok(mut reference) = r.find_reference(&refname) {
                        let _ = reference.delete();
                    }
                }
            }
            Err(e)
        }
    }
}
