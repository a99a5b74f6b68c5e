//! Function-definition coverage against universal-ctags on the real KVM
//! trees (an acceptance criterion of the parser).

mod parse_common;

use std::collections::BTreeSet;
use std::process::Command;

use analyzer::parse::parse_files;
use parse_common::*;

/// `(file, name)` of every function definition ctags sees.
fn ctags_functions(root: &std::path::Path, dirs: &[String]) -> Option<BTreeSet<(String, String)>> {
    let bin = ["ctags", "universal-ctags"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))?;
    let out = Command::new(bin)
        .current_dir(root)
        .args(["--languages=C", "--langmap=C:.c.h", "--kinds-C=f", "-x", "-R"])
        .args(dirs)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut set = BTreeSet::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(kind), Some(_line), Some(file)) = (it.next(), it.next(), it.next(), it.next()) else {
            continue;
        };
        if kind == "function" {
            set.insert((file.to_string(), name.to_string()));
        }
    }
    Some(set)
}

fn coverage(version: &str) {
    let Some(root) = kernel_tree(version) else {
        return;
    };
    let mut dirs = vec!["virt/kvm".to_string()];
    let mut arches: Vec<_> =
        std::fs::read_dir(root.join("arch")).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    arches.sort();
    for a in arches {
        if a.join("kvm").is_dir() {
            let rel = a.strip_prefix(&root).unwrap().join("kvm");
            dirs.push(rel.to_string_lossy().into_owned());
        }
    }
    let Some(ctags) = ctags_functions(&root, &dirs) else {
        if std::env::var_os("CI").is_some() {
            panic!("universal-ctags is not installed");
        }
        eprintln!("notice: universal-ctags not found, skipping");
        return;
    };
    let files: Vec<_> =
        kvm_files(&root).into_iter().filter(|(p, _, _)| dirs.iter().any(|d| p.starts_with(&format!("{d}/")))).collect();
    let facts = parse_files(&files);
    let mut ours = BTreeSet::new();
    let mut macro_lines = BTreeSet::new();
    for f in &facts {
        for func in &f.functions {
            ours.insert((f.path.clone(), func.name.clone()));
        }
        for m in &f.top_level_macros {
            macro_lines.insert((f.path.clone(), m.name.clone()));
        }
    }
    // ctags reports a macro invocation that generates functions
    // (`BUILD_KVM_GPR_ACCESSORS(rax, RAX)` without a `;`) as a function
    // named after the macro; we record it as a top-level macro use. Those
    // are not definitions either tool can name, so they are counted apart.
    let (macro_gen, ctags_defs): (BTreeSet<_>, BTreeSet<_>) =
        ctags.iter().cloned().partition(|k| macro_lines.contains(k) && !ours.contains(k));
    let missed: Vec<_> = ctags_defs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&ctags_defs).collect();
    let recall = 1.0 - missed.len() as f64 / ctags_defs.len().max(1) as f64;
    let precision = 1.0 - extra.len() as f64 / ours.len().max(1) as f64;
    println!(
        "linux-{version}: ctags {} functions (+{} macro-generated), ours {}; \
         recall {:.4}, precision {:.4}",
        ctags_defs.len(),
        macro_gen.len(),
        ours.len(),
        recall,
        precision
    );
    for (f, n) in &missed {
        println!("  missed: {f}: {n}");
    }
    for (f, n) in &extra {
        println!("  extra (not in ctags): {f}: {n}");
    }
    for (f, n) in &macro_gen {
        println!("  macro-generated (ctags only): {f}: {n}");
    }
    assert!(recall >= 0.995, "recall {recall:.4} < 0.995");
    assert!(precision >= 0.99, "precision {precision:.4} < 0.99");
}

#[test]
fn ctags_coverage_6_1() {
    coverage("6.1");
}

#[test]
fn ctags_coverage_6_12() {
    coverage("6.12");
}
