//! Byte/line helpers shared by the masker and the extractor.
//!
//! Everything here works on raw bytes and never panics on out-of-range
//! offsets: the input may be any bytes (binary, truncated, non-UTF-8).

use crate::facts::Span;

/// Line starts of a file, to turn byte offsets into 1-based line/column.
pub struct LineIndex {
    starts: Vec<u32>,
    len: u32,
}

impl LineIndex {
    /// Index the line starts of `src`.
    pub fn new(src: &[u8]) -> Self {
        let mut starts = Vec::with_capacity(src.len() / 32 + 1);
        starts.push(0);
        for nl in memchr::memchr_iter(b'\n', src) {
            starts.push(clamp_u32(nl + 1));
        }
        LineIndex { starts, len: clamp_u32(src.len()) }
    }

    /// 1-based line and byte column of `offset`.
    pub fn line_col(&self, offset: u32) -> (u32, u32) {
        let offset = offset.min(self.len);
        let idx = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let line_start = self.starts.get(idx).copied().unwrap_or(0);
        (idx as u32 + 1, offset - line_start + 1)
    }

    /// A [`Span`] for the byte range `start..end` (clamped to the file).
    pub fn span(&self, start: usize, end: usize) -> Span {
        let start = clamp_u32(start).min(self.len);
        let end = clamp_u32(end).min(self.len).max(start);
        let (line, col) = self.line_col(start);
        Span { start, end, line, col }
    }
}

/// `v` as u32, saturating (offsets beyond 4 GiB are not C we read).
pub fn clamp_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The bytes of `start..end`, clamped; empty when the range is nonsense.
pub fn slice(src: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(src.len());
    let start = start.min(end);
    &src[start..end]
}

/// Text of a byte range, lossy for non-UTF-8 bytes.
pub fn text(src: &[u8], start: usize, end: usize) -> String {
    String::from_utf8_lossy(slice(src, start, end)).into_owned()
}

/// Text with runs of whitespace (including newlines and line
/// continuations) collapsed to one space and comments dropped: for types
/// and conditions, which readers compare as strings.
pub fn normalized(src: &[u8], start: usize, end: usize) -> String {
    let b = slice(src, start, end);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut pending_space = false;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
            pending_space = true;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            pending_space = true;
            continue;
        }
        if c == b'\\' && matches!(b.get(i + 1), Some(b'\n') | Some(b'\r')) {
            i += 1;
            pending_space = true;
            continue;
        }
        if c.is_ascii_whitespace() {
            pending_space = true;
            i += 1;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(b' ');
        }
        pending_space = false;
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `[A-Za-z_]`.
pub fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// `[A-Za-z0-9_]`.
pub fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// True when `b` is a plain C identifier.
pub fn is_ident(b: &[u8]) -> bool {
    !b.is_empty() && is_ident_start(b[0]) && b.iter().all(|&c| is_ident_char(c))
}
