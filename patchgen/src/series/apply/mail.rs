//! Reading patches as `git am` and b4 take them: any number of patch files,
//! mboxes and format-patch directories (or `-`, standard input), split into
//! mails, MIME-decoded (base64 and quoted-printable bodies, charsets, RFC
//! 2047 headers: `mailparse` does the decoding), and put in the order of
//! their `[PATCH n/m]` numbers. Cover letters and replies are skipped; when
//! several revisions of a series are present (`[PATCH v2 ...]`,
//! `[PATCH v3 ...]`), the newest is taken. Each such decision (but the
//! skipped cover letter, always expected) is a note the caller shows, so
//! the user can see what was read.
//!
//! Inputs are bounded: a file or standard input over [`MAX_INPUT_BYTES`]
//! is refused before it is read, and so is a path that is not a regular
//! file (a FIFO or device such as `/dev/zero` would never end). Splitting
//! and parsing are linear in the input.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::super::SeriesError;
use super::{parse_diff, FilePatch};

/// The largest patch or mbox input (each file, and standard input): 64 MiB.
/// Parsing keeps a few copies of a mail, so this bounds memory to a few
/// hundred MiB; the largest patches of the kernel's history are a few MiB.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// One mail of a series.
#[derive(Debug, Clone)]
pub struct MailPatch {
    /// The file it came from (`0001-foo.patch`, or `series.mbox#N` for the
    /// patch numbered N, or the Nth mail when it has no number).
    pub name: String,
    /// `(n, N)` from `[PATCH n/N]`.
    pub number: Option<(usize, usize)>,
    /// `2` for `[PATCH v2 ...]`; 1 when no revision is written.
    pub version: u32,
    /// The subject was `Re: ...`: a reply in a thread, not a patch.
    pub reply: bool,
    /// The subject without `Re:` and the `[PATCH ...]` prefix.
    pub subject: String,
    pub author: Option<String>,
    /// The commit message after the subject.
    pub body: String,
    /// Fingerprints claimed by `Kvmtk-Fixes:` trailers.
    pub claims: Vec<String>,
    /// The file changes, or why they could not be read.
    pub files: Result<Vec<FilePatch>, String>,
    /// The whole mail text, its body decoded (for checkpatch).
    pub text: String,
}

/// What was read, in order, and what was left out and why.
#[derive(Debug, Clone, Default)]
pub struct LoadedSeries {
    pub patches: Vec<MailPatch>,
    /// One line per decision: a skipped cover letter or reply, the revision
    /// taken, a subset of a numbered series.
    pub notes: Vec<String>,
}

/// One input read into memory.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Its name in messages: the file name (`0001-x.patch`), or `stdin`.
    pub name: String,
    pub bytes: Vec<u8>,
}

fn too_big(what: &str) -> SeriesError {
    SeriesError::new(format!(
        "{what} is larger than {} MiB, the limit for a patch or mbox input; split it (git mailsplit) or lint fewer patches at once",
        MAX_INPUT_BYTES >> 20
    ))
}

/// Read at most [`MAX_INPUT_BYTES`] from `r`; more is an error.
fn read_bounded(r: impl Read, what: &str) -> Result<Vec<u8>, SeriesError> {
    let mut buf = Vec::new();
    r.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SeriesError::new(format!("cannot read {what}: {e}")))?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_big(what));
    }
    Ok(buf)
}

/// Read one patch or mbox file, or standard input for `-`. The size is
/// checked before reading; only regular files are read.
pub fn read_input(path: &Path) -> Result<InputFile, SeriesError> {
    if path == Path::new("-") {
        let bytes = read_bounded(std::io::stdin().lock(), "standard input")?;
        return Ok(InputFile { name: "stdin".into(), bytes });
    }
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| SeriesError::new(format!("cannot read `{shown}`: {e}")))?;
    if !meta.is_file() {
        return Err(SeriesError::new(format!(
            "`{shown}` is not a regular file (a FIFO, device or socket is never read); give a patch or mbox file, a format-patch directory, or `-` for standard input"
        )));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(too_big(&format!("`{shown}` ({} bytes)", meta.len())));
    }
    let f = fs::File::open(path).map_err(|e| SeriesError::new(format!("cannot read `{shown}`: {e}")))?;
    let bytes = read_bounded(f, &format!("`{shown}`"))?;
    let name = path.file_name().map_or_else(|| shown.to_string(), |n| n.to_string_lossy().into_owned());
    Ok(InputFile { name, bytes })
}

