//! Kernel sources: the KVM-relevant files of a kernel tree, read either from a
//! directory or from a git revision (through libgit2, without a checkout, so
//! bare repositories and any historical revision work the same way).
//!
//! The file set is deliberately narrow (see [`SourceTree::load`]): KVM's
//! hardware-enable path lives in `virt/kvm`, `arch/*/kvm` and a handful of
//! headers, and reading only those keeps loading a full kernel tree cheap.
//!
//! Every file carries its git blob id, also for directory sources, so that
//! caches of per-file results are keyed the same way whatever the source.
//!
//! Only a tree that cannot be read at all is an error; a single unreadable
//! file becomes a [`SourceWarning`] and the rest still loads, because one bad
//! file should not hide the findings of all others.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use git2::{ErrorCode, ObjectType, Oid, Repository, Tree};
use rayon::prelude::*;

/// Files whose absence means the input is not a kernel tree at all.
const REQUIRED_FILES: [&str; 2] = ["virt/kvm/kvm_main.c", "include/linux/kvm_host.h"];

/// Common (not per-arch) files kvmtk reads besides `virt/kvm/**`.
const COMMON_FILES: [&str; 2] = ["include/linux/kvm_host.h", "include/linux/cpuhotplug.h"];

/// Documentation kvmtk reads as a source of truth. Its absence (or that of
/// `cpuhotplug.h`) only degrades the analysis, so it is a warning.
const LOCKING_DOC: &str = "Documentation/virt/kvm/locking.rst";
const CPUHOTPLUG_H: &str = "include/linux/cpuhotplug.h";

/// Per-arch headers, relative to `arch/<arch>/`.
const ARCH_HEADERS: [&str; 3] = ["include/asm/kvm_host.h", "include/asm/kvm_ppc.h", "include/asm/kvm-x86-ops.h"];

/// How many symbolic links are followed in a row before giving up (a loop).
const MAX_SYMLINK_HOPS: usize = 8;

/// One file of the kernel tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the tree root, with `/` separators
    /// (`arch/x86/kvm/x86.c`).
    pub path: String,
    /// `Some("x86")` for files under `arch/x86/`, `None` for common files.
    pub arch: Option<String>,
    /// The file's contents, as stored (not necessarily UTF-8).
    pub bytes: Vec<u8>,
    /// Git blob id (hex) of the contents. For directory sources it is
    /// computed the way git would, so caches key uniformly. `None` only if
    /// hashing failed, which libgit2 does not do for in-memory buffers.
    pub blob_id: Option<String>,
}

impl SourceFile {
    /// The contents as text; invalid UTF-8 sequences become U+FFFD.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Where the kernel sources come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The top directory of a kernel source tree.
    Dir(PathBuf),
    /// A revision (anything `git rev-parse` accepts: tag, branch, commit id,
    /// `HEAD~3`, a tree id) of a git repository, bare or not.
    Git {
        /// The repository (its work tree, its `.git` directory, or a bare
        /// repository). Not searched upwards: the path must be the repository.
        repo: PathBuf,
        /// The revision to read.
        rev: String,
    },
}

/// What to load besides (or instead of) the default file set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// Keep only the files of these architectures (`["x86"]`); common files
    /// are always kept. `None` keeps all architectures. Each name must be
    /// an architecture with an `arch/<arch>/kvm` directory, otherwise
    /// loading fails with [`SourceError::UnknownArch`].
    pub arches: Option<Vec<String>>,
    /// More paths (relative to the tree root) to load: a file is loaded
    /// whatever its extension, a directory contributes its `.c` and `.h`
    /// files recursively. A path that does not exist becomes a warning,
    /// since it may exist only in some revisions. Arch narrowing applies to
    /// these too.
    pub extra_paths: Vec<String>,
}

/// A file that could not be loaded, or a missing optional file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceWarning {
    /// Path relative to the tree root.
    pub path: String,
    /// What went wrong, for a user to read.
    pub message: String,
}

impl fmt::Display for SourceWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.path, self.message)
    }
}

