//! The parser's work budget (`analyzer::parse::ParseWork::budget`) against the
//! real Linux 6.1 and 6.12 KVM trees: no real file may come near it, or a
//! maintainer's file would go unanalyzed on a slightly different version.

mod parse_common;

use analyzer::parse::{parse_work, ParseWork};
use parse_common::*;
use rayon::prelude::*;

/// The margin every real file keeps below the budget.
const MARGIN: u64 = 4;

fn within_budget(version: &str) {
    let Some(root) = kernel_tree(version) else {
        return;
    };
    let files = kvm_files(&root);
    assert!(files.len() > 100, "linux-{version}: only {} KVM files", files.len());
    let rows: Vec<(String, usize, Option<ParseWork>, ParseWork)> = files
        .par_iter()
        .map(|(path, _, bytes)| {
            let budget = ParseWork::budget(bytes.len());
            (path.clone(), bytes.len(), parse_work(bytes, budget.divided(MARGIN)), budget)
        })
        .collect();
    let over: Vec<_> = rows.iter().filter(|r| r.2.is_none()).map(|r| format!("{} ({} bytes)", r.0, r.1)).collect();
    assert!(over.is_empty(), "linux-{version}: files over 1/{MARGIN} of the parse budget: {over:?}");
    // The measure is a real count: the lexer reads every byte at least
    // once, and a file of more than a few KiB takes progress checks (one
    // per about 100 operations).
    for (path, len, work, _) in &rows {
        let w = work.unwrap();
        assert!(w.bytes_read >= *len as u64, "{path}: {w:?} for {len} bytes");
        assert!(*len < 4096 || w.checks > 0, "{path}: {w:?} for {len} bytes");
    }
    let share = |r: &(String, usize, Option<ParseWork>, ParseWork)| {
        let w = r.2.unwrap();
        (w.checks as f64 / r.3.checks as f64).max(w.bytes_read as f64 / r.3.bytes_read as f64)
    };
    let top = rows.iter().max_by(|a, b| share(a).total_cmp(&share(b))).unwrap();
    println!(
        "linux-{version}: {} files; closest to the budget: {} ({} bytes, {:.3} of it)",
        rows.len(),
        top.0,
        top.1,
        share(top)
    );
}

#[test]
fn kvm_6_1_within_a_quarter_of_the_budget() {
    within_budget("6.1");
}

#[test]
fn kvm_6_12_within_a_quarter_of_the_budget() {
    within_budget("6.12");
}
