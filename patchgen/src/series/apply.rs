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
}

impl FilePatch {
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or("")
    }
}

/// One mail of a series.
#[derive(Debug, Clone)]
pub struct MailPatch {
    /// The file it came from (`0001-foo.patch`, or `series.mbox` + number).
    pub name: String,
    /// `(n, N)` from `[PATCH n/N]`.
    pub number: Option<(usize, usize)>,
    /// The subject without the `[PATCH ...]` prefix.
    pub subject: String,
    pub author: Option<String>,
    /// The commit message after the subject.
    pub body: String,
    /// Fingerprints claimed by `Kvmtk-Fixes:` trailers.
    pub claims: Vec<String>,
    /// The file changes, or why they could not be read.
    pub files: Result<Vec<FilePatch>, String>,
    /// The whole mail text (for checkpatch).
    pub text: String,
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
        let mut fp = FilePatch { old_path: None, new_path: None, hunks: Vec::new(), line: at(i) };
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
                } else if !(h.starts_with("index ")
                    || h.starts_with("old mode")
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

/// Decode RFC 2047 encoded words (UTF-8 or ASCII, q-encoding) in a header
/// value; other text, and words in other encodings, are kept as written.
fn decode_rfc2047(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut last_encoded = false;
    loop {
        let Some(start) = rest.find("=?") else {
            out.push_str(rest);
            break;
        };
        let prefix = &rest[..start];
        let after = &rest[start + 2..];
        let parsed = (|| {
            let (charset, r) = after.split_once('?')?;
            let (enc, r) = r.split_once('?')?;
            let end = r.find("?=")?;
            Some((charset, enc, &r[..end], &r[end + 2..]))
        })();
        let Some((charset, enc, data, remainder)) = parsed else {
            out.push_str(rest);
            break;
        };
        // Whitespace between two encoded words is dropped.
        if !(last_encoded && prefix.trim().is_empty()) {
            out.push_str(prefix);
        }
        let known = ["utf-8", "us-ascii"].iter().any(|c| c.eq_ignore_ascii_case(charset));
        if known && enc.eq_ignore_ascii_case("q") {
            let d = data.as_bytes();
            let mut bytes = Vec::new();
            let mut i = 0;
            while i < d.len() {
                let hex = d
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (d[i], hex) {
                    (b'=', Some(v)) => {
                        bytes.push(v);
                        i += 3;
                    }
                    (b'_', _) => {
                        bytes.push(b' ');
                        i += 1;
                    }
                    (c, _) => {
                        bytes.push(c);
                        i += 1;
                    }
                }
            }
            out.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            out.push_str(&rest[start..rest.len() - remainder.len()]);
        }
        last_encoded = true;
        rest = remainder;
    }
    out
}

/// `[PATCH v2 3/7] subject` -> ((3, 7), `subject`).
fn split_subject(s: &str) -> (Option<(usize, usize)>, String) {
    let s = s.trim();
    let Some(rest) = s.strip_prefix('[') else { return (None, s.to_string()) };
    let Some((tag, subject)) = rest.split_once(']') else { return (None, s.to_string()) };
    let number = tag
        .split_whitespace()
        .filter_map(|w| w.split_once('/'))
        .find_map(|(n, t)| Some((n.parse().ok()?, t.parse().ok()?)));
    (number, subject.trim().to_string())
}

/// The fingerprints of `Kvmtk-Fixes:` trailers in a message.
pub fn parse_claims(body: &str) -> Vec<String> {
    let key = format!("{}:", super::FIXES_TRAILER);
    body.lines()
        .filter_map(|l| l.trim_start().strip_prefix(key.as_str()))
        .filter_map(|rest| {
            let open = rest.find('[')?;
            let close = rest[open..].find(']')? + open;
            let fp = &rest[open + 1..close];
            (!fp.is_empty() && fp.bytes().all(|b| b.is_ascii_hexdigit())).then(|| fp.to_ascii_lowercase())
        })
        .collect()
}

/// Parse one mail. `first` is the 1-based line of its first line in `name`.
pub fn parse_mail(name: &str, text: &str, first: usize) -> MailPatch {
    let lines: Vec<&[u8]> =
        text.as_bytes().split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
    let mut i = 0;
    if lines.first().is_some_and(|l| l.starts_with(b"From ")) {
        i = 1;
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    let looks_like_header = |l: &[u8]| {
        let s = String::from_utf8_lossy(l);
        s.split_once(':')
            .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    if i < lines.len() && looks_like_header(lines[i]) {
        while i < lines.len() && !lines[i].is_empty() {
            let l = String::from_utf8_lossy(lines[i]).into_owned();
            if l.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(l.trim_start());
                }
            } else if let Some((k, v)) = l.split_once(':') {
                headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
            }
            i += 1;
        }
        i += 1;
    }
    let header = |k: &str| headers.iter().find(|h| h.0 == k).map(|h| decode_rfc2047(&h.1));
    let (number, subject) = split_subject(&header("subject").unwrap_or_default());
    let body_start = i.min(lines.len());
    i = body_start;
    while i < lines.len() && lines[i] != b"---" && !lines[i].starts_with(b"diff --git ") {
        i += 1;
    }
    let body: String =
        lines[body_start..i].iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>().join("\n");
    let files = parse_diff(name, &lines[i.min(lines.len())..], first + i);
    MailPatch {
        name: name.to_string(),
        number,
        subject,
        author: header("from"),
        claims: parse_claims(&body),
        body,
        files,
        text: text.to_string(),
    }
}

/// Split an mbox into mails: a `From ` line at the start or after an empty
/// line begins a mail. Returns (first line, text) pairs.
pub fn split_mbox(text: &str) -> Vec<(usize, String)> {
    let mut mails: Vec<(usize, String)> = Vec::new();
    let mut prev_empty = true;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let starts = prev_empty && line.starts_with("From ") && line.split_whitespace().count() >= 3;
        if starts || mails.is_empty() {
            mails.push((n + 1, String::new()));
        }
        if let Some(m) = mails.last_mut() {
            m.1.push_str(line);
        }
        prev_empty = line.trim_end_matches(['\n', '\r']).is_empty();
    }
    mails.retain(|m| !m.1.trim().is_empty());
    mails
}