/// The `*.patch` and `*.diff` files of a directory, sorted by name.
pub fn patch_files_of(dir: &Path) -> Result<Vec<PathBuf>, SeriesError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| SeriesError::new(format!("cannot read `{}`: {e}", dir.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_some_and(|x| x == "patch" || x == "diff"))
        .collect();
    files.sort();
    Ok(files)
}

/// Read every input: files, `-`, and directories (their `*.patch` and
/// `*.diff` files, by name).
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<InputFile>, SeriesError> {
    let mut out = Vec::new();
    for path in paths {
        if path != Path::new("-") && path.is_dir() {
            for f in patch_files_of(path)? {
                out.push(read_input(&f)?);
            }
        } else {
            out.push(read_input(path)?);
        }
    }
    Ok(out)
}

/// Whether a line begins a mail in an mbox: `From <sender> <date>` with a
/// time in it, as git mailsplit requires (a commit message line starting
/// with "From " is not one).
fn is_from_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else { return false };
    let words = rest.split(|&b| b == b' ' || b == b'\t').filter(|w| !w.is_empty());
    let mut count = 0;
    let mut has_time = false;
    for w in words {
        count += 1;
        has_time |= w.len() >= 5
            && w[..5].iter().enumerate().all(|(i, &b)| if i == 2 { b == b':' } else { b.is_ascii_digit() })
            || w.len() >= 4 && w[1] == b':' && w[0].is_ascii_digit();
    }
    count >= 2 && has_time
}

/// Split an mbox into mails: a `From ` line at the start or after an empty
/// line begins a mail. Returns (1-based first line, mail) pairs; one pass,
/// no copies.
pub fn split_mbox(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let mut mails: Vec<(usize, usize, usize)> = Vec::new();
    let mut prev_empty = true;
    let mut pos = 0;
    let mut n = 0;
    while pos < bytes.len() {
        n += 1;
        let end = memchr_nl(&bytes[pos..]).map_or(bytes.len(), |i| pos + i + 1);
        let line = &bytes[pos..end];
        let bare = strip_eol(line);
        if (prev_empty && is_from_line(bare)) || mails.is_empty() {
            mails.push((n, pos, end));
        }
        if let Some(m) = mails.last_mut() {
            m.2 = end;
        }
        prev_empty = bare.is_empty();
        pos = end;
    }
    mails
        .into_iter()
        .map(|(n, a, b)| (n, &bytes[a..b]))
        .filter(|(_, m)| m.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn strip_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// A subject line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub number: Option<(usize, usize)>,
    pub version: u32,
    pub reply: bool,
    pub text: String,
}

/// `Re: [PATCH v2 3/7] subject` -> reply, v2, (3, 7), `subject`. Several
/// bracket groups (`[RFC] [PATCH 1/2]`) are read; words other than `n/m`
/// and `vN` (PATCH, RFC, RESEND, 6.1) are ignored.
pub fn parse_subject(s: &str) -> Subject {
    let mut s = s.trim();
    let mut reply = false;
    loop {
        let lower = s.get(..4).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("re: ") | Some("aw: ") => {
                reply = true;
                s = s[3..].trim_start();
            }
            _ if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) => {
                reply = true;
                s = s[3..].trim_start();
            }
            _ => break,
        }
    }
    let (mut number, mut version) = (None, 1u32);
    while let Some(rest) = s.strip_prefix('[') {
        let Some((tag, after)) = rest.split_once(']') else { break };
        for w in tag.split_whitespace() {
            if let Some((n, t)) = w.split_once('/') {
                if let (Ok(n), Ok(t)) = (n.parse(), t.parse()) {
                    number = Some((n, t));
                }
            } else if let Some(v) = w.strip_prefix(['v', 'V']).and_then(|v| v.parse().ok()) {
                version = v;
            }
        }
        s = after.trim_start();
    }
    Subject { number, version, reply, text: s.trim().to_string() }
}

