//! Shared helpers for the source and kernel_docs tests: locating the real
//! kernel trees extracted by `scripts/fetch-kernels.sh`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The kernel cache: `$KVMTK_KERNEL_CACHE`, or `<workspace>/.cache/kernels`.
pub fn kernel_cache() -> PathBuf {
    match std::env::var_os("KVMTK_KERNEL_CACHE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/kernels"),
    }
}

/// The extracted tree `linux-<version>` of the cache, or `None` (after a
/// notice) when it is absent. On CI (`$CI` set) an absent tree is a test
/// failure: the real kernel is the truth these tests check against.
pub fn real_kernel(version: &str) -> Option<PathBuf> {
    let dir = kernel_cache().join(format!("linux-{version}"));
    if dir.join("virt/kvm/kvm_main.c").is_file() {
        return Some(dir);
    }
    let msg =
        format!("kernel tree {} not found; run scripts/fetch-kernels.sh or set KVMTK_KERNEL_CACHE", dir.display());
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("notice: skipping test: {msg}");
    None
}
