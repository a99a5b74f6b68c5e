//! Unified diff parsing and in-memory application. The input is split at
//! the first NUL byte: before it the file contents, after it the diff.
//! Each file is applied as written, with context reduced to one line
//! (`-C1`), reversed, and checked for its result being present.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchgen::series::apply::{apply_file, apply_file_with, parse_diff, postimage_present, HunkOptions};

fuzz_target!(|data: &[u8]| {
    let (old, diff) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let lines: Vec<&[u8]> = diff.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
    let Ok(files) = parse_diff("0001-fuzz.patch", &lines, 1) else { return };
    for fp in &files {
        let _ = apply_file("0001-fuzz.patch", fp, Some(old));
        let _ = apply_file("0001-fuzz.patch", fp, None);
        let _ = apply_file_with("0001-fuzz.patch", fp, Some(old), HunkOptions { min_context: Some(1) });
        let _ = apply_file("0001-fuzz.patch", &fp.reversed(), Some(old));
        let _ = postimage_present(fp, Some(old));
    }
});