/// The fingerprints of `Kvmtk-Fixes:` trailers in a message.
pub fn parse_claims(body: &str) -> Vec<String> {
    let key = format!("{}:", super::super::FIXES_TRAILER);
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

fn looks_like_header(l: &[u8]) -> bool {
    let Some(colon) = l.iter().position(|&b| b == b':') else { return false };
    colon > 0 && l[..colon].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// A decoded mail: its headers and its body as text.
struct Decoded {
    subject: String,
    from: Option<String>,
    /// The body, transfer-decoded and in UTF-8.
    body: String,
    /// Lines before the body in the input (headers and the blank line);
    /// `None` when the body was decoded (base64, quoted-printable,
    /// another charset, attachments), so its lines are not the input's.
    body_line: Option<usize>,
    /// The mail for checkpatch: headers, then the decoded body.
    text: String,
}

fn is_utf8_charset(c: &str) -> bool {
    ["utf-8", "utf8", "us-ascii", "ascii", ""].iter().any(|k| k.eq_ignore_ascii_case(c.trim()))
}

/// The text of one MIME part: transfer-decoded; converted to UTF-8 when a
/// charset other than UTF-8 is declared (the diff of a kernel patch is
/// UTF-8 or ASCII either way).
fn part_text(p: &mailparse::ParsedMail<'_>) -> String {
    if is_utf8_charset(&p.ctype.charset) {
        match p.get_body_raw() {
            Ok(raw) => String::from_utf8_lossy(&raw).into_owned(),
            Err(_) => String::from_utf8_lossy(p.raw_bytes).into_owned(),
        }
    } else {
        p.get_body().unwrap_or_else(|_| String::from_utf8_lossy(p.raw_bytes).into_owned())
    }
}

/// The text parts of a mail, depth first: the message and any patch sent
/// as an attachment (`text/x-patch`), as git mailinfo reads them.
fn text_parts(p: &mailparse::ParsedMail<'_>, out: &mut Vec<String>) {
    if p.subparts.is_empty() {
        let t = p.ctype.mimetype.to_ascii_lowercase();
        if t.starts_with("text/plain") || t.contains("x-patch") || t.contains("x-diff") || !t.contains('/') {
            out.push(part_text(p));
        }
        return;
    }
    for s in &p.subparts {
        text_parts(s, out);
    }
}

fn decode(mail: &[u8]) -> Decoded {
    let plain = |body: &[u8], body_line: usize| Decoded {
        subject: String::new(),
        from: None,
        body: String::from_utf8_lossy(body).into_owned(),
        body_line: Some(body_line),
        text: String::from_utf8_lossy(mail).into_owned(),
    };
    // An mbox `From ` line first: not a header.
    let (skip, from_line) = match mail.strip_prefix(b"From ") {
        Some(_) => (memchr_nl(mail).map_or(mail.len(), |i| i + 1), 1),
        None => (0, 0),
    };
    let rest = &mail[skip..];
    let first = strip_eol(&rest[..memchr_nl(rest).map_or(rest.len(), |i| i + 1)]);
    if !looks_like_header(first) {
        return plain(rest, from_line);
    }
    let Ok(parsed) = mailparse::parse_mail(rest) else {
        return plain(rest, from_line);
    };
    use mailparse::MailHeaderMap;
    let subject = parsed.headers.get_first_value("Subject").unwrap_or_default();
    let from = parsed.headers.get_first_value("From");
    let raw_body: &[u8] = match parsed.get_body_encoded() {
        mailparse::body::Body::Base64(b) | mailparse::body::Body::QuotedPrintable(b) => b.get_raw(),
        mailparse::body::Body::SevenBit(b) | mailparse::body::Body::EightBit(b) => b.get_raw(),
        mailparse::body::Body::Binary(b) => b.get_raw(),
    };
    // Where the body starts in `rest`: the header block's length.
    let header_len = (raw_body.as_ptr() as usize).saturating_sub(rest.as_ptr() as usize).min(rest.len());
    let header_block = &rest[..header_len];
    let header_lines = header_block.iter().filter(|&&b| b == b'\n').count();
    let encoding = parsed.headers.get_first_value("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
    let transparent = parsed.subparts.is_empty()
        && !matches!(encoding.trim(), "base64" | "quoted-printable")
        && is_utf8_charset(&parsed.ctype.charset);
    if transparent {
        return Decoded {
            subject,
            from,
            body: String::from_utf8_lossy(raw_body).into_owned(),
            body_line: Some(from_line + header_lines),
            text: String::from_utf8_lossy(mail).into_owned(),
        };
    }
    let mut parts = Vec::new();
    text_parts(&parsed, &mut parts);
    let body = parts.join("\n");
    // The headers as sent, less those describing the encoding just undone.
    let mut text = String::from_utf8_lossy(&mail[..skip]).into_owned();
    let mut dropping = false;
    for l in String::from_utf8_lossy(header_block).split_inclusive('\n') {
        if l.starts_with([' ', '\t']) {
            if !dropping {
                text.push_str(l);
            }
            continue;
        }
        let key = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        dropping = key == "content-transfer-encoding" || key == "content-type";
        if l.trim().is_empty() {
            text.push_str("Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n");
        }
        if !dropping {
            text.push_str(l);
        }
    }
    text.push_str(&body);
    Decoded { subject, from, body, body_line: None, text }
}

/// Parse one mail (or a plain diff). `first` is the 1-based line of its
/// first line in `name`. Errors in a decoded body (base64,
/// quoted-printable) name the line of the decoded body.
pub fn parse_mail(name: &str, mail: &[u8], first: usize) -> MailPatch {
    let d = decode(mail);
    let subject = parse_subject(&d.subject);
    let lines: Vec<&[u8]> =
        d.body.as_bytes().split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
    let mut i = 0;
    while i < lines.len() && lines[i] != b"---" && !lines[i].starts_with(b"diff --git ") {
        i += 1;
    }
    let body: String =
        lines[..i].iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>().join("\n");
    let (diff_name, line_of_body) = match d.body_line {
        Some(k) => (name.to_string(), first + k),
        None => (format!("{name} (decoded body)"), 1),
    };
    let files = parse_diff(&diff_name, &lines[i.min(lines.len())..], line_of_body + i);
    MailPatch {
        name: name.to_string(),
        number: subject.number,
        version: subject.version,
        reply: subject.reply,
        subject: subject.text,
        author: d.from,
        claims: parse_claims(&body),
        body,
        files,
        text: d.text,
    }
}

/// A cover letter: `[PATCH 0/N]`, or a mail with no diff whose subject
/// still has format-patch's `*** SUBJECT HERE ***`.
pub fn is_cover(m: &MailPatch) -> bool {
    m.number.is_some_and(|(n, _)| n == 0) || (m.files.as_ref().is_ok_and(|f| f.is_empty()) && m.subject.contains("***"))
}

fn describe(m: &MailPatch) -> String {
    let v = if m.version > 1 { format!("v{} ", m.version) } else { String::new() };
    match m.number {
        Some((n, t)) => format!("[PATCH {v}{n}/{t}] {}", m.subject),
        None => format!("[PATCH{}] {}", if v.is_empty() { String::new() } else { format!(" {}", v.trim()) }, m.subject),
    }
}

/// Split every input into mails, parse them, skip cover letters and
/// replies, take the newest revision, and order by patch number.
pub fn collect_series(inputs: &[InputFile]) -> Result<LoadedSeries, SeriesError> {
    let mut notes = Vec::new();
    let mut candidates: Vec<MailPatch> = Vec::new();
    for input in inputs {
        let mails = split_mbox(&input.bytes);
        let single = mails.len() == 1;
        for (k, (first, mail)) in mails.into_iter().enumerate() {
            let mut m = parse_mail(&input.name, mail, first);
            if !single {
                let n = m.number.map_or(k + 1, |n| n.0);
                m.name = format!("{}#{n}", input.name);
            }
            if m.reply {
                notes.push(format!("skipped {}: a reply (Re: {})", m.name, describe(&m)));
            } else if is_cover(&m) {
                // Expected beside any series (git format-patch --cover-letter): no note.
            } else {
                candidates.push(m);
            }
        }
    }
    // The newest revision of the series.
    let mut versions: Vec<u32> = candidates.iter().map(|m| m.version).collect();
    versions.sort_unstable();
    versions.dedup();
    if let Some(&newest) = versions.last() {
        if versions.len() > 1 {
            let left: Vec<&MailPatch> = candidates.iter().filter(|m| m.version != newest).collect();
            let older: Vec<String> = versions[..versions.len() - 1].iter().map(|v| format!("v{v}")).collect();
            notes.push(format!(
                "several revisions of the series: took v{newest}, the newest; left out {} ({} mail{})",
                older.join(", "),
                left.len(),
                if left.len() == 1 { "" } else { "s" }
            ));
            candidates.retain(|m| m.version == newest);
        }
    }
    // Two mails with the same number of the same revision cannot both apply.
    let mut numbered: Vec<(usize, &MailPatch)> = candidates.iter().filter_map(|m| m.number.map(|n| (n.0, m))).collect();
    numbered.sort_by_key(|x| x.0);
    for w in numbered.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(SeriesError::new(format!(
                "`{}` and `{}` are both {}; give each patch once",
                w[0].1.name,
                w[1].1.name,
                describe(w[0].1).split(']').next().unwrap_or("").to_string() + "]"
            )));
        }
    }
    let has_numbers = candidates.iter().any(|m| m.number.is_some());
    if has_numbers {
        if candidates.iter().any(|m| m.number.is_none()) {
            notes.push("unnumbered patches are taken after the numbered ones, in the order given".into());
        }
        // Stable: unnumbered ones keep their order, after the numbered.
        candidates.sort_by_key(|m| m.number.map_or(usize::MAX, |n| n.0));
        let total = candidates.iter().filter_map(|m| m.number.map(|n| n.1)).max().unwrap_or(0);
        let given: Vec<usize> = candidates.iter().filter_map(|m| m.number.map(|n| n.0)).collect();
        if given.len() < total {
            notes.push(format!("a subset of the series: patch{} {} of {total}", plural(given.len()), ranges(&given)));
        }
    }
    Ok(LoadedSeries { patches: candidates, notes })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "es"
    }
}