fn is_cover(m: &MailPatch) -> bool {
    m.number.is_some_and(|(n, _)| n == 0) || (m.files.as_ref().is_ok_and(|f| f.is_empty()) && m.subject.contains("***"))
}

/// Load a series: a directory of format-patch files (sorted by name, the
/// cover letter skipped, numbering checked), or an mbox / single patch.
pub fn load_series(path: &Path) -> Result<Vec<MailPatch>, SeriesError> {
    let meta =
        fs::metadata(path).map_err(|e| SeriesError::new(format!("cannot read series `{}`: {e}", path.display())))?;
    let mut patches = Vec::new();
    if meta.is_dir() {
        let mut names: Vec<String> = fs::read_dir(path)
            .map_err(|e| SeriesError::new(format!("cannot read `{}`: {e}", path.display())))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".patch") || n.ends_with(".diff"))
            .collect();
        names.sort();
        let mut numbered: BTreeMap<usize, String> = BTreeMap::new();
        for n in &names {
            let digits: String = n.chars().take_while(|c| c.is_ascii_digit()).collect();
            let Ok(num) = digits.parse::<usize>() else {
                return Err(SeriesError::new(format!(
                    "`{}` in {} is not a numbered format-patch file (NNNN-name.patch)",
                    n,
                    path.display()
                )));
            };
            if let Some(other) = numbered.insert(num, n.clone()) {
                return Err(SeriesError::new(format!("{}: `{other}` and `{n}` have the same number", path.display())));
            }
        }
        let max = numbered.keys().max().copied().unwrap_or(0);
        for k in 1..=max {
            if !numbered.contains_key(&k) {
                return Err(SeriesError::new(format!(
                    "{}: patch {k:04} is missing (the series has {})",
                    path.display(),
                    numbered.values().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        for (num, n) in numbered {
            let p = path.join(&n);
            let bytes = fs::read(&p).map_err(|e| SeriesError::new(format!("cannot read `{}`: {e}", p.display())))?;
            let m = parse_mail(&n, &String::from_utf8_lossy(&bytes), 1);
            if num == 0 || is_cover(&m) {
                continue;
            }
            patches.push(m);
        }
    } else {
        let bytes = fs::read(path).map_err(|e| SeriesError::new(format!("cannot read `{}`: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&bytes);
        let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Parsed under the mbox's name, so that lines in messages are the
        // mbox's lines; then named `series.mbox#N` after their number.
        for (first, mail) in split_mbox(&text) {
            let m = parse_mail(&base, &mail, first);
            if is_cover(&m) {
                continue;
            }
            patches.push(m);
        }
        let nums: Vec<usize> = patches.iter().filter_map(|p| p.number.map(|n| n.0)).collect();
        if nums.len() == patches.len() && !nums.is_empty() {
            patches.sort_by_key(|p| p.number.map(|n| n.0));
            for (k, p) in patches.iter().enumerate() {
                let n = p.number.map_or(0, |n| n.0);
                if n != k + 1 {
                    return Err(SeriesError::new(format!(
                        "{}: patch {} is missing (found [PATCH {n}/..] after {})",
                        path.display(),
                        k + 1,
                        k
                    )));
                }
            }
        }
        for (k, p) in patches.iter_mut().enumerate() {
            p.name = format!("{base}#{}", k + 1);
        }
    }
    if patches.is_empty() {
        return Err(SeriesError::new(format!("no patches in `{}`", path.display())));
    }
    Ok(patches)
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

/// Apply one file's hunks to its current contents (`None`: absent).
/// Returns the new contents (`None`: deleted).
pub fn apply_file(patch_name: &str, fp: &FilePatch, old: Option<&[u8]>) -> Result<Option<Vec<u8>>, ApplyError> {
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
    for (k, h) in fp.hunks.iter().enumerate() {
        let pre: Vec<Line<'_>> = h.lines.iter().filter(|l| l.kind != '+').map(|l| (&l.text[..], l.newline)).collect();
        let post: Vec<&HunkLine> = h.lines.iter().filter(|l| l.kind != '-').collect();
        let stated = if h.old_len == 0 { h.old_start } else { h.old_start.saturating_sub(1) };
        let expected = (stated as isize + offset).max(cursor as isize) as usize;
        let matches = |pos: usize| {
            pos + pre.len() <= lines.len()
                && pre.iter().enumerate().all(|(j, p)| {
                    let l = lines[pos + j];
                    // A line with a newline matches a preimage line with one;
                    // the file's last line must agree on the newline.
                    l.0 == p.0 && (l.1 == p.1 || (pos + j + 1 < lines.len() && p.1))
                })
        };
        let mut found = None;
        let max = lines.len().saturating_sub(pre.len());
        for d in 0..=lines.len() {
            let fwd = expected + d;
            if fwd <= max && matches(fwd) {
                found = Some(fwd);
                break;
            }
            if d > 0 && expected >= d && expected - d >= cursor && matches(expected - d) {
                found = Some(expected - d);
                break;
            }
            if fwd > max && (expected < d || expected - d < cursor) {
                break;
            }
        }
        let Some(pos) = found else {
            let ctx: String = pre.iter().take(6).map(|l| format!("    {}\n", String::from_utf8_lossy(l.0))).collect();
            return Err(fail(format!(
                "hunk #{} `{}` (line {}) does not apply to `{path}`: its context and removed lines\n{}  are not in the file; at line {} the file has\n{}",
                k + 1,
                h.header,
                h.line,
                ctx,
                expected + 1,
                show(&lines, expected, pre.len().clamp(1, 6))
            )));
        };
        for l in &lines[cursor..pos] {
            out.extend_from_slice(l.0);
            if l.1 {
                out.push(b'\n');
            }
        }
        for l in &post {
            out.extend_from_slice(&l.text);
            if l.newline {
                out.push(b'\n');
            }
        }
        cursor = pos + pre.len();
        offset = pos as isize - stated as isize;
    }
    for l in &lines[cursor..] {
        out.extend_from_slice(l.0);
        if l.1 {
            out.push(b'\n');
        }
    }
    Ok(if fp.new_path.is_none() {
        if !out.is_empty() {
            return Err(fail(format!("`{path}` is deleted but the patch does not remove all of its lines")));
        }
        None
    } else {
        Some(out)
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
        let m = parse_mail("0002-x.patch", PATCH, 1);
        assert_eq!(m.number, Some((2, 3)));
        assert_eq!(m.subject, "KVM: do a thing");
        assert_eq!(m.claims, vec!["0123456789abcdef".to_string()]);
        let files = m.files.unwrap();
        assert_eq!(files.len(), 1);
        let out = apply_file("0002-x.patch", &files[0], Some(b"a\nb\nc\n")).unwrap().unwrap();
        assert_eq!(out, b"a\nB\nc\nd");
        // Shifted by two lines: still applies.
        let out = apply_file("0002-x.patch", &files[0], Some(b"0\n0\na\nb\nc\n")).unwrap().unwrap();
        assert_eq!(out, b"0\n0\na\nB\nc\nd");
        let e = apply_file("0002-x.patch", &files[0], Some(b"a\nX\nc\n")).unwrap_err();
        assert!(e.message.contains("hunk #1 `@@ -1,3 +1,4 @@` (line 19) does not apply to `f.c`"), "{e}");
    }

    #[test]
    fn malformed_patches_give_file_and_line() {
        let bad = PATCH.replace("-b\n+B\n", "-b\n*B\n");
        let e = parse_mail("p.patch", &bad, 1).files.unwrap_err();
        assert!(e.starts_with("p.patch:22: hunk `@@ -1,3 +1,4 @@` (line 19) expected"), "{e}");
        let bad = PATCH.replace(" c\n+d\n", "");
        let e = parse_mail("p.patch", &bad, 1).files.unwrap_err();
        assert!(e.contains("expected"), "{e}");
        let bad = PATCH.replace("a/f.c", "a/../../etc/passwd");
        assert!(parse_mail("p.patch", &bad, 1).files.is_err());
        for cut in 0..PATCH.len() {
            if PATCH.is_char_boundary(cut) {
                let _ = parse_mail("p.patch", &PATCH[..cut], 1);
            }
        }
    }
}
