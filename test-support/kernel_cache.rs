//! Locating the real Debian kernel trees for tests, shared by the tests of
//! every crate of the workspace (each includes this file with `#[path]`).
//!
//! The trees live in `$KVMTK_KERNEL_CACHE` (default `<workspace>/.cache/kernels`,
//! filled by `scripts/fetch-kernels.sh`). A missing tree fails the test under
//! CI (`$CI` set): the real kernel is the truth these tests check against;
//! elsewhere the test prints a notice and returns early.

use std::path::{Path, PathBuf};

/// The workspace root: the nearest directory above the crate with a `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest).to_path_buf()
}

/// The kernel cache directory.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("KVMTK_KERNEL_CACHE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join(".cache").join("kernels"),
    }
}

/// The tree `name` of the cache (`linux-6.1`, `linux-6.12`, `full-6.1`),
/// or `None` after a notice when it is missing outside CI.
pub fn kernel_tree(name: &str) -> Option<PathBuf> {
    let dir = cache_dir().join(name);
    if dir.join("virt/kvm/kvm_main.c").is_file() {
        return Some(dir);
    }
    let msg =
        format!("kernel tree {} is missing (run scripts/fetch-kernels.sh or set KVMTK_KERNEL_CACHE)", dir.display());
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("notice: skipping: {msg}");
    None
}
