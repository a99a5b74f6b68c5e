//! `git format-patch` rendering: per-file unified diffs with git's headers
//! (through libgit2's xdiff, so hunks are git's), the diffstat in git's
//! exact wording and alignment (`--stat=72`, as format-patch uses), mail
//! headers folded as git folds them, and RFC 2822 dates.

use std::fmt::Write as _;
use std::path::Path;

use git2::{DiffOptions, ObjectType, Oid, Patch};
use serde::Serialize;

use super::SeriesError;

/// The width `git format-patch` gives the diffstat (MAIL_DEFAULT_WRAP).
const STAT_WIDTH: usize = 72;
/// The width git folds mail headers at.
const HEADER_WIDTH: usize = 78;

/// The git blob id of some contents.
pub fn blob_id(bytes: &[u8]) -> String {
    Oid::hash_object(ObjectType::Blob, bytes).map(|o| o.to_string()).unwrap_or_else(|_| "0".repeat(40))
}

/// One file's change, rendered as git renders it.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// Full blob ids (`None` for a created / deleted file).
    pub old_id: Option<String>,
    pub new_id: Option<String>,
    /// Octal mode as git writes it (`100644`).
    pub mode: String,
    pub added: usize,
    pub deleted: usize,
    /// `diff --git ...` through the last hunk line, newline-terminated.
    pub text: String,
}

