//! The parser on the real Linux 6.1 and 6.12 KVM trees.

mod parse_common;

use analyzer::parse::{parse_files_with, ParseOptions};

#[test]
fn error_counts_dump() {
    for v in ["6.1", "6.12"] {
        let Some(root) = parse_common::kernel_tree(v) else { return };
        let files = parse_common::kvm_files(&root);
        let facts = parse_files_with(&files, ParseOptions { measure_plain: true });
        let (mut fp, mut fr, mut np, mut nr) = (0, 0, 0, 0);
        for f in &facts {
            let q = f.parse_quality;
            if q.error_nodes_plain > 0 { fp += 1; }
            if q.error_nodes_recovered > 0 { fr += 1; }
            np += q.error_nodes_plain;
            nr += q.error_nodes_recovered;
            if std::env::var_os("DUMP").is_some() {
                for d in &f.diagnostics {
                    println!("{}:{}:{}: {}", f.path, d.span.line, d.span.col, d.message);
                }
            }
        }
        println!("{v}: {} files; plain: {fp} files {np} nodes; recovered: {fr} files {nr} nodes", files.len());
    }
}
