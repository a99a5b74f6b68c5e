//! Measure the parser's work on real C against its budget.
//!
//!     cargo run --release -p kvmtk-analyzer --example parse_work -- DIR...
//!
//! For every `.c`/`.h` file under the directories: the tree-sitter
//! progress checks and the bytes read that its parse takes
//! (`analyzer::parse::parse_work`), and the share of
//! `analyzer::parse::ParseWork::budget` that is (the larger of the two).
//! Prints the files closest to the budget and those with the most checks
//! and bytes read per byte, the figures the budget's constants were chosen
//! from.

use std::path::Path;

use analyzer::parse::ParseWork;
use rayon::prelude::*;

#[path = "common/walk.rs"]
mod common_walk;
use common_walk::walk;

fn main() {
    let mut paths = Vec::new();
    for d in std::env::args().skip(1) {
        walk(Path::new(&d), &mut paths);
    }
    if paths.is_empty() {
        eprintln!("parse_work: no .c/.h files under the given directories");
        std::process::exit(2);
    }
    let rows: Vec<Row> = paths
        .par_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(p).ok()?;
            if bytes.len() > analyzer::parse::MAX_PARSE_BYTES {
                return None;
            }
            let budget = ParseWork::budget(bytes.len());
            let limit = ParseWork { checks: budget.checks * 100, bytes_read: budget.bytes_read * 100 };
            let work = analyzer::parse::parse_work(&bytes, limit);
            let share = work.map_or(f64::INFINITY, |w| {
                (w.checks as f64 / budget.checks as f64).max(w.bytes_read as f64 / budget.bytes_read as f64)
            });
            Some(Row { share, work, len: bytes.len(), path: p.display().to_string() })
        })
        .collect();
    let total_bytes: usize = rows.iter().map(|r| r.len).sum();
    println!("{} files, {:.1} MiB", rows.len(), total_bytes as f64 / 1048576.0);
    show(&rows, "closest to the budget", |r| r.share, 0);
    show(&rows, "most checks per byte, files of 4 KiB or more", |r| r.per_byte(|w| w.checks), 4096);
    show(&rows, "most bytes read per byte, files of 4 KiB or more", |r| r.per_byte(|w| w.bytes_read), 4096);
    let over = rows.iter().filter(|r| r.share > 1.0).count();
    println!("over the budget: {over}");
}

/// One file's measure.
struct Row {
    /// The larger of the two measures' shares of the budget; infinite for
    /// a file whose masked parse does not finish within 100x the budget.
    share: f64,
    work: Option<ParseWork>,
    len: usize,
    path: String,
}

impl Row {
    fn per_byte(&self, f: fn(&ParseWork) -> u64) -> f64 {
        self.work.map_or(f64::INFINITY, |w| f(&w) as f64 / self.len.max(1) as f64)
    }
}

/// The eight files of at least `min_len` bytes with the highest `key`.
fn show(rows: &[Row], title: &str, key: impl Fn(&Row) -> f64, min_len: usize) {
    let mut v: Vec<_> = rows.iter().filter(|r| r.len >= min_len).collect();
    v.sort_by(|a, b| key(b).total_cmp(&key(a)));
    println!("{title} (share of budget, checks, bytes read, size, checks/KiB, read/size, path):");
    for r in v.iter().take(8) {
        match r.work {
            Some(w) => println!(
                "  {:.4}  {:>8}  {:>10}  {:>8}  {:>6.1}  {:>6.2}  {}",
                r.share,
                w.checks,
                w.bytes_read,
                r.len,
                w.checks as f64 * 1024.0 / r.len.max(1) as f64,
                w.bytes_read as f64 / r.len.max(1) as f64,
                r.path
            ),
            None => println!("  unbounded  {:>8}  {}", r.len, r.path),
        }
    }
}