/// Diff one file. `old`/`new` are `None` for a created / deleted file.
pub fn diff_file(path: &str, old: Option<&[u8]>, new: Option<&[u8]>, mode: &str) -> Result<FileDiff, SeriesError> {
    let mut opts = DiffOptions::new();
    opts.context_lines(3).interhunk_lines(0).indent_heuristic(true);
    let p = Path::new(path);
    let patch = Patch::from_buffers(old.unwrap_or(b""), Some(p), new.unwrap_or(b""), Some(p), Some(&mut opts))
        .map_err(|e| SeriesError::new(format!("{path}: cannot diff: {}", e.message())))?;
    let old_id = old.map(blob_id);
    let new_id = new.map(blob_id);
    let abbrev = |id: &Option<String>| id.as_deref().map(|s| s[..7].to_string()).unwrap_or_else(|| "0000000".into());
    let mut text = format!("diff --git a/{path} b/{path}\n");
    match (old, new) {
        (None, Some(_)) => {
            let _ = writeln!(text, "new file mode {mode}\nindex {}..{}", abbrev(&old_id), abbrev(&new_id));
            let _ = writeln!(text, "--- /dev/null\n+++ b/{path}");
        }
        (Some(_), None) => {
            let _ = writeln!(text, "deleted file mode {mode}\nindex {}..{}", abbrev(&old_id), abbrev(&new_id));
            let _ = writeln!(text, "--- a/{path}\n+++ /dev/null");
        }
        _ => {
            let _ = writeln!(text, "index {}..{} {mode}", abbrev(&old_id), abbrev(&new_id));
            let _ = writeln!(text, "--- a/{path}\n+++ b/{path}");
        }
    }
    let (mut added, mut deleted) = (0, 0);
    for h in 0..patch.num_hunks() {
        let (hunk, lines) = patch.hunk(h).map_err(|e| SeriesError::new(format!("{path}: {}", e.message())))?;
        text.push_str(&String::from_utf8_lossy(hunk.header()));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        for l in 0..lines {
            let line = patch.line_in_hunk(h, l).map_err(|e| SeriesError::new(format!("{path}: {}", e.message())))?;
            let origin = line.origin();
            match origin {
                '+' => added += 1,
                '-' => deleted += 1,
                ' ' => {}
                // End-of-file newline markers: rendered below from the content.
                _ => continue,
            }
            text.push(origin);
            let content = String::from_utf8_lossy(line.content());
            text.push_str(&content);
            if !content.ends_with('\n') {
                text.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    Ok(FileDiff { path: path.to_string(), old_id, new_id, mode: mode.to_string(), added, deleted, text })
}

fn decimal_width(n: usize) -> usize {
    n.to_string().len()
}

fn scale_linear(it: usize, width: usize, max_change: usize) -> usize {
    if it == 0 {
        return 0;
    }
    1 + (it * (width - 1) / max_change)
}

/// git's diffstat (`git diff --stat=72`, what format-patch writes): one
/// line per file and the summary line, each newline-terminated.
pub fn diffstat(files: &[(&str, usize, usize)]) -> String {
    let mut out = String::new();
    let max_len = files.iter().map(|f| f.0.chars().count()).max().unwrap_or(0);
    let max_change = files.iter().map(|f| f.1 + f.2).max().unwrap_or(0);
    let number_width = decimal_width(max_change);
    let width = STAT_WIDTH.max(16 + 6 + number_width);
    let mut graph_width = max_change;
    let mut name_width = max_len;
    if name_width + number_width + 6 + graph_width > width {
        if graph_width as isize > (width * 3 / 8) as isize - number_width as isize - 6 {
            graph_width = ((width * 3 / 8) as isize - number_width as isize - 6).max(6) as usize;
        }
        if name_width > width - number_width - 6 - graph_width {
            name_width = width - number_width - 6 - graph_width;
        } else {
            graph_width = width - number_width - 6 - name_width;
        }
    }
    for &(name, added, deleted) in files {
        let chars: Vec<char> = name.chars().collect();
        let (prefix, shown): (&str, String) = if name_width < chars.len() {
            let len = name_width.saturating_sub(3);
            let tail: String = chars[chars.len() - len..].iter().collect();
            let shown = match tail.find('/') {
                Some(i) => tail[i..].to_string(),
                None => tail,
            };
            ("...", shown)
        } else {
            ("", name.to_string())
        };
        let len = if prefix.is_empty() { name_width } else { name_width.saturating_sub(3) };
        let padding = len.saturating_sub(shown.chars().count());
        let total = added + deleted;
        let _ = write!(
            out,
            " {prefix}{shown}{:padding$} | {total:>number_width$}{}",
            "",
            if total > 0 { " " } else { "" },
            padding = padding
        );
        let (mut add, mut del) = (added, deleted);
        if graph_width <= max_change {
            let mut t = scale_linear(add + del, graph_width, max_change);
            if t < 2 && add > 0 && del > 0 {
                t = 2;
            }
            if add < del {
                add = scale_linear(add, graph_width, max_change);
                del = t - add;
            } else {
                del = scale_linear(del, graph_width, max_change);
                add = t - del;
            }
        }
        out.push_str(&"+".repeat(add));
        out.push_str(&"-".repeat(del));
        out.push('\n');
    }
    let ins: usize = files.iter().map(|f| f.1).sum();
    let del: usize = files.iter().map(|f| f.2).sum();
    out.push_str(&summary_line(files.len(), ins, del));
    out
}

/// ` 2 files changed, 13 insertions(+), 12 deletions(-)`.
pub fn summary_line(files: usize, ins: usize, del: usize) -> String {
    if files == 0 {
        return " 0 files changed\n".into();
    }
    let mut s = format!(" {files} file{} changed", if files == 1 { "" } else { "s" });
    if ins > 0 || del == 0 {
        let _ = write!(s, ", {ins} insertion{}(+)", if ins == 1 { "" } else { "s" });
    }
    if del > 0 || ins == 0 {
        let _ = write!(s, ", {del} deletion{}(-)", if del == 1 { "" } else { "s" });
    }
    s.push('\n');
    s
}

/// git's `strbuf_add_wrapped_text` for one line of words: the text is
/// appended at column `start_col` of the current line, continuation lines
/// are indented by `indent2` spaces, lines are at most `width` columns.
pub fn wrap_words(start_col: usize, text: &str, indent2: usize, width: usize) -> String {
    let mut out = String::new();
    let mut col = start_col;
    let mut line_start = true;
    let mut first_line = true;
    for word in text.split(' ') {
        let w = word.chars().count();
        let sep = usize::from(!line_start);
        if col + sep + w <= width || (line_start && !first_line) {
            if !line_start {
                out.push(' ');
            }
            out.push_str(word);
            col += sep + w;
            line_start = false;
        } else {
            out.push('\n');
            out.push_str(&" ".repeat(indent2));
            out.push_str(word);
            col = indent2 + w;
            first_line = false;
            line_start = false;
        }
    }
    out
}

fn needs_rfc2047(s: &str) -> bool {
    !s.is_ascii() || s.contains("=?")
}

fn rfc2047_special(b: u8, address: bool) -> bool {
    if !b.is_ascii() || !(0x20..0x7f).contains(&b) || b == b'=' || b == b'?' || b == b'_' {
        return true;
    }
    address && !(b.is_ascii_alphanumeric() || matches!(b, b'!' | b'*' | b'+' | b'-' | b'/'))
}

/// git's `add_rfc2047` (UTF-8, q-encoding), continuing a line already
/// `line_len` columns long.
fn rfc2047(line_len: usize, s: &str, address: bool) -> String {
    const MAX: usize = 76;
    let mut out = String::from("=?UTF-8?q?");
    let mut len = line_len + 10;
    for ch in s.chars() {
        let mut buf = [0u8; 4];
        let bytes = ch.encode_utf8(&mut buf).as_bytes();
        let special = bytes.len() > 1 || rfc2047_special(bytes[0], address);
        let enc_len = if special { 3 * bytes.len() } else { 1 };
        if len + enc_len + 2 > MAX {
            out.push_str("?=\n =?UTF-8?q?");
            len = 11;
        }
        for b in bytes {
            if special {
                let _ = write!(out, "={b:02X}");
            } else {
                out.push(*b as char);
            }
        }
        len += enc_len;
    }
    out.push_str("?=");
    out
}

/// `Subject: [PATCH n/N] title`, folded as git folds it.
pub fn subject_header(prefix: &str, title: &str) -> String {
    let head = format!("Subject: {prefix}");
    if needs_rfc2047(title) {
        format!("{head}{}\n", rfc2047(head.len(), title, false))
    } else {
        format!("{head}{}\n", wrap_words(head.len(), title, 1, HEADER_WIDTH))
    }
}

/// An author: `Name <mail>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    /// Parse `Name <mail>`.
    pub fn parse(s: &str) -> Result<Author, SeriesError> {
        let s = s.trim();
        let bad = || SeriesError::new(format!("invalid author `{s}`: expected `Name <mail@example.org>`"));
        let (name, rest) = s.split_once('<').ok_or_else(bad)?;
        let email = rest.strip_suffix('>').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() || email.is_empty() || email.contains(['<', '>', ' ']) || name.contains(['<', '>', '\n']) {
            return Err(bad());
        }
        Ok(Author { name: name.to_string(), email: email.to_string() })
    }

    /// The `From:` header as git writes it (quoted, encoded or folded).
    pub fn from_header(&self) -> String {
        let mut s = String::from("From: ");
        let name = &self.name;
        let mut max = HEADER_WIDTH;
        if needs_rfc2047(name) {
            s.push_str(&rfc2047(s.len(), name, true));
            max = 76;
        } else if name.contains(['(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '.', '"']) {
            let mut q = String::from("\"");
            for c in name.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            s.push_str(&wrap_words(6, &q, 1, HEADER_WIDTH));
        } else {
            s.push_str(&wrap_words(6, name, 1, HEADER_WIDTH));
        }
        let last = s.rsplit('\n').next().map_or(0, |l| l.len());
        if max < last + 2 + self.email.len() + 1 {
            s.push('\n');
        }
        let _ = writeln!(s, " <{}>", self.email);
        s
    }
}

impl std::fmt::Display for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

/// A mail date: seconds since the epoch and the zone offset in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MailDate {
    pub epoch: i64,
    pub offset_minutes: i32,
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl MailDate {
    /// Now, in UTC.
    pub fn now() -> MailDate {
        let epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        MailDate { epoch, offset_minutes: 0 }
    }

    /// Parse an RFC 2822 date: `[Thu, ]7 Apr 2005 15:13:13 -0700`.
    pub fn parse(s: &str) -> Result<MailDate, SeriesError> {
        let bad = |what: &str| {
            SeriesError::new(format!(
                "invalid date `{s}`: {what}; expected RFC 2822 like `Thu, 7 Apr 2005 15:13:13 -0700`"
            ))
        };
        let t = s.trim();
        let t = match t.split_once(',') {
            Some((day, rest)) if DAYS.contains(&day.trim()) => rest,
            Some(_) => return Err(bad("unknown day name")),
            None => t,
        };
        let parts: Vec<&str> = t.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(bad("expected day, month, year, time and zone"));
        }
        let day: i64 = parts[0].parse().map_err(|_| bad("bad day of month"))?;
        let month =
            MONTHS.iter().position(|m| m.eq_ignore_ascii_case(parts[1])).ok_or_else(|| bad("bad month"))? as i64 + 1;
        let year: i64 = parts[2].parse().map_err(|_| bad("bad year"))?;
        let hms: Vec<i64> =
            parts[3].split(':').map(|x| x.parse().map_err(|_| bad("bad time"))).collect::<Result<_, _>>()?;
        if !(hms.len() == 2 || hms.len() == 3) || hms[0] > 23 || hms[1] > 59 || hms.get(2).copied().unwrap_or(0) > 60 {
            return Err(bad("bad time"));
        }
        if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) {
            return Err(bad("date out of range"));
        }
        let z = parts[4];
        let (sign, digits) = match z.as_bytes().first() {
            Some(b'+') => (1, &z[1..]),
            Some(b'-') => (-1, &z[1..]),
            _ if z == "GMT" || z == "UT" || z == "UTC" => (1, "0000"),
            _ => return Err(bad("bad zone (use +hhmm or -hhmm)")),
        };
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("bad zone (use +hhmm or -hhmm)"));
        }
        let zh: i32 = digits[..2].parse().unwrap_or(0);
        let zm: i32 = digits[2..].parse().unwrap_or(0);
        let offset = sign * (zh * 60 + zm);
        let local =
            days_from_civil(year, month, day) * 86400 + hms[0] * 3600 + hms[1] * 60 + hms.get(2).copied().unwrap_or(0);
        Ok(MailDate { epoch: local - i64::from(offset) * 60, offset_minutes: offset })
    }
}