/// Why a kernel tree could not be loaded at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The directory or repository path does not exist.
    #[error("`{}` does not exist; expected a kernel source tree or git repository", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The path of a directory source is a file.
    #[error("`{}` is not a directory; expected the top directory of a kernel source tree", path.display())]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// The directory of a directory source has no entries.
    #[error("`{}` is an empty directory; expected a kernel source tree (with {})", path.display(), REQUIRED_FILES.join(" and "))]
    EmptyDirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// The directory or revision lacks files every kernel tree has.
    #[error("`{label}` is not a kernel source tree: missing {}", missing.join(" and "))]
    NotAKernelTree {
        /// The directory, or `repo@rev`.
        label: String,
        /// The missing files, relative to the tree root.
        missing: Vec<String>,
    },
    /// The path of a git source is not a git repository.
    #[error("`{}` is not a git repository; expected a repository (or bare repository) holding a kernel tree", repo.display())]
    NotAGitRepository {
        /// The path as given.
        repo: PathBuf,
    },
    /// The revision does not resolve in the repository.
    #[error("unknown revision `{rev}` in git repository `{}`", repo.display())]
    UnknownRevision {
        /// The repository path as given.
        repo: PathBuf,
        /// The revision as given.
        rev: String,
    },
    /// The revision resolves to something without a tree (a blob).
    #[error("revision `{rev}` in git repository `{}` is a {kind}; expected a commit, tag or tree", repo.display())]
    NotATree {
        /// The repository path as given.
        repo: PathBuf,
        /// The revision as given.
        rev: String,
        /// The kind of object it names.
        kind: String,
    },
    /// An architecture asked for in [`SourceOptions::arches`] has no
    /// `arch/<arch>/kvm` directory.
    #[error("unknown architecture `{arch}` in `{label}`; architectures with KVM code: {}", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    UnknownArch {
        /// The architecture as given.
        arch: String,
        /// The directory, or `repo@rev`.
        label: String,
        /// Architectures that have an `arch/<arch>/kvm` directory.
        available: Vec<String>,
    },
    /// A directory needed to enumerate the tree could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Objects the revision's tree needs (trees, blobs) are not in the
    /// repository: a partial (`--filter`) clone, or a damaged one. Nothing
    /// is analyzed then, since findings of part of a tree would read as a
    /// verdict on all of it.
    #[error("{}", missing_objects_message(repo, label, missing, partial_remote.as_deref(), *bare))]
    MissingObjects {
        /// The repository path as given.
        repo: PathBuf,
        /// `repo@rev`.
        label: String,
        /// What is missing, in the order met (at least one).
        missing: Vec<MissingObject>,
        /// The promisor remote when the repository is a partial clone.
        partial_remote: Option<String>,
        /// Whether the repository is bare (a fetch must name its refs).
        bare: bool,
    },
    /// libgit2 failed in a way not covered above (corrupt object store, ...).
    #[error("git error in `{}`: {message}", repo.display())]
    Git {
        /// The repository path as given.
        repo: PathBuf,
        /// libgit2's message.
        message: String,
    },
}

/// A git object a source needs that the repository does not have (or
/// cannot read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingObject {
    /// Where the tree needs it (`arch/x86/kvm`, `virt/kvm/kvm_main.c`; `""`
    /// for the root tree).
    pub path: String,
    /// `tree` or `blob`.
    pub kind: &'static str,
    /// The object id (hex).
    pub id: String,
}

/// The message of [`SourceError::MissingObjects`]: what is missing, why,
/// and how to get a complete repository. kvmtk reads the object database
/// through libgit2 and never fetches: a lint in CI must not depend on the
/// network, and a fetch would write into the user's repository.
fn missing_objects_message(
    repo: &Path,
    label: &str,
    missing: &[MissingObject],
    partial_remote: Option<&str>,
    bare: bool,
) -> String {
    const SHOWN: usize = 3;
    let mut listed: Vec<String> = missing
        .iter()
        .take(SHOWN)
        .map(|m| {
            let path = if m.path.is_empty() { "the root tree".to_string() } else { format!("`{}`", m.path) };
            format!("{} {path} ({})", m.kind, m.id)
        })
        .collect();
    if missing.len() > SHOWN {
        listed.push(format!("and {} more", missing.len() - SHOWN));
    }
    let n = missing.len();
    let head = format!(
        "`{label}` cannot be analyzed: {n} git object{} it needs {} missing from the repository: {}",
        if n == 1 { "" } else { "s" },
        if n == 1 { "is" } else { "are" },
        listed.join(", ")
    );
    let r = repo.display();
    // A bare clone has no fetch refspec: its refs must be named.
    let refs = if bare { " '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'" } else { "" };
    match partial_remote {
        Some(remote) => format!(
            "{head}. `{r}` is a partial clone (promisor remote `{remote}`, e.g. `git clone --filter=blob:none`) and kvmtk does not fetch: \
             analyze a complete clone (`git clone` without `--filter`), or complete this one with \
             `git -C {r} config --unset remote.{remote}.partialclonefilter && git -C {r} fetch --refetch {remote}{refs}`"
        ),
        None => format!(
            "{head}. The repository is incomplete or damaged (`git -C {r} fsck` lists what is missing): \
             fetch the objects again (`git -C {r} fetch --refetch`) or analyze a complete clone"
        ),
    }
}

/// The loaded KVM-relevant files of one kernel tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTree {
    /// Names the source for messages: the directory, or `repo@rev`.
    pub root_label: String,
    /// For git sources, the id (hex) of the commit the revision resolved to
    /// (`None` for directories, and for revisions naming a bare tree).
    pub commit: Option<String>,
    /// The files, sorted by path.
    pub files: Vec<SourceFile>,
    /// Architectures that have an `arch/<arch>/kvm` directory and were
    /// loaded (after [`SourceOptions::arches`] narrowing), sorted.
    pub arches: Vec<String>,
    /// Files that could not be read and missing optional files, sorted by
    /// path. The rest of the tree loaded normally.
    pub warnings: Vec<SourceWarning>,
    /// C files whose contents are not read yet (empty `bytes`, blob id
    /// set): only trees from [`SourceTree::load_deferred`] have any.
    pub pending: PendingBlobs,
}

