//! Edits: byte ranges of the original text and their replacements.
//!
//! Transformations anchor edits on spans the analyzer found (exact byte
//! offsets into the original file); all edits of one change are applied
//! together, refusing overlaps, so no edit shifts another's offsets.

use std::collections::BTreeMap;

use serde::Serialize;

/// Replace `start..end` of file `path` with `replacement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub path: String,
    pub start: usize,
    pub end: usize,
    pub replacement: String,
}

impl Edit {
    pub fn replace(path: &str, start: usize, end: usize, replacement: impl Into<String>) -> Edit {
        Edit { path: path.to_string(), start, end, replacement: replacement.into() }
    }

    pub fn insert(path: &str, at: usize, text: impl Into<String>) -> Edit {
        Edit::replace(path, at, at, text)
    }

    pub fn delete(path: &str, start: usize, end: usize) -> Edit {
        Edit::replace(path, start, end, "")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("{path}: edits overlap at bytes {first_start}..{first_end} and {second_start}..{second_end}")]
    Overlap { path: String, first_start: usize, first_end: usize, second_start: usize, second_end: usize },
    #[error("{path}: edit {start}..{end} is outside the file ({len} bytes)")]
    OutOfRange { path: String, start: usize, end: usize, len: usize },
    #[error("{path}: no such file in the tree")]
    NoSuchFile { path: String },
}

/// Apply edits to one file's bytes. Insertions at the same offset keep
/// their given order.
pub fn apply_to_file(path: &str, original: &[u8], edits: &[&Edit]) -> Result<Vec<u8>, EditError> {
    let mut sorted: Vec<(usize, &Edit)> = edits.iter().copied().enumerate().collect();
    sorted.sort_by_key(|(i, e)| (e.start, e.end, *i));
    for (_, e) in &sorted {
        if e.start > e.end || e.end > original.len() {
            return Err(EditError::OutOfRange {
                path: path.to_string(),
                start: e.start,
                end: e.end,
                len: original.len(),
            });
        }
    }
    for w in sorted.windows(2) {
        let (a, b) = (w[0].1, w[1].1);
        // Two insertions at one point are fine; anything sharing bytes is not.
        if b.start < a.end || (a.start == b.start && a.start != a.end && b.start != b.end) {
            return Err(EditError::Overlap {
                path: path.to_string(),
                first_start: a.start,
                first_end: a.end,
                second_start: b.start,
                second_end: b.end,
            });
        }
    }
    let mut out = Vec::with_capacity(original.len());
    let mut pos = 0;
    for (_, e) in sorted {
        out.extend_from_slice(&original[pos..e.start]);
        out.extend_from_slice(e.replacement.as_bytes());
        pos = e.end;
    }
    out.extend_from_slice(&original[pos..]);
    Ok(out)
}

/// Apply a set of edits over several files; returns the new contents of
/// the files touched.
pub fn apply(files: &BTreeMap<String, Vec<u8>>, edits: &[Edit]) -> Result<BTreeMap<String, Vec<u8>>, EditError> {
    let mut by_file: BTreeMap<&str, Vec<&Edit>> = BTreeMap::new();
    for e in edits {
        by_file.entry(e.path.as_str()).or_default().push(e);
    }
    let mut out = BTreeMap::new();
    for (path, es) in by_file {
        let original = files.get(path).ok_or_else(|| EditError::NoSuchFile { path: path.to_string() })?;
        out.insert(path.to_string(), apply_to_file(path, original, &es)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_at_original_offsets() {
        let text = b"static int a;\nstatic int b;\n";
        let e1 = Edit::replace("f.c", 11, 12, "x");
        let e2 = Edit::insert("f.c", 14, "/* b */\n");
        let e3 = Edit::delete("f.c", 0, 0);
        let out = apply_to_file("f.c", text, &[&e2, &e1, &e3]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "static int x;\n/* b */\nstatic int b;\n");
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let text = b"0123456789";
        let e1 = Edit::replace("f.c", 2, 5, "x");
        let e2 = Edit::replace("f.c", 4, 6, "y");
        assert!(matches!(apply_to_file("f.c", text, &[&e1, &e2]), Err(EditError::Overlap { .. })));
        let e3 = Edit::replace("f.c", 8, 12, "z");
        assert!(matches!(apply_to_file("f.c", text, &[&e3]), Err(EditError::OutOfRange { .. })));
    }
}