impl std::fmt::Display for MailDate {
    /// `Thu, 7 Apr 2005 15:13:13 -0700`, as git writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let local = self.epoch + i64::from(self.offset_minutes) * 60;
        let days = local.div_euclid(86400);
        let secs = local.rem_euclid(86400);
        let (y, m, d) = civil_from_days(days);
        let wd = DAYS[days.rem_euclid(7) as usize];
        let off = self.offset_minutes.abs();
        write!(
            f,
            "{wd}, {d} {} {y} {:02}:{:02}:{:02} {}{:02}{:02}",
            MONTHS[(m - 1) as usize],
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            if self.offset_minutes < 0 { '-' } else { '+' },
            off / 60,
            off % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let d = MailDate::parse("Thu, 7 Apr 2005 15:13:13 -0700").unwrap();
        assert_eq!(d.to_string(), "Thu, 7 Apr 2005 15:13:13 -0700");
        assert_eq!(d.epoch, 1112911993);
        assert_eq!(MailDate::parse("1 Jan 2024 00:00:00 +0000").unwrap().to_string(), "Mon, 1 Jan 2024 00:00:00 +0000");
        assert!(MailDate::parse("yesterday").is_err());
        assert!(MailDate::parse("Thu, 7 Foo 2005 15:13:13 -0700").is_err());
    }

