//! Compare the parser's facts with and without cutting files into chunks.
//!
//!     cargo run --release -p kvmtk-analyzer --example chunk_equivalence -- DIR
//!
//! For every `.c`/`.h` file under DIR (up to 2 MiB, parsed within the
//! budget both ways): whether `analyzer::parse::parse_file`, which parses a
//! file one top-level chunk at a time, gives the facts of one parse of the
//! whole file (`parse_file_unchunked`). Prints the count and, for each file
//! that differs, the ERROR/MISSING nodes and the functions found each way.
//! `tests/parse_chunks.rs` requires equality on the KVM trees; this is the
//! measure over a whole kernel.

use std::path::Path;

use analyzer::parse::{parse_file, parse_file_unchunked};
use rayon::prelude::*;

#[path = "common/walk.rs"]
mod common_walk;
use common_walk::walk;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: chunk_equivalence DIR");
        std::process::exit(2);
    };
    let mut files = Vec::new();
    walk(Path::new(&dir), &mut files);
    files.sort();
    let differ: Vec<String> = files
        .par_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(p).ok().filter(|b| b.len() <= 2 << 20)?;
            let path = p.to_string_lossy();
            let chunked = parse_file(&path, None, &bytes);
            let whole = parse_file_unchunked(&path, None, &bytes);
            let unparsed = |f: &analyzer::facts::FileFacts| f.diagnostics.iter().any(|d| d.span.line == 0);
            if unparsed(&chunked) || unparsed(&whole) || chunked == whole {
                return None;
            }
            Some(format!(
                "{path}: error nodes {} chunked, {} whole; functions {} chunked, {} whole",
                chunked.parse_quality.error_nodes_recovered,
                whole.parse_quality.error_nodes_recovered,
                chunked.functions.len(),
                whole.functions.len()
            ))
        })
        .collect();
    println!("{} files, {} differ", files.len(), differ.len());
    for d in &differ {
        println!("{d}");
    }
}
