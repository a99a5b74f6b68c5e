//! Reading a series (a format-patch directory or an mbox) and applying its
//! unified diffs in memory.
//!
//! The parser never panics: a malformed patch gives an error naming the
//! patch file, the line and what was expected. Hunks apply as `git apply`
//! applies them without fuzz: the preimage (context and removed lines)
//! must match exactly, at the stated line moved by the offset of the
//! previous hunks, or anywhere after the previous hunk, nearest first.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path};

use super::SeriesError;

pub mod mail;
pub mod strategy;

pub use mail::{is_cover, parse_claims, parse_mail, split_mbox, LoadedSeries, MailPatch, MAX_INPUT_BYTES};

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkLine {
    /// `' '`, `'-'` or `'+'`.
    pub kind: char,
    pub text: Vec<u8>,
    /// False for a last line marked `\ No newline at end of file`.
    pub newline: bool,
}

/// A hunk: `@@ -old_start,old_len +new_start,new_len @@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub old_start: usize,
    pub old_len: usize,
    pub new_start: usize,
    pub new_len: usize,
    /// The `@@ ... @@` line as written.
    pub header: String,
    /// Line of the header in the patch file (1-based).
    pub line: usize,
    pub lines: Vec<HunkLine>,
}

/// The change to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// `None` for a created file.
    pub old_path: Option<String>,
    /// `None` for a deleted file.
    pub new_path: Option<String>,
    pub hunks: Vec<Hunk>,
    /// Line of the `diff --git` (or `---`) line in the patch file.
    pub line: usize,
    /// The (abbreviated) blob ids of its `index OLD..NEW` line: what a
    /// three-way merge starts from.
    pub old_blob: Option<String>,
    pub new_blob: Option<String>,
}

impl FilePatch {
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or("")
    }

    /// The patch that undoes this one (`git apply -R`).
    pub fn reversed(&self) -> FilePatch {
        let flip = |k: char| match k {
            '-' => '+',
            '+' => '-',
            c => c,
        };
        FilePatch {
            old_path: self.new_path.clone(),
            new_path: self.old_path.clone(),
            hunks: self
                .hunks
                .iter()
                .map(|h| Hunk {
                    old_start: h.new_start,
                    old_len: h.new_len,
                    new_start: h.old_start,
                    new_len: h.old_len,
                    header: h.header.clone(),
                    line: h.line,
                    lines: h.lines.iter().map(|l| HunkLine { kind: flip(l.kind), ..l.clone() }).collect(),
                })
                .collect(),
            line: self.line,
            old_blob: self.new_blob.clone(),
            new_blob: self.old_blob.clone(),
        }
    }
}

fn strip_prefix_path(p: &str, prefix: &str) -> String {
    p.strip_prefix(prefix).unwrap_or(p).to_string()
}