    #[test]
    fn summary_wording() {
        assert_eq!(summary_line(1, 1, 0), " 1 file changed, 1 insertion(+)\n");
        assert_eq!(summary_line(2, 0, 3), " 2 files changed, 3 deletions(-)\n");
        assert_eq!(summary_line(1, 0, 0), " 1 file changed, 0 insertions(+), 0 deletions(-)\n");
    }

    #[test]
    fn subjects_fold_like_git() {
        let s = subject_header(
            "[PATCH 1/1] ",
            "KVM: x86: A very long subject line that will need to be folded because it is longer than seventy-eight",
        );
        assert_eq!(
            s,
            "Subject: [PATCH 1/1] KVM: x86: A very long subject line that will need to be\n folded because it is longer than seventy-eight\n"
        );
        let a = Author::parse("Seed d2de2b5b maintainers <maintainers@users.noreply.r-seed-d2de2b5b.example>").unwrap();
        assert_eq!(
            a.from_header(),
            "From: Seed d2de2b5b maintainers\n <maintainers@users.noreply.r-seed-d2de2b5b.example>\n"
        );
        assert_eq!(Author::parse("J. Doe <j@x>").unwrap().from_header(), "From: \"J. Doe\" <j@x>\n");
        assert!(Author::parse("nobody").is_err());
    }
}