/// The C files of a git source whose blobs [`SourceTree::load_deferred`]
/// left unread, and the repository to read them from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingBlobs {
    repo: PathBuf,
    paths: BTreeSet<String>,
}

/// Pending blobs could not be read (a repository changed or damaged under
/// us); [`SourceTree::read_all_pending`] reports each as a load would.
#[derive(Debug)]
pub struct PendingReadError;

impl SourceTree {
    /// Loads the KVM-relevant files of a kernel tree.
    ///
    /// The default file set is: `virt/kvm/**` and `arch/*/kvm/**` (`.c` and
    /// `.h` files), `arch/*/include/asm/kvm_host.h`,
    /// `arch/*/include/asm/kvm_ppc.h`, `arch/x86/include/asm/kvm-x86-ops.h`,
    /// `include/linux/kvm_host.h`, `include/linux/cpuhotplug.h` and
    /// `Documentation/virt/kvm/locking.rst`, plus
    /// [`SourceOptions::extra_paths`].
    ///
    /// Symbolic links are followed only when they resolve to a file inside
    /// the tree; others become warnings.
    pub fn load(spec: &SourceSpec, opts: &SourceOptions) -> Result<SourceTree, SourceError> {
        match spec {
            SourceSpec::Dir(dir) => load_dir(dir, opts),
            SourceSpec::Git { repo, rev } => load_git(repo, rev, opts, false),
        }
    }

    /// [`SourceTree::load`], leaving the contents of a git source's C files
    /// unread until [`SourceTree::read_pending`] asks for them: a caller
    /// whose caches know most blobs by id (a lint of one commit) reads only
    /// the few it must parse. Directory sources are read whole (their blob
    /// ids are hashed from the contents).
    pub fn load_deferred(spec: &SourceSpec, opts: &SourceOptions) -> Result<SourceTree, SourceError> {
        match spec {
            SourceSpec::Dir(dir) => load_dir(dir, opts),
            SourceSpec::Git { repo, rev } => load_git(repo, rev, opts, true),
        }
    }

    /// Whether the contents of `file` are still to be read.
    pub fn is_pending(&self, file: &SourceFile) -> bool {
        self.pending.paths.contains(&file.path)
    }

    /// Read the pending files that `wanted` selects. On a failure the tree
    /// is unchanged for that file; [`SourceTree::read_all_pending`] then
    /// gives what a plain load gives.
    pub fn read_pending(&mut self, wanted: impl Fn(&SourceFile) -> bool) -> Result<(), PendingReadError> {
        let picked: Vec<usize> = (0..self.files.len())
            .filter(|&i| self.pending.paths.contains(&self.files[i].path) && wanted(&self.files[i]))
            .collect();
        if picked.is_empty() {
            return Ok(());
        }
        let repo = Repository::open(&self.pending.repo).map_err(|_| PendingReadError)?;
        for i in picked {
            let f = &mut self.files[i];
            let oid = f.blob_id.as_deref().and_then(|b| Oid::from_str(b).ok()).ok_or(PendingReadError)?;
            f.bytes = repo.find_blob(oid).map_err(|_| PendingReadError)?.content().to_vec();
            self.pending.paths.remove(&f.path);
        }
        Ok(())
    }

    /// Read every pending file, as [`SourceTree::load`] would have: a blob
    /// that cannot be read is left out with a warning.
    pub fn read_all_pending(mut self) -> SourceTree {
        if self.pending.paths.is_empty() {
            return self;
        }
        let pending = std::mem::take(&mut self.pending);
        let repo = Repository::open(&pending.repo);
        let mut files = Vec::with_capacity(self.files.len());
        for mut f in std::mem::take(&mut self.files) {
            if pending.paths.contains(&f.path) {
                let oid = f.blob_id.as_deref().and_then(|b| Oid::from_str(b).ok());
                let read = match (&repo, oid) {
                    (Ok(repo), Some(oid)) => repo
                        .find_blob(oid)
                        .map(|b| b.content().to_vec())
                        .map_err(|e| format!("cannot read blob {oid}: {}", e.message())),
                    (Err(e), _) => Err(format!("cannot read blob: {}", e.message())),
                    (_, None) => Err("cannot read blob: no blob id".to_string()),
                };
                match read {
                    Ok(bytes) => f.bytes = bytes,
                    Err(message) => {
                        self.warnings.push(SourceWarning { path: f.path.clone(), message });
                        continue;
                    }
                }
            }
            files.push(f);
        }
        self.warnings.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.message.cmp(&b.message)));
        self.files = files;
        self
    }

    /// The file at `path` (relative, `/` separators), if loaded.
    pub fn file(&self, path: &str) -> Option<&SourceFile> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }

    /// The architectures a tree is analyzed for: each arch with KVM code,
    /// or common code alone (`None`) when the tree has none.
    pub fn analyzed_arches(&self) -> Vec<Option<String>> {
        let mut arches: Vec<Option<String>> = self.arches.iter().cloned().map(Some).collect();
        if arches.is_empty() {
            arches.push(None);
        }
        arches
    }

    /// The files of one architecture plus all common files: the unit of
    /// per-arch analysis.
    pub fn files_for_arch<'a>(&'a self, arch: &'a str) -> impl Iterator<Item = &'a SourceFile> + 'a {
        self.files.iter().filter(move |f| f.arch.as_deref().map(|a| a == arch) != Some(false))
    }
}

