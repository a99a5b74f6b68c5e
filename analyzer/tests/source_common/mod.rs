//! Shared helpers for the source and kernel_docs tests: locating the real
//! kernel trees extracted by `scripts/fetch-kernels.sh`.

#![allow(dead_code)]

use std::path::PathBuf;

#[path = "../../../test-support/kernel_cache.rs"]
mod kernel_cache_support;

/// The kernel cache: `$KVMTK_KERNEL_CACHE`, or `<workspace>/.cache/kernels`.
pub fn kernel_cache() -> PathBuf {
    kernel_cache_support::cache_dir()
}

/// The extracted tree `linux-<version>` of the cache, or `None` (after a
/// notice) when it is absent; on CI an absent tree is a test failure.
pub fn real_kernel(version: &str) -> Option<PathBuf> {
    kernel_cache_support::kernel_tree(&format!("linux-{version}"))
}