/// Unquote a C-quoted git path (`"a/sp ace"`).
fn unquote(p: &str) -> String {
    let Some(inner) = p.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return p.to_string();
    };
    let mut out = Vec::new();
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            match b[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'0'..=b'7' if i + 2 < b.len() => {
                    let v = u8::from_str_radix(std::str::from_utf8(&b[i..i + 3]).unwrap_or("0"), 8).unwrap_or(b'?');
                    out.push(v);
                    i += 2;
                }
                c => out.push(c),
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path from a patch must stay inside the tree.
fn safe_path(p: &str) -> bool {
    !p.is_empty() && Path::new(p).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Parse `-a,b` / `+c,d`.
fn parse_range(s: &str) -> Option<(usize, usize)> {
    match s.split_once(',') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((s.parse().ok()?, 1)),
    }
}

fn parse_hunk_header(l: &str) -> Option<(usize, usize, usize, usize)> {
    let rest = l.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('+')?;
    let (new, rest) = rest.split_once(' ')?;
    if !rest.starts_with("@@") {
        return None;
    }
    let (a, b) = parse_range(old)?;
    let (c, d) = parse_range(new)?;
    Some((a, b, c, d))
}

/// Parse the diff part of a patch. `lines` are the patch's lines (without
/// newlines), `first` the 1-based line number of `lines[0]` in `name`.
pub fn parse_diff(name: &str, lines: &[&[u8]], first: usize) -> Result<Vec<FilePatch>, String> {
    let mut files: Vec<FilePatch> = Vec::new();
    let mut i = 0;
    let at = |i: usize| first + i;
    let text = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
    while i < lines.len() {
        let l = text(lines[i]);
        if l == "-- " {
            break;
        }
        if l.starts_with("GIT binary patch") || (l.starts_with("Binary files ") && l.ends_with(" differ")) {
            return Err(format!("{name}:{}: binary patches are not supported", at(i)));
        }
        let is_git = l.starts_with("diff --git ");
        let is_plain = l.starts_with("--- ") && i + 1 < lines.len() && lines[i + 1].starts_with(b"+++ ");
        if !is_git && !is_plain {
            i += 1;
            continue;
        }
        let start = i;
        let mut fp = FilePatch {
            old_path: None,
            new_path: None,
            hunks: Vec::new(),
            line: at(i),
            old_blob: None,
            new_blob: None,
        };
        let (mut created, mut deleted) = (false, false);
        if is_git {
            let rest = &l["diff --git ".len()..];
            // `a/X b/X`: split in the middle when both halves are equal.
            let (a, b) = match rest.split_once(" b/") {
                Some((a, b)) => (unquote(a), format!("b/{}", unquote(b))),
                None => return Err(format!("{name}:{}: expected `diff --git a/PATH b/PATH`, found `{l}`", at(i))),
            };
            fp.old_path = Some(strip_prefix_path(&a, "a/"));
            fp.new_path = Some(strip_prefix_path(&b, "b/"));
            i += 1;
            while i < lines.len() {
                let h = text(lines[i]);
                if h.starts_with("--- ") || h.starts_with("@@ ") || h.starts_with("diff --git ") {
                    break;
                }
                if h.starts_with("new file mode") {
                    created = true;
                } else if h.starts_with("deleted file mode") {
                    deleted = true;
                } else if let Some(p) = h.strip_prefix("rename from ") {
                    fp.old_path = Some(unquote(p));
                } else if let Some(p) = h.strip_prefix("rename to ") {
                    fp.new_path = Some(unquote(p));
                } else if h.starts_with("GIT binary patch") || h.starts_with("Binary files ") {
                    return Err(format!("{name}:{}: binary patches are not supported", at(i)));
                } else if let Some(ids) = h.strip_prefix("index ") {
                    // `index 1a2b3c..4d5e6f 100644`
                    let ids = ids.split_whitespace().next().unwrap_or("");
                    if let Some((a, b)) = ids.split_once("..") {
                        let hex = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_hexdigit());
                        fp.old_blob = hex(a).then(|| a.to_ascii_lowercase());
                        fp.new_blob = hex(b).then(|| b.to_ascii_lowercase());
                    }
                } else if !(h.starts_with("old mode")
                    || h.starts_with("new mode")
                    || h.starts_with("similarity index")
                    || h.starts_with("dissimilarity index")
                    || h.starts_with("copy from")
                    || h.starts_with("copy to"))
                {
                    return Err(format!(
                        "{name}:{}: expected a git extended header or `--- a/PATH` after `diff --git` (line {}), found `{h}`",
                        at(i),
                        at(start)
                    ));
                }
                i += 1;
            }
        }
        if i < lines.len() && lines[i].starts_with(b"--- ") {
            let minus = text(&lines[i][4..]);
            let minus = minus.split('\t').next().unwrap_or("").to_string();
            if i + 1 >= lines.len() || !lines[i + 1].starts_with(b"+++ ") {
                return Err(format!("{name}:{}: expected `+++ b/PATH` after `--- {minus}`", at(i + 1)));
            }
            let plus = text(&lines[i + 1][4..]);
            let plus = plus.split('\t').next().unwrap_or("").to_string();
            if minus == "/dev/null" {
                created = true;
            } else if !is_git {
                fp.old_path = Some(strip_prefix_path(&unquote(&minus), "a/"));
            }
            if plus == "/dev/null" {
                deleted = true;
            } else if !is_git {
                fp.new_path = Some(strip_prefix_path(&unquote(&plus), "b/"));
            }
            i += 2;
        }
        if created {
            fp.old_path = None;
        }
        if deleted {
            fp.new_path = None;
        }
        for p in [&fp.old_path, &fp.new_path].into_iter().flatten() {
            if !safe_path(p) {
                return Err(format!("{name}:{}: unsafe path `{p}` (absolute or with `..`)", at(start)));
            }
        }
        if fp.old_path.is_none() && fp.new_path.is_none() {
            return Err(format!("{name}:{}: a file cannot be both created and deleted", at(start)));
        }
        // Hunks.
        while i < lines.len() && lines[i].starts_with(b"@@ ") {
            let h = text(lines[i]);
            let Some((a, b, c, d)) = parse_hunk_header(&h) else {
                return Err(format!("{name}:{}: expected a hunk header `@@ -A,B +C,D @@`, found `{h}`", at(i)));
            };
            let mut hunk = Hunk {
                old_start: a,
                old_len: b,
                new_start: c,
                new_len: d,
                header: h.clone(),
                line: at(i),
                lines: Vec::new(),
            };
            i += 1;
            let (mut old_left, mut new_left) = (b, d);
            while old_left > 0 || new_left > 0 {
                if i >= lines.len() {
                    return Err(format!(
                        "{name}:{}: hunk `{h}` (line {}) ends early: expected {old_left} more old and {new_left} more new lines, found the end of the patch",
                        at(i), hunk.line
                    ));
                }
                let raw = lines[i];
                let (kind, body) = match raw.first() {
                    None => (' ', &raw[..0]),
                    Some(b' ') => (' ', &raw[1..]),
                    Some(b'-') => ('-', &raw[1..]),
                    Some(b'+') => ('+', &raw[1..]),
                    Some(b'\\') => {
                        if let Some(last) = hunk.lines.last_mut() {
                            last.newline = false;
                        }
                        i += 1;
                        continue;
                    }
                    Some(_) => {
                        return Err(format!(
                            "{name}:{}: hunk `{h}` (line {}) expected {old_left} more old and {new_left} more new lines (` `, `-` or `+`), found `{}`",
                            at(i),
                            hunk.line,
                            text(raw)
                        ))
                    }
                };
                let ok = match kind {
                    ' ' if old_left > 0 && new_left > 0 => {
                        old_left -= 1;
                        new_left -= 1;
                        true
                    }
                    '-' if old_left > 0 => {
                        old_left -= 1;
                        true
                    }
                    '+' if new_left > 0 => {
                        new_left -= 1;
                        true
                    }
                    _ => false,
                };
                if !ok {
                    return Err(format!(
                        "{name}:{}: hunk `{h}` (line {}) has more lines than its header says: found `{}` with {old_left} old and {new_left} new lines left",
                        at(i),
                        hunk.line,
                        text(raw)
                    ));
                }
                hunk.lines.push(HunkLine { kind, text: body.to_vec(), newline: true });
                i += 1;
            }
            if i < lines.len() && lines[i].starts_with(b"\\") {
                if let Some(last) = hunk.lines.last_mut() {
                    last.newline = false;
                }
                i += 1;
            }
            // As git apply: a hunk must change something, a created file
            // has no old lines and a deleted file no new ones.
            if hunk.lines.iter().all(|l| l.kind == ' ') {
                return Err(format!(
                    "{name}:{}: corrupt hunk `{h}`: it neither removes nor adds a line (git apply: corrupt patch)",
                    hunk.line
                ));
            }
            if created && b > 0 {
                return Err(format!(
                    "{name}:{}: hunk `{h}` of the new file `{}` has old lines (git apply: new file depends on old contents)",
                    hunk.line,
                    fp.path()
                ));
            }
            if deleted && d > 0 {
                return Err(format!(
                    "{name}:{}: hunk `{h}` of the deleted file `{}` has new lines (git apply: deleted file still has contents)",
                    hunk.line,
                    fp.path()
                ));
            }
            fp.hunks.push(hunk);
        }
        if fp.hunks.is_empty() && !created && !deleted && fp.old_path == fp.new_path {
            return Err(format!(
                "{name}:{}: `{}` has no hunk (mode-only changes are not supported)",
                at(start),
                fp.path()
            ));
        }
        files.push(fp);
    }
    Ok(files)
}