/// The architecture of a tree-relative path: `arch/<a>/...` -> `Some(a)`.
pub fn arch_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("arch/")?;
    let (arch, tail) = rest.split_once('/')?;
    (!arch.is_empty() && !tail.is_empty()).then(|| arch.to_string())
}

/// Whether the parser reads this file (C sources and headers).
pub(crate) fn is_c_source(path: &str) -> bool {
    path.ends_with(".c") || path.ends_with(".h")
}

fn blob_id(bytes: &[u8]) -> Option<String> {
    Oid::hash_object(ObjectType::Blob, bytes).ok().map(|o| o.to_string())
}

/// What to look for, independent of the storage: filled in by a [`Lister`],
/// then read by the storage-specific reader.
#[derive(Default)]
struct Plan {
    /// Paths to read (sorted, unique).
    paths: BTreeSet<String>,
    warnings: Vec<SourceWarning>,
}

/// The storage-independent part of tree enumeration.
trait Lister {
    /// The kind of entry at a tree-relative path.
    fn kind(&self, path: &str) -> EntryKind;
    /// Names and kinds of the entries of a directory, sorted by name; empty
    /// if there is no such directory, `Err(message)` if it cannot be read.
    fn children(&self, dir: &str) -> Result<Vec<(String, EntryKind)>, String>;
    /// The tree-relative path a symbolic link resolves to, if it stays
    /// inside the tree; `Err(message)` otherwise.
    fn resolve_link(&self, path: &str) -> Result<String, String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EntryKind {
    Missing,
    File,
    Dir,
    Symlink,
    /// Sockets, devices, git submodules: nothing to read.
    Other,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Applies the file-set rules to a tree, checking the kernel-tree markers
/// and the requested arches first.
fn plan(lister: &dyn Lister, label: &str, opts: &SourceOptions) -> Result<(Plan, Vec<String>), SourceError> {
    let missing: Vec<String> = REQUIRED_FILES
        .iter()
        .filter(|p| !matches!(lister.kind(p), EntryKind::File | EntryKind::Symlink))
        .map(|p| p.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(SourceError::NotAKernelTree { label: label.to_string(), missing });
    }

    let all_arch_dirs: Vec<String> = lister
        .children("arch")
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, k)| *k == EntryKind::Dir)
        .map(|(n, _)| n)
        .collect();
    let kvm_arches: Vec<String> =
        all_arch_dirs.iter().filter(|a| lister.kind(&format!("arch/{a}/kvm")) == EntryKind::Dir).cloned().collect();
    let selected: Option<BTreeSet<String>> = match &opts.arches {
        None => None,
        Some(wanted) => {
            for a in wanted {
                if !kvm_arches.contains(a) {
                    return Err(SourceError::UnknownArch {
                        arch: a.clone(),
                        label: label.to_string(),
                        available: kvm_arches.clone(),
                    });
                }
            }
            Some(wanted.iter().cloned().collect())
        }
    };
    // `!= Some(false)` rather than `is_none_or`, which needs Rust 1.82 (the
    // workspace declares 1.80).
    let keep_arch = |a: &str| selected.as_ref().map(|s| s.contains(a)) != Some(false);
    let keep_path = |p: &str| arch_of(p).map(|a| keep_arch(&a)) != Some(false);

    let mut plan = Plan::default();
    // An arch directory that is a symbolic link is not analyzed; one that
    // leaves the tree is named, as any other link leaving it.
    for (name, kind) in lister.children("arch").unwrap_or_default() {
        let path = format!("arch/{name}");
        if kind == EntryKind::Symlink && keep_arch(&name) {
            if let Err(message) = lister.resolve_link(&path) {
                plan.warnings.push(SourceWarning { path, message });
            }
        }
    }
    walk_sources(lister, "virt/kvm", &mut plan);
    for arch in all_arch_dirs.iter().filter(|a| keep_arch(a)) {
        if kvm_arches.contains(arch) {
            walk_sources(lister, &format!("arch/{arch}/kvm"), &mut plan);
        }
        for header in ARCH_HEADERS {
            add_file_if_present(lister, &format!("arch/{arch}/{header}"), &mut plan);
        }
    }
    for path in COMMON_FILES.iter().chain([&LOCKING_DOC]) {
        add_file_if_present(lister, path, &mut plan);
    }
    // The KVM Kconfig files, read as data (crate::kconfig): which common
    // code each arch builds.
    add_file_if_present(lister, crate::kconfig::COMMON_KCONFIG, &mut plan);
    for arch in all_arch_dirs.iter().filter(|a| keep_arch(a) && kvm_arches.contains(a)) {
        add_file_if_present(lister, &crate::kconfig::arch_kconfig(arch), &mut plan);
        add_file_if_present(lister, &crate::kbuild::arch_makefile(arch), &mut plan);
    }
    for optional in [CPUHOTPLUG_H, LOCKING_DOC] {
        if lister.kind(optional) == EntryKind::Missing {
            plan.warnings.push(SourceWarning {
                path: optional.to_string(),
                message: "not found; analysis that reads it falls back to defaults".to_string(),
            });
        }
    }
    for extra in &opts.extra_paths {
        let extra = extra.trim_matches('/');
        if !keep_path(extra) {
            continue;
        }
        match lister.kind(extra) {
            EntryKind::Missing => plan.warnings.push(SourceWarning {
                path: extra.to_string(),
                message: "extra path not found in the tree".to_string(),
            }),
            EntryKind::Dir => walk_sources(lister, extra, &mut plan),
            _ => add_file(lister, extra.to_string(), &mut plan),
        }
    }
    let arches = kvm_arches.into_iter().filter(|a| keep_arch(a)).collect();
    Ok((plan, arches))
}

