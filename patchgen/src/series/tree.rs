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
    /// A file of a directory base is read only when its path resolves
    /// inside the tree: symbolic links (of any component) that stay inside
    /// are followed, one that leaves the tree makes the file absent.
    pub fn read(&self, path: &str) -> Option<(Vec<u8>, String)> {
        match self {
            BaseTree::Dir(d) => {
                let p = inside_dir(d, path)?;
                let meta = fs::metadata(&p).ok()?;
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
            BaseTree::Dir(d) => inside_dir(d, path)
                .and_then(|p| fs::metadata(p).ok())
                .map(|m| mode_of(&m))
                .unwrap_or_else(|| "100644".into()),
            BaseTree::Git { .. } => self.read(path).map(|r| r.1).unwrap_or_else(|| "100644".into()),
            BaseTree::None => "100644".into(),
        }
    }

    /// Write the whole base tree into `dest` (an empty directory); `loaded`
    /// is written over it (the only files when there is no base).
    ///
    /// The copy is confined: nothing written while making it, nor later
    /// through [`write_confined`], resolves outside `dest`. A symbolic link
    /// of a directory base that stays inside the tree is kept as a link; one
    /// that leaves it (or is absolute) is replaced by a copy of what it
    /// points to, and left out when it points to nothing. A git base's
    /// links must stay inside the tree, or the copy is refused. Every link
    /// kept is checked again in `dest`, after resolution.
    pub fn materialize(&self, dest: &Path, loaded: &SourceTree) -> Result<(), SeriesError> {
        let mut links = Vec::new();
        match self {
            BaseTree::Dir(d) => copy_dir(d, dest)?,
            BaseTree::Git { repo, tree } => materialize_git(repo, *tree, dest, &mut links)?,
            BaseTree::None => {}
        }
        check_links_inside(dest, &links)?;
        for f in &loaded.files {
            let target = dest.join(&f.path);
            if fs::read(&target).ok().as_deref() != Some(&f.bytes[..]) {
                write_confined(dest, &f.path, &f.bytes)?;
            }
        }
        Ok(())
    }
}

/// The path of `rel` under the directory `root` when it resolves inside
/// it (every component, symbolic links followed); `None` otherwise.
fn inside_dir(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = root.join(rel);
    let real = fs::canonicalize(&p).ok()?;
    let root = fs::canonicalize(root).ok()?;
    real.starts_with(&root).then_some(p)
}

/// Writes a git tree's entries under `dest`. Entry names are checked (a
/// crafted tree can hold `..` or a name twice), and a symbolic link must
/// stay inside the tree.
fn materialize_git(
    repo: &Repository,
    tree: git2::Oid,
    dest: &Path,
    links: &mut Vec<String>,
) -> Result<(), SeriesError> {
    let tree = repo.find_tree(tree).map_err(|e| SeriesError::new(e.message().to_string()))?;
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        let rel = format!("{root}{}", String::from_utf8_lossy(entry.name_bytes()));
        let r = super::scratch::check_interrupted().and_then(|()| match entry.kind() {
            Some(ObjectType::Tree) => create_dir_confined(dest, &rel),
            Some(ObjectType::Blob) => match repo.find_blob(entry.id()) {
                Ok(b) if entry.filemode() == 0o120000 => {
                    let target = String::from_utf8_lossy(b.content()).into_owned();
                    if resolve_relative(&rel, &target).is_none() {
                        Err(SeriesError::new(format!(
                            "{rel}: symbolic link leaving the tree (to `{target}`); \
                             kvmtk does not make a scratch copy with it"
                        )))
                    } else {
                        links.push(rel.clone());
                        symlink_confined(dest, &rel, &target)
                    }
                }
                Ok(b) => write_confined(dest, &rel, b.content()).and_then(|()| {
                    if entry.filemode() == 0o100755 {
                        set_executable(&dest.join(&rel))
                    } else {
                        Ok(())
                    }
                }),
                Err(e) => Err(SeriesError::new(format!("{rel}: {}", e.message()))),
            },
            _ => Ok(()),
        });
        match r {
            Ok(()) => git2::TreeWalkResult::Ok,
            Err(e) => {
                failure = Some(e);
                git2::TreeWalkResult::Abort
            }
        }
    })
    .ok();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Resolves a symbolic link target lexically against the link's directory
/// (tree-relative, `/`-separated). `None` if it is absolute or climbs above
/// the root.
fn resolve_relative(link_path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') || target.is_empty() {
        return None;
    }
    let mut parts: Vec<&str> = link_path.split('/').collect();
    parts.pop();
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Where `path` leads on this filesystem: every existing prefix resolved
/// (symbolic links followed), the missing rest appended lexically. Unlike
/// `canonicalize`, it also answers for a link that points to nothing yet,
/// which is where a write through it would create a file.
pub fn resolve_physical(path: &Path) -> PathBuf {
    resolve_physical_within(path, MAX_LINK_HOPS)
}