/// `1-3, 7, 9-10`.
fn ranges(nums: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
            j += 1;
        }
        out.push(if i == j { nums[i].to_string() } else { format!("{}-{}", nums[i], nums[j]) });
        i = j + 1;
    }
    out.join(", ")
}

/// Read and collect `paths` (files, mboxes, directories, `-`).
pub fn load_inputs(paths: &[PathBuf]) -> Result<LoadedSeries, SeriesError> {
    let inputs = read_inputs(paths)?;
    let loaded = collect_series(&inputs)?;
    if loaded.patches.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
        return Err(SeriesError::new(format!("no patches in {}", names.join(", "))));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        let s = parse_subject("Re: [PATCH v2 01/50] KVM: Register /dev/kvm");
        assert_eq!(
            s,
            Subject { number: Some((1, 50)), version: 2, reply: true, text: "KVM: Register /dev/kvm".into() }
        );
        let s = parse_subject("[RFC] [PATCH 6.1 3/7] x");
        assert_eq!((s.number, s.version, s.reply, s.text.as_str()), (Some((3, 7)), 1, false, "x"));
        assert!(parse_subject("RE:[PATCH] y").reply);
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        // Not a char boundary at 3 or 4: no panic.
        assert_eq!(parse_subject("ab\u{e9}c").text, "ab\u{e9}c");
        assert_eq!(parse_subject("abc\u{e9}").text, "abc\u{e9}");
    }

    #[test]
    fn mbox_from_lines() {
        assert!(is_from_line(b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001"));
        assert!(is_from_line(b"From a@b Thu Apr  7 15:13:13 2005"));
        assert!(!is_from_line(b"From the start, this was wrong."));
        let mbox =
            b"From a Mon Sep 17 00:00:00 2001\nSubject: x\n\nFrom here on\n\nFrom b Mon Sep 17 00:00:00 2001\n\n";
        let m = split_mbox(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].0, 6);
    }
}