/// Adds the `.c`/`.h` files under `dir`, recursively. Symbolic links to
/// directories are not descended into (they could loop or leave the tree).
fn walk_sources(lister: &dyn Lister, dir: &str, plan: &mut Plan) {
    let children = match lister.children(dir) {
        Ok(c) => c,
        Err(message) => {
            plan.warnings.push(SourceWarning { path: dir.to_string(), message });
            return;
        }
    };
    for (name, kind) in children {
        let path = join(dir, &name);
        match kind {
            EntryKind::Dir => walk_sources(lister, &path, plan),
            EntryKind::File | EntryKind::Symlink if is_c_source(&path) => add_file(lister, path, plan),
            _ => {}
        }
    }
}

fn add_file_if_present(lister: &dyn Lister, path: &str, plan: &mut Plan) {
    if lister.kind(path) != EntryKind::Missing {
        add_file(lister, path.to_string(), plan);
    }
}

/// Adds one file; the reader reports it if it turns out unreadable. A
/// symbolic link is checked here so that one leaving the tree is never read.
fn add_file(lister: &dyn Lister, path: String, plan: &mut Plan) {
    match lister.kind(&path) {
        EntryKind::Symlink => match lister.resolve_link(&path) {
            Ok(_) => {
                plan.paths.insert(path);
            }
            Err(message) => plan.warnings.push(SourceWarning { path, message }),
        },
        EntryKind::Dir => {
            plan.warnings.push(SourceWarning { path, message: "is a directory, expected a file; skipped".to_string() })
        }
        EntryKind::Other => {
            plan.warnings.push(SourceWarning { path, message: "is not a regular file; skipped".to_string() })
        }
        EntryKind::File | EntryKind::Missing => {
            plan.paths.insert(path);
        }
    }
}

/// Resolves a symbolic link target lexically against the link's directory.
/// `None` if it is absolute or climbs above the tree root.
fn resolve_relative(link_path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
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

fn finish(
    root_label: String,
    commit: Option<String>,
    arches: Vec<String>,
    mut files: Vec<SourceFile>,
    mut warnings: Vec<SourceWarning>,
) -> SourceTree {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    warnings.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.message.cmp(&b.message)));
    warnings.dedup();
    SourceTree { root_label, commit, files, arches, warnings, pending: PendingBlobs::default() }
}

// ---------------------------------------------------------------------------
// Directory sources

struct DirLister {
    root: PathBuf,
    /// The canonical root, to decide whether a symbolic link stays inside.
    canonical_root: PathBuf,
}

impl DirLister {
    fn abs(&self, rel: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(rel.split('/').filter(|c| !c.is_empty()));
        p
    }

    /// The first component of `rel` (a directory or the file itself) that is
    /// a symbolic link leaving the tree, as a warning message naming it;
    /// `None` when every component resolves inside. Links inside the tree
    /// are followed: reading is confined to the tree, not to its real
    /// directories.
    fn link_leaving_tree(&self, rel: &str) -> Option<String> {
        let mut p = self.root.clone();
        let mut prefix = Vec::new();
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            p.push(comp);
            prefix.push(comp);
            let is_link = fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                continue;
            }
            match fs::canonicalize(&p) {
                Ok(target) if target.starts_with(&self.canonical_root) => {}
                Ok(target) => {
                    return Some(format!(
                        "`{}` is a symbolic link pointing outside the tree (to `{}`); not followed",
                        prefix.join("/"),
                        target.display()
                    ))
                }
                // Dangling or looping: reading reports it.
                Err(_) => return None,
            }
        }
        None
    }

    fn kind_of(meta: &fs::Metadata) -> EntryKind {
        let ft = meta.file_type();
        if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        }
    }
}

impl Lister for DirLister {
    fn kind(&self, path: &str) -> EntryKind {
        match fs::symlink_metadata(self.abs(path)) {
            Ok(m) => Self::kind_of(&m),
            Err(_) => EntryKind::Missing,
        }
    }

