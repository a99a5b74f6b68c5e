//! Ad-hoc probe (dev aid): print the facts of one function / file.
mod parse_common;

#[test]
#[ignore]
fn probe() {
    let file = std::env::var("PROBE_FILE").unwrap_or_default();
    let func = std::env::var("PROBE_FN").unwrap_or_default();
    let path = parse_common::kernel_cache().join(&file);
    let bytes = std::fs::read(&path).unwrap();
    let f = analyzer::parse::parse_file(&file, None, &bytes);
    for g in &f.functions {
        if g.name == func {
            println!("{g:#?}");
        }
    }
    if func.is_empty() {
        println!("{:#?}", (&f.globals, &f.initializers, &f.top_level_macros, &f.enums, &f.prototypes.len()));
    }
}

#[test]
#[ignore]
fn probe_masked() {
    let file = std::env::var("PROBE_FILE").unwrap_or_default();
    let from: usize = std::env::var("PROBE_FROM").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let to: usize = std::env::var("PROBE_TO").ok().and_then(|v| v.parse().ok()).unwrap_or(from + 20);
    let bytes = std::fs::read(parse_common::kernel_cache().join(&file)).unwrap();
    let m = analyzer::parse::recover_idioms(&bytes);
    for (i, l) in String::from_utf8_lossy(&m.bytes).lines().enumerate() {
        if i + 1 >= from && i + 1 <= to {
            println!("{:5} {}", i + 1, l);
        }
    }
}
