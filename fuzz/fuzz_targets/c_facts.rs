//! C facts extraction on arbitrary bytes: idiom masking, tree-sitter-c and
//! the extractor must never panic, and spans must stay inside the input.
//! A second parse with a 64th of the work budget abandons most inputs
//! part-way, at a different place each time: the path that ends a parse
//! over its budget is otherwise reached only by hostile bytes.
#![no_main]

use analyzer::parse::ParseWork;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let masked = analyzer::parse::recover_idioms(data);
    assert_eq!(masked.bytes.len(), data.len(), "masking must keep the length");
    let facts = analyzer::parse::parse_file("arch/x86/kvm/fuzz.c", Some("x86"), data);
    for f in &facts.functions {
        assert!((f.span.end as usize) <= data.len(), "function span past the end");
        assert!(f.span.start <= f.span.end, "inverted function span");
    }
    let small = ParseWork::budget(data.len()).divided(64);
    if let Some(w) = analyzer::parse::parse_work(data, small) {
        assert!(w.checks <= small.checks && w.bytes_read <= small.bytes_read, "{w:?} over {small:?}");
    }
});