    fn children(&self, dir: &str) -> Result<Vec<(String, EntryKind)>, String> {
        if let Some(message) = self.link_leaving_tree(dir) {
            return Err(message);
        }
        let rd = match fs::read_dir(self.abs(dir)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read directory: {e}")),
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            // Kernel file names are ASCII; a non-UTF-8 name cannot be
            // addressed by a `/`-separated String path, so it is skipped.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let kind = entry
                .file_type()
                .map(|ft| {
                    if ft.is_symlink() {
                        EntryKind::Symlink
                    } else if ft.is_dir() {
                        EntryKind::Dir
                    } else if ft.is_file() {
                        EntryKind::File
                    } else {
                        EntryKind::Other
                    }
                })
                .unwrap_or(EntryKind::Other);
            out.push((name, kind));
        }
        out.sort();
        Ok(out)
    }

    fn resolve_link(&self, path: &str) -> Result<String, String> {
        let abs = self.abs(path);
        let target =
            fs::canonicalize(&abs).map_err(|e| format!("cannot read: dangling or looping symbolic link ({e})"))?;
        let rel = target
            .strip_prefix(&self.canonical_root)
            .map_err(|_| format!("symbolic link points outside the tree (to `{}`); not followed", target.display()))?;
        let rel: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        Ok(rel.join("/"))
    }
}

fn load_dir(dir: &Path, opts: &SourceOptions) -> Result<SourceTree, SourceError> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SourceError::NotFound { path: dir.to_path_buf() }),
        Err(source) => return Err(SourceError::Io { path: dir.to_path_buf(), source }),
    };
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory { path: dir.to_path_buf() });
    }
    let mut rd = fs::read_dir(dir).map_err(|source| SourceError::Io { path: dir.to_path_buf(), source })?;
    if rd.next().is_none() {
        return Err(SourceError::EmptyDirectory { path: dir.to_path_buf() });
    }
    let canonical_root = fs::canonicalize(dir).map_err(|source| SourceError::Io { path: dir.to_path_buf(), source })?;
    let lister = DirLister { root: dir.to_path_buf(), canonical_root };
    let label = dir.display().to_string();
    let (plan, arches) = plan(&lister, &label, opts)?;

    // Reading is the expensive part (thousands of files), so it runs in
    // parallel; the output is sorted afterwards, keeping it deterministic.
    let results: Vec<Result<SourceFile, SourceWarning>> =
        plan.paths.par_iter().map(|path| read_dir_file(&lister, path)).collect();
    let mut files = Vec::with_capacity(results.len());
    let mut warnings = plan.warnings;
    for r in results {
        match r {
            Ok(f) => files.push(f),
            Err(w) => warnings.push(w),
        }
    }
    Ok(finish(label, None, arches, files, warnings))
}

fn read_dir_file(lister: &DirLister, path: &str) -> Result<SourceFile, SourceWarning> {
    // A symbolic link as the file itself was checked when planned; a
    // directory above it may be one too (the walk starts at `virt/kvm`,
    // `include/linux`, ... whatever they are). Reading through the
    // original path follows the links inside the tree.
    if let Some(message) = lister.link_leaving_tree(path) {
        return Err(SourceWarning { path: path.to_string(), message });
    }
    let abs = lister.abs(path);
    let bytes = read_source_file(&abs).map_err(|message| SourceWarning { path: path.to_string(), message })?;
    Ok(SourceFile { path: path.to_string(), arch: arch_of(path), blob_id: blob_id(&bytes), bytes })
}

/// The largest file of a directory tree read: files over
/// [`crate::parse::MAX_PARSE_BYTES`] are read and hashed but not parsed
/// (a warning says so); over this they are not even read, so a huge or
/// endless file (a device, a FIFO, `/dev/zero` linked in) costs nothing.
pub const MAX_SOURCE_FILE_BYTES: u64 = 64 << 20;

/// The bytes of one file of a directory tree, or the warning's message:
/// a regular file of at most [`MAX_SOURCE_FILE_BYTES`], checked on the
/// opened file (no race with a file replaced meanwhile), never blocking.
pub fn read_source_file(abs: &Path) -> Result<Vec<u8>, String> {
    use crate::read::{human_size, read_bounded, Links, ReadError};
    read_bounded(abs, MAX_SOURCE_FILE_BYTES, Links::Follow).map_err(|e| match e {
        ReadError::TooLarge { size, limit } => format!(
            "not read: {} ({size} bytes) is over the {} limit for a source file; skipped",
            human_size(size),
            human_size(limit)
        ),
        e => format!("cannot read: {e}"),
    })
}

// ---------------------------------------------------------------------------
// Git sources

struct GitLister<'r> {
    repo: &'r Repository,
    tree: Tree<'r>,
    /// Objects met on the walk that the repository lacks: a tree the walk
    /// cannot enter would otherwise look like an empty or absent directory
    /// (a whole arch gone, without a word).
    missing: std::cell::RefCell<Vec<MissingObject>>,
}

