//! The tree a series works on: the analyzed KVM subset (re-parsed
//! incrementally as patches change files) and the base it came from (a
//! directory or a git revision), read for files outside the subset and
//! materialized for builds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use analyzer::pipeline::{ParsedTree, CPUHOTPLUG_H, LOCKING_RST};
use analyzer::source::{arch_of, SourceFile, SourceSpec, SourceTree};
use git2::{ObjectType, Repository};

use super::format::blob_id;
use super::SeriesError;

/// The new state of changed files: `Some(bytes)`, or `None` when deleted.
pub type Changes = BTreeMap<String, Option<Vec<u8>>>;

/// Whether a path belongs to the analyzed file set (for files a patch
/// creates): `virt/kvm/**` and `arch/<loaded arch>/kvm/**` C files.
pub fn is_analyzed_path(path: &str, arches: &[String]) -> bool {
    let c = path.ends_with(".c") || path.ends_with(".h");
    if path.starts_with("virt/kvm/") {
        return c;
    }
    match arch_of(path) {
        Some(a) => c && arches.contains(&a) && path.starts_with(&format!("arch/{a}/kvm/")),
        None => false,
    }
}

/// A new parsed tree with `changes` applied: only changed files are
/// re-parsed; the kernel docs are re-read only when they changed.
pub fn update_parsed(old: &ParsedTree, changes: &Changes) -> ParsedTree {
    let mut source = old.source.clone();
    let mut changed_files = Vec::new();
    for (path, bytes) in changes {
        let pos = source.files.binary_search_by(|f| f.path.as_str().cmp(path));
        match (bytes, pos) {
            (Some(b), Ok(i)) => {
                source.files[i].bytes = b.clone();
                source.files[i].blob_id = Some(blob_id(b));
                changed_files.push(source.files[i].clone());
            }
            (Some(b), Err(i)) if is_analyzed_path(path, &source.arches) => {
                let f =
                    SourceFile { path: path.clone(), arch: arch_of(path), bytes: b.clone(), blob_id: Some(blob_id(b)) };
                source.files.insert(i, f.clone());
                changed_files.push(f);
            }
            (None, Ok(i)) => {
                source.files.remove(i);
            }
            _ => {}
        }
    }
    let partial = ParsedTree::from_source(SourceTree {
        root_label: source.root_label.clone(),
        commit: source.commit.clone(),
        files: changed_files,
        arches: source.arches.clone(),
        warnings: Vec::new(),
        pending: Default::default(),
    });
    let touched: BTreeSet<&str> = changes.keys().map(String::as_str).collect();
    let mut files: Vec<_> = old.files.iter().filter(|f| !touched.contains(f.path.as_str())).cloned().collect();
    files.extend(partial.files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut warnings: Vec<_> = old.warnings.iter().filter(|w| !touched.contains(w.path.as_str())).cloned().collect();
    warnings.extend(partial.warnings);
    let cpuhp = if touched.contains(CPUHOTPLUG_H) { partial.cpuhp } else { old.cpuhp.clone() };
    let locking = if touched.contains(LOCKING_RST) { partial.locking } else { old.locking.clone() };
    ParsedTree { source, files, cpuhp, locking, warnings }
}

/// Where the series' base tree comes from, for files outside the analyzed
/// subset and for materializing the whole tree.
pub enum BaseTree {
    Dir(PathBuf),
    Git {
        repo: Repository,
        tree: git2::Oid,
    },
    /// Only the loaded files (tests building trees in memory).
    None,
}

impl BaseTree {
    pub fn open(spec: &SourceSpec) -> Result<BaseTree, SeriesError> {
        match spec {
            SourceSpec::Dir(d) => Ok(BaseTree::Dir(d.clone())),
            SourceSpec::Git { repo, rev } => {
                let r = Repository::open(repo)
                    .map_err(|e| SeriesError::new(format!("{}: {}", repo.display(), e.message())))?;
                let tree = r
                    .revparse_single(rev)
                    .and_then(|o| o.peel_to_tree())
                    .map_err(|e| SeriesError::new(format!("{}@{rev}: {}", repo.display(), e.message())))?
                    .id();
                Ok(BaseTree::Git { repo: r, tree })
            }
        }
    }

    /// The contents and git mode (`100644`, `100755`) of a file, if present.
    pub fn read(&self, path: &str) -> Option<(Vec<u8>, String)> {
        match self {
            BaseTree::Dir(d) => {
                let p = d.join(path);
                let meta = fs::symlink_metadata(&p).ok()?;
                if !meta.is_file() {
                    return None;
                }
                Some((fs::read(&p).ok()?, mode_of(&meta)))
            }
            BaseTree::Git { repo, tree } => {
                let tree = repo.find_tree(*tree).ok()?;
                let entry = tree.get_path(Path::new(path)).ok()?;
                if entry.kind() != Some(ObjectType::Blob) {
                    return None;
                }
                let mode = format!("{:o}", entry.filemode());
                let blob = repo.find_blob(entry.id()).ok()?;
                Some((blob.content().to_vec(), mode))
            }
            BaseTree::None => None,
        }
    }

    /// The git mode of a file of the base (`100644` when unknown).
    pub fn mode(&self, path: &str) -> String {
        match self {
            BaseTree::Dir(d) => {
                fs::symlink_metadata(d.join(path)).map(|m| mode_of(&m)).unwrap_or_else(|_| "100644".into())
            }
            BaseTree::Git { .. } => self.read(path).map(|r| r.1).unwrap_or_else(|| "100644".into()),
            BaseTree::None => "100644".into(),
        }
    }

    /// Write the whole base tree into `dest` (an empty directory); `loaded`
    /// is written over it (the only files when there is no base).
    pub fn materialize(&self, dest: &Path, loaded: &SourceTree) -> Result<(), SeriesError> {
        let err = |p: &Path, e: std::io::Error| SeriesError::new(format!("{}: {e}", p.display()));
        match self {
            BaseTree::Dir(d) => copy_dir(d, dest)?,
            BaseTree::Git { repo, tree } => {
                let tree = repo.find_tree(*tree).map_err(|e| SeriesError::new(e.message().to_string()))?;
                let mut failure = None;
                tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
                    let rel = format!("{root}{}", entry.name().unwrap_or(""));
                    let target = dest.join(&rel);
                    let r = match entry.kind() {
                        Some(ObjectType::Tree) => fs::create_dir_all(&target).map_err(|e| err(&target, e)),
                        Some(ObjectType::Blob) => match repo.find_blob(entry.id()) {
                            Ok(b) => write_file(
                                &target,
                                b.content(),
                                entry.filemode() == 0o100755,
                                entry.filemode() == 0o120000,
                            ),
                            Err(e) => Err(SeriesError::new(format!("{rel}: {}", e.message()))),
                        },
                        _ => Ok(()),
                    };
                    match r {
                        Ok(()) => git2::TreeWalkResult::Ok,
                        Err(e) => {
                            failure = Some(e);
                            git2::TreeWalkResult::Abort
                        }
                    }
                })
                .ok();
                if let Some(e) = failure {
                    return Err(e);
                }
            }
            BaseTree::None => {}
        }
        for f in &loaded.files {
            let target = dest.join(&f.path);
            if fs::read(&target).ok().as_deref() != Some(&f.bytes[..]) {
                write_file(&target, &f.bytes, false, false)?;
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn mode_of(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        "100755".into()
    } else {
        "100644".into()
    }
}

#[cfg(not(unix))]
fn mode_of(_: &fs::Metadata) -> String {
    "100644".into()
}

/// Write a file (creating its directories), optionally executable or as a
/// symbolic link whose target is `bytes`.
pub fn write_file(path: &Path, bytes: &[u8], exec: bool, symlink: bool) -> Result<(), SeriesError> {
    let err = |e: std::io::Error| SeriesError::new(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    #[cfg(unix)]
    if symlink {
        let _ = fs::remove_file(path);
        let target = String::from_utf8_lossy(bytes).into_owned();
        return std::os::unix::fs::symlink(target, path).map_err(err);
    }
    let _ = symlink;
    fs::write(path, bytes).map_err(err)?;
    #[cfg(unix)]
    if exec {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(err)?;
    }
    let _ = exec;
    Ok(())
}

/// Copy a directory tree (files, directories, symbolic links as links;
/// `.git` skipped).
pub fn copy_dir(src: &Path, dest: &Path) -> Result<(), SeriesError> {
    let err = |p: &Path, e: std::io::Error| SeriesError::new(format!("{}: {e}", p.display()));
    fs::create_dir_all(dest).map_err(|e| err(dest, e))?;
    for entry in fs::read_dir(src).map_err(|e| err(src, e))? {
        let entry = entry.map_err(|e| err(src, e))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let ty = entry.file_type().map_err(|e| err(&from, e))?;
        if ty.is_dir() {
            copy_dir(&from, &to)?;
        } else if ty.is_symlink() {
            #[cfg(unix)]
            {
                let target = fs::read_link(&from).map_err(|e| err(&from, e))?;
                std::os::unix::fs::symlink(target, &to).map_err(|e| err(&to, e))?;
            }
        } else {
            fs::copy(&from, &to).map_err(|e| err(&from, e))?;
        }
    }
    Ok(())
}