/// Load a series for `series test`: a format-patch directory (its files
/// numbered without a gap, as `git format-patch` writes them), an mbox, a
/// patch file or `-`; see [`mail::collect_series`] for the rest.
pub fn load_series(path: &Path) -> Result<Vec<MailPatch>, SeriesError> {
    Ok(load_series_notes(path)?.patches)
}

/// [`load_series`] with the notes on what was skipped or taken.
pub fn load_series_notes(path: &Path) -> Result<LoadedSeries, SeriesError> {
    if path != Path::new("-") {
        let meta = fs::metadata(path)
            .map_err(|e| SeriesError::new(format!("cannot read series `{}`: {e}", path.display())))?;
        if meta.is_dir() {
            check_numbering(path)?;
        }
    }
    let is_dir = path != Path::new("-") && path.is_dir();
    let mut loaded = mail::collect_series(&mail::read_inputs(&[path.to_path_buf()])?)?;
    if !is_dir {
        // An mbox's patches are `series.mbox#N`, even when it holds one.
        for (k, p) in loaded.patches.iter_mut().enumerate() {
            if !p.name.contains('#') {
                p.name = format!("{}#{}", p.name, p.number.map_or(k + 1, |n| n.0));
            }
        }
    }
    if loaded.patches.is_empty() {
        return Err(SeriesError::new(format!("no patches in `{}`", path.display())));
    }
    Ok(loaded)
}