impl GitLister<'_> {
    fn note_missing(&self, path: &str, kind: &'static str, id: Oid) {
        let mut missing = self.missing.borrow_mut();
        if !missing.iter().any(|m| m.path == path && m.kind == kind) {
            missing.push(MissingObject { path: path.to_string(), kind, id: id.to_string() });
        }
    }

    /// The entry at `path`, entering one tree per component, so that a
    /// subtree the repository lacks is noted rather than taken for a path
    /// that does not exist.
    fn entry(&self, path: &str) -> Option<git2::TreeEntry<'static>> {
        let mut parts = path.split('/').filter(|c| !c.is_empty()).peekable();
        let mut tree = self.tree.clone();
        let mut walked = String::new();
        while let Some(name) = parts.next() {
            let entry = tree.get_name(name)?.to_owned();
            walked = join(&walked, name);
            if parts.peek().is_none() {
                return Some(entry);
            }
            if entry.kind() != Some(ObjectType::Tree) {
                return None;
            }
            tree = match self.repo.find_tree(entry.id()) {
                Ok(t) => t,
                Err(_) => {
                    self.note_missing(&walked, "tree", entry.id());
                    return None;
                }
            };
        }
        None
    }

    fn kind_of_mode(mode: i32, kind: Option<ObjectType>) -> EntryKind {
        match (mode, kind) {
            (0o120000, _) => EntryKind::Symlink,
            (_, Some(ObjectType::Tree)) => EntryKind::Dir,
            (_, Some(ObjectType::Blob)) => EntryKind::File,
            // Submodules (commits) and anything unexpected.
            _ => EntryKind::Other,
        }
    }

    /// Follows symbolic links (each hop resolved lexically) to a blob.
    fn resolve(&self, path: &str) -> Result<(String, Oid), String> {
        let mut current = path.to_string();
        for _ in 0..=MAX_SYMLINK_HOPS {
            let entry =
                self.entry(&current).ok_or_else(|| format!("cannot read: dangling symbolic link (to `{current}`)"))?;
            if entry.filemode() != 0o120000 {
                return match entry.kind() {
                    Some(ObjectType::Blob) => Ok((current, entry.id())),
                    _ => Err(format!("cannot read: `{current}` is not a file")),
                };
            }
            let blob = self.repo.find_blob(entry.id()).map_err(|e| {
                self.note_missing(&current, "blob", entry.id());
                format!("cannot read symbolic link: {}", e.message())
            })?;
            let target = String::from_utf8_lossy(blob.content()).into_owned();
            current = resolve_relative(&current, &target)
                .ok_or_else(|| format!("symbolic link points outside the tree (to `{target}`); not followed"))?;
        }
        Err("cannot read: too many levels of symbolic links".to_string())
    }
}