/// How many dangling links [`resolve_physical`] follows before it takes
/// the rest lexically (a loop of links never resolves).
const MAX_LINK_HOPS: usize = 40;

fn resolve_physical_within(path: &Path, hops: usize) -> PathBuf {
    let mut resolved = PathBuf::new();
    let mut missing = false;
    for comp in path.components() {
        match comp {
            std::path::Component::ParentDir => {
                resolved.pop();
            }
            std::path::Component::CurDir => {}
            c => {
                resolved.push(c.as_os_str());
                if !missing {
                    match fs::canonicalize(&resolved) {
                        Ok(real) => resolved = real,
                        // A dangling link: continue from where it points.
                        Err(_) => match fs::read_link(&resolved) {
                            Ok(target) if hops > 0 => {
                                resolved.pop();
                                resolved = resolve_physical_within(&resolved.join(target), hops - 1);
                                missing = true;
                            }
                            _ => missing = true,
                        },
                    }
                }
            }
        }
    }
    resolved
}

/// Every kept link must resolve inside `dest` (even one pointing to
/// nothing: a build writing through it would create the file there).
fn check_links_inside(dest: &Path, links: &[String]) -> Result<(), SeriesError> {
    let root = fs::canonicalize(dest).map_err(|e| SeriesError::new(format!("{}: {e}", dest.display())))?;
    for rel in links {
        let to = resolve_physical(&dest.join(rel));
        if !to.starts_with(&root) {
            return Err(SeriesError::new(format!(
                "{rel}: symbolic link resolves outside the scratch copy (to `{}`); \
                 kvmtk does not make a scratch copy with it",
                to.display()
            )));
        }
    }
    Ok(())
}

/// Copies the directory tree `src` into `dest` (`.git` skipped) as
/// [`BaseTree::materialize`] does: links inside the tree kept, links
/// leaving it replaced by copies, nothing written outside `dest`.
pub fn copy_dir(src: &Path, dest: &Path) -> Result<(), SeriesError> {
    let root = fs::canonicalize(src).map_err(|e| SeriesError::new(format!("{}: {e}", src.display())))?;
    let mut links = Vec::new();
    DirCopier { src_root: root.clone(), links: &mut links, stack: vec![root] }.copy(src, dest, "")?;
    check_links_inside(dest, &links)
}

/// Copies a directory base: see [`BaseTree::materialize`].
struct DirCopier<'a> {
    /// The canonical root of the tree copied.
    src_root: PathBuf,
    /// Tree-relative paths of the links kept.
    links: &'a mut Vec<String>,
    /// Canonical directories being copied, to stop a link loop.
    stack: Vec<PathBuf>,
}