/// A format-patch directory's files are numbered `NNNN-name.patch` from 1
/// (0 is the cover letter) without a gap: a missing file is a lost patch.
fn check_numbering(dir: &Path) -> Result<(), SeriesError> {
    let mut numbered: BTreeMap<usize, String> = BTreeMap::new();
    for p in mail::patch_files_of(dir)? {
        let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let digits: String = n.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(num) = digits.parse::<usize>() else {
            return Err(SeriesError::new(format!(
                "`{}` in {} is not a numbered format-patch file (NNNN-name.patch)",
                n,
                dir.display()
            )));
        };
        if let Some(other) = numbered.insert(num, n.clone()) {
            return Err(SeriesError::new(format!("{}: `{other}` and `{n}` have the same number", dir.display())));
        }
    }
    let max = numbered.keys().max().copied().unwrap_or(0);
    for k in 1..=max {
        if !numbered.contains_key(&k) {
            return Err(SeriesError::new(format!(
                "{}: patch {k:04} is missing (the series has {})",
                dir.display(),
                numbered.values().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

/// A hunk that does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApplyError {
    pub message: String,
}

type Line<'a> = (&'a [u8], bool);

fn split_lines(b: &[u8]) -> Vec<Line<'_>> {
    let mut v = Vec::new();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            v.push((&b[start..i], true));
            start = i + 1;
        }
    }
    if start < b.len() {
        v.push((&b[start..], false));
    }
    v
}

fn show(lines: &[Line<'_>], from: usize, n: usize) -> String {
    let mut s = String::new();
    for (k, l) in lines.iter().enumerate().skip(from).take(n) {
        s.push_str(&format!("    {:>5} | {}\n", k + 1, String::from_utf8_lossy(l.0)));
    }
    if s.is_empty() {
        s.push_str("    (end of file)\n");
    }
    s
}

/// How hunks may be matched beyond `git apply`'s default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HunkOptions {
    /// `-C N` (`git apply -C`, `git am -C`): when a hunk does not match,
    /// drop context lines, the longer side first, down to N on each side.
    pub min_context: Option<usize>,
}

/// One file's result and what its hunks needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileApplied {
    /// The new contents (`None`: deleted).
    pub new: Option<Vec<u8>>,
    /// Hunks that matched only with less context: (hunk number from 1,
    /// lines of context left on the longer side).
    pub reduced: Vec<(usize, usize)>,
    /// Hunks applied away from their stated line: (hunk number, lines).
    pub offsets: Vec<(usize, isize)>,
}

