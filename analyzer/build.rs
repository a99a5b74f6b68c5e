//! Fingerprints for the persistent caches: of the analyzer's own sources
//! and the workspace's locked dependencies (a build whose analysis differs
//! in any byte never reads results cached by another, see
//! `cache::analysis_version`), and of the dependencies alone (part of the
//! facts cache's version, with the parser sources).

use std::path::Path;

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs" || x == "toml") {
            out.push(p);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.push("Cargo.toml".into());
    files.sort();
    // The dependencies (the tree-sitter grammar above all) decide facts
    // and results as much as our sources do.
    let deps = [std::path::PathBuf::from("../Cargo.lock")];
    println!("cargo:rustc-env=KVMTK_ANALYZER_SOURCES_HASH={:016x}", fnv(files.iter().chain(&deps)));
    println!("cargo:rustc-env=KVMTK_DEPENDENCIES_HASH={:016x}", fnv(deps.iter()));
}

/// FNV-1a, 64 bits, over (path, contents) of files.
fn fnv<'a>(files: impl Iterator<Item = &'a std::path::PathBuf>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        let bytes = std::fs::read(f).unwrap_or_default();
        for &b in f.to_string_lossy().as_bytes().iter().chain([0u8].iter()).chain(bytes.iter()).chain([0u8].iter()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