impl DirCopier<'_> {
    /// Copies `src` to `dest` (`rel` its tree-relative path, `""` for the
    /// root). Links are kept when they stay inside the tree (only in the
    /// tree itself, not in a directory copied from outside it).
    fn copy(&mut self, src: &Path, dest: &Path, rel: &str) -> Result<(), SeriesError> {
        self.copy_entries(src, dest, rel, true)
    }

    fn copy_entries(&mut self, src: &Path, dest: &Path, rel: &str, keep_links: bool) -> Result<(), SeriesError> {
        let err = |p: &Path, e: std::io::Error| SeriesError::new(format!("{}: {e}", p.display()));
        // Copying a whole kernel tree takes a while: stop when interrupted.
        super::scratch::check_interrupted()?;
        fs::create_dir_all(dest).map_err(|e| err(dest, e))?;
        let mut entries: Vec<_> =
            fs::read_dir(src).map_err(|e| err(src, e))?.collect::<Result<_, _>>().map_err(|e| err(src, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if rel.is_empty() && entry.file_name() == ".git" {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let from = entry.path();
            let to = dest.join(entry.file_name());
            let ty = entry.file_type().map_err(|e| err(&from, e))?;
            if ty.is_dir() {
                self.copy_entries(&from, &to, &child_rel, keep_links)?;
            } else if ty.is_symlink() {
                let target = fs::read_link(&from).map_err(|e| err(&from, e))?;
                let resolved = resolve_physical(&from);
                if keep_links && target.is_relative() && resolved.starts_with(&self.src_root) {
                    symlink(&target, &to).map_err(|e| err(&to, e))?;
                    self.links.push(child_rel);
                } else {
                    self.materialize_link(&resolved, &to, &child_rel)?;
                }
            } else if ty.is_file() {
                fs::copy(&from, &to).map_err(|e| err(&from, e))?;
            }
            // Sockets, FIFOs, devices: nothing a build reads (and copying a
            // FIFO would block).
        }
        Ok(())
    }

    /// Replaces a link by a copy of what it points to (nothing when it
    /// points to nothing).
    fn materialize_link(&mut self, resolved: &Path, to: &Path, rel: &str) -> Result<(), SeriesError> {
        let err = |p: &Path, e: std::io::Error| SeriesError::new(format!("{}: {e}", p.display()));
        let Ok(meta) = fs::metadata(resolved) else { return Ok(()) };
        if meta.is_dir() {
            if self.stack.iter().any(|d| d == resolved) {
                return Err(SeriesError::new(format!(
                    "{rel}: symbolic link loop (back to `{}`); kvmtk cannot make a scratch copy",
                    resolved.display()
                )));
            }
            self.stack.push(resolved.to_path_buf());
            let r = self.copy_entries(resolved, to, rel, false);
            self.stack.pop();
            r
        } else if meta.is_file() {
            fs::copy(resolved, to).map(|_| ()).map_err(|e| err(resolved, e))
        } else {
            Ok(())
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_: &Path, _: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Checks a tree-relative path and the directories above it inside `root`:
/// a plain relative path (no `..`, `.` or empty component), no component
/// a symbolic link, every existing parent a directory. With `create`,
/// missing parents are created one by one. Returns the full path, or
/// `None` when a parent is missing (and not created).
fn confined_target(root: &Path, rel: &str, create: bool) -> Result<Option<PathBuf>, SeriesError> {
    let comps: Vec<&str> = rel.split('/').collect();
    if rel.is_empty() || comps.iter().any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0')) {
        return Err(SeriesError::new(format!("`{rel}`: not a plain path inside the tree; nothing written")));
    }
    let mut p = root.to_path_buf();
    for (k, c) in comps.iter().enumerate() {
        p.push(c);
        let last = k + 1 == comps.len();
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(SeriesError::new(format!(
                    "`{rel}`: `{}` is a symbolic link in the scratch copy; kvmtk does not write or delete through \
                     symbolic links",
                    comps[..=k].join("/")
                )))
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(SeriesError::new(format!("`{rel}`: `{}` is not a directory", comps[..=k].join("/"))))
            }
            Ok(m) if last && m.is_dir() => {
                return Err(SeriesError::new(format!("`{rel}`: is a directory in the scratch copy, expected a file")))
            }
            Ok(_) => {}
            Err(_) if last => {}
            Err(_) if create => fs::create_dir(&p).map_err(|e| SeriesError::new(format!("{}: {e}", p.display())))?,
            Err(_) => return Ok(None),
        }
    }
    // After resolution too: the parent directory must be inside the root.
    let (Ok(real_root), Some(Ok(real_parent))) = (fs::canonicalize(root), p.parent().map(fs::canonicalize)) else {
        return Err(SeriesError::new(format!("`{rel}`: cannot resolve its directory in the scratch copy")));
    };
    if !real_parent.starts_with(&real_root) {
        return Err(SeriesError::new(format!(
            "`{rel}`: resolves outside the scratch copy (to `{}`); nothing written",
            real_parent.display()
        )));
    }
    Ok(Some(p))
}

/// Writes `bytes` to the tree-relative `rel` under `root`, creating its
/// directories, never through a symbolic link (of any component) and
/// never outside `root` (see [`confined_target`]).
pub fn write_confined(root: &Path, rel: &str, bytes: &[u8]) -> Result<(), SeriesError> {
    let p = confined_target(root, rel, true)?.expect("parents created");
    let err = |e: std::io::Error| SeriesError::new(format!("{}: {e}", p.display()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    // The last component was checked above; O_NOFOLLOW makes a link put
    // there since fail rather than be written through.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW);
    let mut f = opts.open(&p).map_err(err)?;
    std::io::Write::write_all(&mut f, bytes).map_err(err)
}

/// Deletes the tree-relative file `rel` under `root` if present, never
/// through a symbolic link (see [`confined_target`]).
pub fn remove_confined(root: &Path, rel: &str) -> Result<(), SeriesError> {
    let Some(p) = confined_target(root, rel, false)? else { return Ok(()) };
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SeriesError::new(format!("{}: {e}", p.display()))),
    }
}

/// Creates the tree-relative directory `rel` under `root` (and its
/// parents), never through a symbolic link.
fn create_dir_confined(root: &Path, rel: &str) -> Result<(), SeriesError> {
    let p = confined_target(root, rel, true)?.expect("parents created");
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SeriesError::new(format!("`{rel}`: exists and is not a directory"))),
        Err(_) => fs::create_dir(&p).map_err(|e| SeriesError::new(format!("{}: {e}", p.display()))),
    }
}

/// Creates the link `rel` -> `target` under `root`, never replacing an
/// entry or going through a link.
fn symlink_confined(root: &Path, rel: &str, target: &str) -> Result<(), SeriesError> {
    let p = confined_target(root, rel, true)?.expect("parents created");
    symlink(Path::new(target), &p).map_err(|e| SeriesError::new(format!("{}: {e}", p.display())))
}

fn set_executable(p: &Path) -> Result<(), SeriesError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(0o755))
            .map_err(|e| SeriesError::new(format!("{}: {e}", p.display())))?;
    }
    let _ = p;
    Ok(())
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