/// Where `pre` matches in `lines`, nearest to `expected` first, at or
/// after `cursor`; at the start only (`begin`) or ending at the end only
/// (`end`) when those are set.
fn find_hunk(
    lines: &[Line<'_>],
    pre: &[Line<'_>],
    expected: usize,
    cursor: usize,
    begin: bool,
    end: bool,
) -> Option<usize> {
    let matches = |pos: usize| {
        pos >= cursor
            && pos + pre.len() <= lines.len()
            && (!begin || pos == 0)
            && (!end || pos + pre.len() == lines.len())
            && pre.iter().enumerate().all(|(j, p)| {
                let l = lines[pos + j];
                // A line with a newline matches a preimage line with one;
                // the file's last line must agree on the newline.
                l.0 == p.0 && (l.1 == p.1 || (pos + j + 1 < lines.len() && p.1))
            })
    };
    if begin || end {
        let pos = if begin { 0 } else { lines.len().checked_sub(pre.len())? };
        return matches(pos).then_some(pos);
    }
    let max = lines.len().checked_sub(pre.len())?;
    let expected = expected.max(cursor).min(lines.len());
    for d in 0..=lines.len() {
        let fwd = expected + d;
        if fwd <= max && matches(fwd) {
            return Some(fwd);
        }
        if d > 0 && expected >= d && expected - d >= cursor && matches(expected - d) {
            return Some(expected - d);
        }
        if fwd > max && (expected < d || expected - d < cursor) {
            break;
        }
    }
    None
}

fn emit(out: &mut Vec<u8>, text: &[u8], newline: bool) {
    out.extend_from_slice(text);
    if newline {
        out.push(b'\n');
    }
}

/// Apply one file's hunks to its current contents (`None`: absent), as
/// `git apply` does: each hunk's preimage must match exactly, nearest to
/// its stated line moved by the offset of the previous hunks; a hunk
/// starting at line 0 or 1 must match at the start, one with no trailing
/// context at the end. Returns the new contents (`None`: deleted).
pub fn apply_file(patch_name: &str, fp: &FilePatch, old: Option<&[u8]>) -> Result<Option<Vec<u8>>, ApplyError> {
    apply_file_with(patch_name, fp, old, HunkOptions::default()).map(|a| a.new)
}

/// [`apply_file`], with reduced context when `opts` allows it.
pub fn apply_file_with(
    patch_name: &str,
    fp: &FilePatch,
    old: Option<&[u8]>,
    opts: HunkOptions,
) -> Result<FileApplied, ApplyError> {
    let path = fp.path();
    let fail = |m: String| ApplyError { message: format!("{patch_name}: {m}") };
    match (fp.old_path.is_some(), old) {
        (true, None) => return Err(fail(format!("`{path}` does not exist in the tree (line {})", fp.line))),
        (false, Some(_)) => return Err(fail(format!("`{path}` is created but already exists (line {})", fp.line))),
        _ => {}
    }
    let old = old.unwrap_or(b"");
    let lines = split_lines(old);
    let mut out: Vec<u8> = Vec::with_capacity(old.len());
    let mut cursor = 0usize;
    let mut offset: isize = 0;
    let mut reduced = Vec::new();
    let mut offsets = Vec::new();
    let min_context = opts.min_context.unwrap_or(usize::MAX);
    for (k, h) in fp.hunks.iter().enumerate() {
        let mut leading = h.lines.iter().take_while(|l| l.kind == ' ').count();
        let mut trailing = h.lines.iter().rev().take_while(|l| l.kind == ' ').count();
        // The hunk's lines in use: context is dropped from both ends when -C allows.
        let (mut from, mut to) = (0, h.lines.len());
        let mut begin = h.old_start <= 1;
        let mut end = trailing == 0;
        let mut relaxed = false;
        let stated = if h.old_len == 0 { h.old_start } else { h.old_start.saturating_sub(1) };
        let found = loop {
            let pre: Vec<Line<'_>> =
                h.lines[from..to].iter().filter(|l| l.kind != '+').map(|l| (&l.text[..], l.newline)).collect();
            let expected = (stated as isize).saturating_add(offset).saturating_add(from as isize).max(0) as usize;
            if let Some(pos) = find_hunk(&lines, &pre, expected, cursor, begin, end) {
                break Some((pos, pre.len(), expected));
            }
            if leading <= min_context && trailing <= min_context {
                break None;
            }
            relaxed = true;
            if begin || end {
                (begin, end) = (false, false);
                continue;
            }
            if leading >= trailing {
                from += 1;
                leading -= 1;
            }
            if trailing > leading {
                to -= 1;
                trailing -= 1;
            }
        };
        let Some((pos, pre_len, expected)) = found else {
            let pre: Vec<&HunkLine> = h.lines.iter().filter(|l| l.kind != '+').collect();
            let at = (stated as isize).saturating_add(offset).max(cursor as isize) as usize;
            let ctx: String =
                pre.iter().take(6).map(|l| format!("    {}\n", String::from_utf8_lossy(&l.text))).collect();
            return Err(fail(format!(
                "hunk #{} `{}` (line {}) does not apply to `{path}`: its context and removed lines\n{}  are not in the file; at line {} the file has\n{}",
                k + 1,
                h.header,
                h.line,
                ctx,
                at + 1,
                show(&lines, at, pre.len().clamp(1, 6))
            )));
        };
        if relaxed {
            reduced.push((k + 1, leading.max(trailing)));
        }
        if pos != expected {
            offsets.push((k + 1, pos as isize - expected.min(lines.len()) as isize));
        }
        for l in &lines[cursor..pos] {
            emit(&mut out, l.0, l.1);
        }
        for l in h.lines[from..to].iter().filter(|l| l.kind != '-') {
            emit(&mut out, &l.text, l.newline);
        }
        cursor = pos + pre_len;
        offset = (pos as isize - from as isize).saturating_sub(stated as isize);
    }
    for l in &lines[cursor..] {
        emit(&mut out, l.0, l.1);
    }
    let new = if fp.new_path.is_none() {
        if !out.is_empty() {
            return Err(fail(format!("`{path}` is deleted but the patch does not remove all of its lines")));
        }
        None
    } else {
        Some(out)
    };
    Ok(FileApplied { new, reduced, offsets })
}

/// The preimage (`drop` = '+') or postimage (`drop` = '-') of hunk lines.
fn image(h: &[HunkLine], drop: char) -> Vec<Line<'_>> {
    h.iter().filter(|l| l.kind != drop).map(|l| (&l.text[..], l.newline)).collect()
}

/// Whether every hunk's result is already in `current`: each hunk's
/// postimage is somewhere in the file, with its context, or with as little
/// as one line of it on each side (a stable backport's context differs).
pub fn postimage_present(fp: &FilePatch, current: Option<&[u8]>) -> bool {
    let Some(cur) = current else { return fp.new_path.is_none() };
    if fp.new_path.is_none() {
        return false;
    }
    let lines = split_lines(cur);
    let found = |img: &[Line<'_>]| find_hunk(&lines, img, 0, 0, false, false).is_some();
    fp.hunks.iter().all(|h| {
        let mut leading = h.lines.iter().take_while(|l| l.kind == ' ').count();
        let mut trailing = h.lines.iter().rev().take_while(|l| l.kind == ' ').count();
        let (mut from, mut to) = (0, h.lines.len());
        loop {
            let post = image(&h.lines[from..to], '-');
            let post = &post[..];
            // A hunk that only removes lines, without context, is present when they are gone.
            if post.is_empty() {
                return !found(&image(&h.lines[from..to], '+'));
            }
            if found(post) {
                return true;
            }
            if leading <= 1 && trailing <= 1 {
                return false;
            }
            if leading >= trailing {
                from += 1;
                leading -= 1;
            } else {
                to -= 1;
                trailing -= 1;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: A <a@b>
Date: Thu, 7 Apr 2005 15:13:13 -0700
Subject: [PATCH 2/3] KVM: do a
 thing

Why.

Kvmtk-Fixes: HW005 [0123456789abcdef] f: g
Signed-off-by: A <a@b>
---
 f.c | 3 ++-
 1 file changed, 2 insertions(+), 1 deletion(-)

diff --git a/f.c b/f.c
index 1111111..2222222 100644
--- a/f.c
+++ b/f.c
@@ -1,3 +1,4 @@
 a
-b
+B
 c
+d
\\ No newline at end of file
-- 
kvmtk 0.1.0

";

    #[test]
    fn parses_and_applies_a_format_patch() {
        let m = parse_mail("0002-x.patch", PATCH.as_bytes(), 1);
        assert_eq!(m.number, Some((2, 3)));
        assert_eq!(m.subject, "KVM: do a thing");
        assert_eq!(m.claims, vec!["0123456789abcdef".to_string()]);
        let files = m.files.unwrap();
        assert_eq!(files.len(), 1);
        let out = apply_file("0002-x.patch", &files[0], Some(b"a\nb\nc\n")).unwrap().unwrap();
        assert_eq!(out, b"a\nB\nc\nd");
        // A hunk at line 1 must match at the start, one without trailing
        // context at the end (git apply): shifted by two lines, it does not apply.
        assert!(apply_file("0002-x.patch", &files[0], Some(b"0\n0\na\nb\nc\n")).is_err());
        assert!(apply_file("0002-x.patch", &files[0], Some(b"a\nb\nc\nz\n")).is_err());
        let e = apply_file("0002-x.patch", &files[0], Some(b"a\nX\nc\n")).unwrap_err();
        assert!(e.message.contains("hunk #1 `@@ -1,3 +1,4 @@` (line 19) does not apply to `f.c`"), "{e}");
    }

    #[test]
    fn malformed_patches_give_file_and_line() {
        let bad = PATCH.replace("-b\n+B\n", "-b\n*B\n");
        let e = parse_mail("p.patch", bad.as_bytes(), 1).files.unwrap_err();
        assert!(e.starts_with("p.patch:22: hunk `@@ -1,3 +1,4 @@` (line 19) expected"), "{e}");
        let bad = PATCH.replace(" c\n+d\n", "");
        let e = parse_mail("p.patch", bad.as_bytes(), 1).files.unwrap_err();
        assert!(e.contains("expected"), "{e}");
        let bad = PATCH.replace("a/f.c", "a/../../etc/passwd");
        assert!(parse_mail("p.patch", bad.as_bytes(), 1).files.is_err());
        // Cut at every byte (inside a UTF-8 sequence too): no panic.
        for cut in 0..PATCH.len() {
            let _ = parse_mail("p.patch", &PATCH.as_bytes()[..cut], 1);
        }
    }
}
