//! Shared helpers of the parser tests: locating the real kernel trees.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

#[path = "../../../test-support/kernel_cache.rs"]
mod kernel_cache_support;

/// The kernel cache: `$KVMTK_KERNEL_CACHE`, default `<workspace>/.cache/kernels`.
pub fn kernel_cache() -> PathBuf {
    kernel_cache_support::cache_dir()
}

/// The extracted KVM files of `linux-<version>`, or None when missing:
/// under CI (env `CI` set) a missing tree is a failure, locally a notice.
pub fn kernel_tree(version: &str) -> Option<PathBuf> {
    kernel_cache_support::kernel_tree(&format!("linux-{version}"))
}

/// The arch of a tree-relative path: `Some("x86")` under `arch/x86/`.
pub fn arch_of(rel: &str) -> Option<String> {
    rel.strip_prefix("arch/").and_then(|r| r.split('/').next()).map(str::to_string)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("c") | Some("h")) {
            out.push(p);
        }
    }
}

/// All `.c`/`.h` files of the KVM subset of a tree, as (relative path,
/// arch, bytes), sorted by path.
pub fn kvm_files(root: &Path) -> Vec<(String, Option<String>, Vec<u8>)> {
    let mut paths = Vec::new();
    walk(&root.join("virt/kvm"), &mut paths);
    if let Ok(rd) = std::fs::read_dir(root.join("arch")) {
        let mut arches: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        arches.sort();
        for a in arches {
            walk(&a.join("kvm"), &mut paths);
            let h = a.join("include/asm/kvm_host.h");
            if h.is_file() {
                paths.push(h);
            }
        }
    }
    for h in ["include/linux/kvm_host.h", "include/linux/cpuhotplug.h"] {
        let p = root.join(h);
        if p.is_file() {
            paths.push(p);
        }
    }
    paths
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(root).ok()?.to_string_lossy().replace('\\', "/");
            let bytes = std::fs::read(&p).ok()?;
            Some((rel.clone(), arch_of(&rel), bytes))
        })
        .collect()
}

use analyzer::facts::{Block, Event, FileFacts, Function, Stmt};

/// Visit every statement of a block, depth first, in source order.
pub fn visit_stmts<'a>(b: &'a Block, f: &mut dyn FnMut(&'a Stmt)) {
    for s in &b.stmts {
        f(s);
        match s {
            Stmt::Block(b) => visit_stmts(b, f),
            Stmt::If { then_branch, else_branch, .. } => {
                visit_stmts(then_branch, f);
                if let Some(e) = else_branch {
                    visit_stmts(e, f);
                }
            }
            Stmt::Loop { body, .. } | Stmt::Switch { body, .. } | Stmt::ScopedGuard { body, .. } => {
                visit_stmts(body, f)
            }
            Stmt::Preproc { branches, .. } => {
                for br in branches {
                    visit_stmts(&br.body, f);
                }
            }
            _ => {}
        }
    }
}

/// Every event of a block (statement events, conditions, loop heads).
pub fn events(b: &Block) -> Vec<&Event> {
    let mut out = Vec::new();
    visit_stmts(b, &mut |s| match s {
        Stmt::Simple { events, .. } | Stmt::Return { events, .. } => out.extend(events.iter()),
        Stmt::If { cond, .. } | Stmt::Switch { cond, .. } => out.extend(cond.iter()),
        Stmt::Loop { head, .. } => out.extend(head.iter()),
        _ => {}
    });
    out
}

/// The calls of a function body, in order.
pub fn calls(b: &Block) -> Vec<&analyzer::facts::CallSite> {
    events(b)
        .into_iter()
        .filter_map(|e| match e {
            Event::Call(c) => Some(c),
            _ => None,
        })
        .collect()
}

pub fn function<'a>(facts: &'a [FileFacts], path: &str, name: &str) -> &'a Function {
    let file = facts.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("no file {path}"));
    file.functions.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no function {name} in {path}"))
}

pub fn file<'a>(facts: &'a [FileFacts], path: &str) -> &'a FileFacts {
    facts.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("no file {path}"))
}