impl Lister for GitLister<'_> {
    fn kind(&self, path: &str) -> EntryKind {
        match self.entry(path) {
            Some(e) => Self::kind_of_mode(e.filemode(), e.kind()),
            None => EntryKind::Missing,
        }
    }

    fn children(&self, dir: &str) -> Result<Vec<(String, EntryKind)>, String> {
        let Some(entry) = self.entry(dir) else {
            return Ok(Vec::new());
        };
        if entry.kind() != Some(ObjectType::Tree) {
            return Ok(Vec::new());
        }
        let tree = self.repo.find_tree(entry.id()).map_err(|e| {
            self.note_missing(dir, "tree", entry.id());
            format!("cannot read tree {}: {}", entry.id(), e.message())
        })?;
        let mut out: Vec<(String, EntryKind)> = tree
            .iter()
            // Non-UTF-8 names are skipped, as for directories.
            .filter_map(|e| {
                let name = e.name()?.to_string();
                Some((name, Self::kind_of_mode(e.filemode(), e.kind())))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn resolve_link(&self, path: &str) -> Result<String, String> {
        self.resolve(path).map(|(p, _)| p)
    }
}

/// The promisor remote of a partial clone (`git clone --filter`), whose
/// objects may be missing by design: `extensions.partialClone`, or the
/// first remote with `promisor = true`.
fn promisor_remote(repo: &Repository) -> Option<String> {
    let config = repo.config().ok()?.snapshot().ok()?;
    if let Ok(remote) = config.get_string("extensions.partialclone") {
        return Some(remote);
    }
    let mut entries = config.entries(Some(r"remote\..*\.promisor")).ok()?;
    while let Some(Ok(entry)) = entries.next() {
        if entry.value().is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let name = entry.name()?;
            return Some(name.strip_prefix("remote.")?.strip_suffix(".promisor")?.to_string());
        }
    }
    None
}

fn git_err(repo: &Path, e: git2::Error) -> SourceError {
    SourceError::Git { repo: repo.to_path_buf(), message: e.message().to_string() }
}

/// `defer`: leave the blobs of C files unread when the object database has
/// them (see [`SourceTree::load_deferred`]).
fn load_git(repo_path: &Path, rev: &str, opts: &SourceOptions, defer: bool) -> Result<SourceTree, SourceError> {
    // libgit2 re-hashes every object it reads by default; git itself does
    // not (only `git fsck` verifies). Reading a tree's blobs then cost more
    // than parsing the one file a commit changed, so kvmtk reads as git does.
    static NO_REHASH: std::sync::Once = std::sync::Once::new();
    NO_REHASH.call_once(|| git2::opts::strict_hash_verification(false));
    if !repo_path.exists() {
        return Err(SourceError::NotFound { path: repo_path.to_path_buf() });
    }
    let repo = Repository::open(repo_path).map_err(|e| match e.code() {
        ErrorCode::NotFound => SourceError::NotAGitRepository { repo: repo_path.to_path_buf() },
        _ => git_err(repo_path, e),
    })?;
    let unknown = || SourceError::UnknownRevision { repo: repo_path.to_path_buf(), rev: rev.to_string() };
    let object = repo.revparse_single(rev).map_err(|e| match e.code() {
        ErrorCode::NotFound | ErrorCode::InvalidSpec | ErrorCode::Ambiguous | ErrorCode::UnbornBranch => unknown(),
        _ => git_err(repo_path, e),
    })?;
    let commit = object.peel_to_commit().ok();
    let label = format!("{}@{rev}", repo_path.display());
    let missing_error = |missing: Vec<MissingObject>| SourceError::MissingObjects {
        repo: repo_path.to_path_buf(),
        label: label.clone(),
        missing,
        partial_remote: promisor_remote(&repo),
        bare: repo.is_bare(),
    };
    let tree = match (object.peel_to_tree(), &commit) {
        (Ok(tree), _) => tree,
        // A commit whose root tree the repository lacks.
        (Err(_), Some(c)) => {
            return Err(missing_error(vec![MissingObject {
                path: String::new(),
                kind: "tree",
                id: c.tree_id().to_string(),
            }]))
        }
        (Err(_), None) => {
            return Err(SourceError::NotATree {
                repo: repo_path.to_path_buf(),
                rev: rev.to_string(),
                kind: object.kind().map_or("unknown object", |k| k.str()).to_string(),
            })
        }
    };
    let commit = commit.map(|c| c.id().to_string());
    let lister = GitLister { repo: &repo, tree, missing: Default::default() };
    let planned = plan(&lister, &label, opts);
    // A missing tree can make the tree look like no kernel tree, or hide an
    // arch asked for: the missing objects are the error to report then.
    let missing_trees = lister.missing.take();
    if !missing_trees.is_empty() {
        return Err(missing_error(missing_trees));
    }
    let (plan, arches) = planned?;

    // libgit2 objects are not shared across threads; blob reads from the
    // object database are fast enough sequentially (no file-system walk).
    let mut files = Vec::with_capacity(plan.paths.len());
    let mut warnings = plan.warnings;
    let mut pending = BTreeSet::new();
    let odb = if defer { repo.odb().ok() } else { None };
    for path in &plan.paths {
        if let (Some(odb), true) = (&odb, is_c_source(path)) {
            if let Ok((_, oid)) = lister.resolve(path) {
                // A blob the database lacks is read now, to be reported
                // as a plain load reports it.
                if odb.exists(oid) {
                    files.push(SourceFile {
                        path: path.clone(),
                        arch: arch_of(path),
                        bytes: Vec::new(),
                        blob_id: Some(oid.to_string()),
                    });
                    pending.insert(path.clone());
                    continue;
                }
            }
        }
        let read = lister.resolve(path).and_then(|(target, oid)| {
            repo.find_blob(oid).map(|b| (oid, b.content().to_vec())).map_err(|e| {
                lister.note_missing(&target, "blob", oid);
                format!("cannot read blob {oid}: {}", e.message())
            })
        });
        match read {
            Ok((oid, bytes)) => files.push(SourceFile {
                path: path.clone(),
                arch: arch_of(path),
                bytes,
                blob_id: Some(oid.to_string()),
            }),
            Err(message) => warnings.push(SourceWarning { path: path.clone(), message }),
        }
    }
    let missing = lister.missing.take();
    if !missing.is_empty() {
        return Err(missing_error(missing));
    }
    let mut tree = finish(label.clone(), commit, arches, files, warnings);
    if !pending.is_empty() {
        tree.pending = PendingBlobs { repo: repo_path.to_path_buf(), paths: pending };
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_of_paths() {
        assert_eq!(arch_of("arch/x86/kvm/x86.c").as_deref(), Some("x86"));
        assert_eq!(arch_of("arch/x86/include/asm/kvm_host.h").as_deref(), Some("x86"));
        assert_eq!(arch_of("virt/kvm/kvm_main.c"), None);
        assert_eq!(arch_of("arch/x86"), None);
    }

    #[test]
    fn relative_links() {
        assert_eq!(resolve_relative("a/b/c.h", "../d.h").as_deref(), Some("a/d.h"));
        assert_eq!(resolve_relative("a/c.h", "../../d.h"), None);
        assert_eq!(resolve_relative("a/c.h", "/etc/passwd"), None);
        assert_eq!(resolve_relative("a/c.h", "./x/y.h").as_deref(), Some("a/x/y.h"));
    }
}
