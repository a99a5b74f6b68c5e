//! `Documentation/virt/kvm/locking.rst`: KVM's documented locks and their
//! acquisition order.
//!
//! The reference section documents each lock as a title holding the lock
//! name in double backticks, underlined, followed by field lines:
//!
//! ```rst
//! ``kvm_count_lock``
//! ^^^^^^^^^^^^^^^^^^
//!
//! :Type:          raw_spinlock_t
//! :Arch:          any
//! :Protects:      - hardware virtualization enable/disable
//! :Comment:       'raw' because hardware enabling/disabling must be atomic /wrt
//!                 migration.
//! ```
//!
//! The "Acquisition Orders" section states the order as prose bullets
//! ("- kvm->lock is taken outside vcpu->mutex", "- kvm_usage_lock is taken
//! outside cpus_read_lock()"), grouped under paragraphs such as "On x86:".
//! Only sentences of a few fixed shapes are turned into [`LockOrdering`]s
//! (see [`LockingDoc::parse`]); the rest of the prose is ignored rather than
//! guessed at.

use serde::{Deserialize, Serialize};

/// One lock of the reference section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentedLock {
    /// Normalized name (see [`normalize_lock_name`]): `kvm_lock`,
    /// `kvm->mmu_lock`, `kvm_arch::tsc_write_lock`.
    pub name: String,
    /// The `:Type:` field as written: `mutex`, `raw_spinlock_t`,
    /// `spinlock_t or rwlock_t`, `srcu lock`.
    pub lock_type: String,
    /// The `:Arch:` field; `None` when it says `any` (including qualified
    /// forms such as "any (only needed on x86 though)") or is absent.
    pub arch: Option<String>,
    /// The `:Protects:` field, one entry per `- item` (continuation lines
    /// joined), or per comma-separated name; prose stays one entry.
    /// Double backticks are removed.
    pub protects: Vec<String>,
    /// The `:Comment:` field, continuation lines joined with spaces; empty
    /// when absent.
    pub comment: String,
    /// 1-based line of the title.
    pub line: u32,
}

/// A documented "`outer` is taken outside `inner`" relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOrdering {
    /// The lock taken first (normalized name).
    pub outer: String,
    /// The lock taken while holding `outer` (normalized name).
    pub inner: String,
    /// `Some("x86")` for bullets under an "On x86:" paragraph.
    pub arch: Option<String>,
    /// 1-based line where the sentence stating it starts.
    pub line: u32,
    /// The sentence, whitespace collapsed.
    pub text: String,
}

/// The parsed `locking.rst`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockingDoc {
    /// The documented locks, in file order.
    pub locks: Vec<DocumentedLock>,
    /// The documented orderings, in file order.
    pub orderings: Vec<LockOrdering>,
}

/// Why `locking.rst` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockingDocError {
    /// No lock entry at all: not the expected document or format.
    #[error("{path}: no lock entries found; expected titles like ``kvm_lock`` underlined with ^^^^ and followed by :Type: fields")]
    NoLocks {
        /// The file, as passed to the parser.
        path: String,
    },
    /// A lock entry without the field that says what kind of lock it is.
    #[error(
        "{path}:{line}: lock entry ``{name}`` has no :Type: field; expected a line like `:Type: mutex` after its title"
    )]
    MissingType {
        /// The file.
        path: String,
        /// The line of the entry's title.
        line: u32,
        /// The lock's name.
        name: String,
    },
}

/// Normalizes a lock name as written in the document: strips backticks,
/// a leading `&`, a trailing `()` and trailing punctuation, so
/// "``cpus_read_lock()``" and "cpus_read_lock()" both become
/// `cpus_read_lock`.
pub fn normalize_lock_name(raw: &str) -> String {
    let mut s = raw.trim().trim_matches('`').trim();
    s = s.trim_end_matches(['.', ',', ';', ':']);
    s = s.trim_matches('`');
    s = s.strip_prefix('&').unwrap_or(s);
    s = s.strip_suffix("()").unwrap_or(s);
    s.trim().to_string()
}

/// Whether a normalized name looks like a C lock expression:
/// identifiers joined by `->`, `.` or `::`.
fn is_lock_name(s: &str) -> bool {
    let mut rest = s;
    loop {
        let ident_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
        if ident_len == 0 || rest.as_bytes()[0].is_ascii_digit() {
            return false;
        }
        rest = &rest[ident_len..];
        if rest.is_empty() {
            return true;
        }
        rest = if let Some(r) = rest.strip_prefix("->").or_else(|| rest.strip_prefix("::")) {
            r
        } else if let Some(r) = rest.strip_prefix('.') {
            r
        } else {
            return false;
        };
    }
}

/// A section title: the text line and the underline character.
struct Heading {
    /// Index of the title line.
    line: usize,
    text: String,
    underline: char,
}

fn underline_char(line: &str) -> Option<char> {
    let t = line.trim_end();
    let c = t.chars().next()?;
    (t.len() >= 3 && "=-^~\"'`*+#:.".contains(c) && t.chars().all(|x| x == c)).then_some(c)
}

fn headings(lines: &[&str]) -> Vec<Heading> {
    let mut out = Vec::new();
    for i in 0..lines.len().saturating_sub(1) {
        let text = lines[i].trim();
        if text.is_empty() || lines[i].starts_with([' ', '\t']) || underline_char(lines[i]).is_some() {
            continue;
        }
        if let Some(c) = underline_char(lines[i + 1]) {
            out.push(Heading { line: i, text: text.to_string(), underline: c });
        }
    }
    out
}

/// A field line `:Name: value`.
fn field(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let name = &rest[..end];
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '_'))
        .then(|| (name, rest[end + 1..].trim()))
}

impl LockingDoc {
    /// Parses the text of `locking.rst`. `path` only names the file in
    /// errors.
    ///
    /// Orderings are read from bullets of the section whose title mentions
    /// "acquisition order" or "lock order", from sentences shaped
    /// "A [and B] is/are taken outside (of) C [and D]",
    /// "A [and B] is/are taken inside (of) C", and
    /// "critical sections for A [and B] must also take C" (6.12's wording
    /// for the x86 MMU locks). Every name must look like a lock
    /// (identifiers joined by `->`, `.`, `::`, optionally `()`), otherwise
    /// the sentence is skipped.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<LockingDoc, LockingDocError> {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().collect();
        let heads = headings(&lines);
        let mut doc = LockingDoc::default();

        // Levels are the order in which underline characters first appear,
        // as in reStructuredText itself.
        let mut levels: Vec<char> = Vec::new();
        for h in &heads {
            if !levels.contains(&h.underline) {
                levels.push(h.underline);
            }
        }
        let level = |c: char| levels.iter().position(|&x| x == c).unwrap_or(0);

        for (k, h) in heads.iter().enumerate() {
            let body_start = h.line + 2;
            let body_end = heads.get(k + 1).map_or(lines.len(), |n| n.line);
            if let Some(name) = lock_title(&h.text) {
                doc.locks.push(parse_entry(path, &name, h.line, &lines[body_start.min(body_end)..body_end])?);
                continue;
            }
            let title = h.text.to_ascii_lowercase();
            if title.contains("acquisition order") || title.contains("lock order") {
                // The section runs to the next heading of the same or a
                // higher level, so subsections stay inside it.
                let end = heads[k + 1..]
                    .iter()
                    .find(|n| level(n.underline) <= level(h.underline))
                    .map_or(lines.len(), |n| n.line);
                parse_orderings(&lines[body_start..end], body_start, &mut doc.orderings);
            }
        }
        if doc.locks.is_empty() {
            return Err(LockingDocError::NoLocks { path: path.to_string() });
        }
        Ok(doc)
    }

    /// The documented lock named `name` (normalized).
    pub fn lock(&self, name: &str) -> Option<&DocumentedLock> {
        self.locks.iter().find(|l| l.name == name)
    }
}

/// The lock name of a title made of one double-backticked literal.
fn lock_title(title: &str) -> Option<String> {
    let inner = title.strip_prefix("``")?.strip_suffix("``")?;
    if inner.contains('`') {
        return None;
    }
    let name = normalize_lock_name(inner);
    (!name.is_empty()).then_some(name)
}

fn parse_entry(path: &str, name: &str, title_line: usize, body: &[&str]) -> Result<DocumentedLock, LockingDocError> {
    // Each field: its name and its value lines (first line, then
    // continuation lines, trimmed).
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    let mut open = false;
    for line in body {
        if line.trim().is_empty() {
            open = false;
        } else if let Some((fname, value)) = field(line) {
            fields.push((fname.to_string(), vec![value.to_string()]));
            open = true;
        } else if open && line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(line.trim().to_string());
            }
        } else {
            open = false;
        }
    }
    let get = |n: &str| {
        fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.iter().filter(|l| !l.is_empty()).cloned().collect::<Vec<_>>())
    };
    let lock_type = get("Type").map(|v| v.join(" ")).filter(|t| !t.is_empty());
    let Some(lock_type) = lock_type else {
        return Err(LockingDocError::MissingType {
            path: path.to_string(),
            line: line_no(title_line),
            name: name.to_string(),
        });
    };
    let arch = get("Arch").map(|v| v.join(" ")).filter(|a| {
        let a = a.trim();
        !(a.is_empty() || a == "any" || a.starts_with("any ") || a.starts_with("any("))
    });
    Ok(DocumentedLock {
        name: name.to_string(),
        lock_type,
        arch,
        protects: get("Protects").map(|v| protects_items(&v)).unwrap_or_default(),
        comment: get("Comment").map(|v| collapse(&v.join(" "))).unwrap_or_default(),
        line: line_no(title_line),
    })
}

fn line_no(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Collapses runs of whitespace to one space: joined prose lines keep the
/// document's double spaces after full stops otherwise.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strip_literals(s: &str) -> String {
    collapse(&s.replace("``", ""))
}

/// Splits a `:Protects:` value into items.
fn protects_items(lines: &[String]) -> Vec<String> {
    if lines.iter().any(|l| l.starts_with('-')) {
        let mut items: Vec<String> = Vec::new();
        for l in lines {
            if let Some(item) = l.strip_prefix('-') {
                items.push(item.trim().to_string());
            } else if let Some(last) = items.last_mut() {
                last.push(' ');
                last.push_str(l);
            } else {
                items.push(l.clone());
            }
        }
        return items.iter().map(|i| strip_literals(i)).filter(|i| !i.is_empty()).collect();
    }
    let joined = strip_literals(&lines.join(" "));
    // "a, b" is a list of names; a comma inside braces
    // (`kvm_arch::{a,b}`) or in prose is not a separator.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in joined.char_indices() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(joined[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(joined[start..].trim().to_string());
    if parts.len() > 1 && parts.iter().all(|p| !p.is_empty() && !p.contains(char::is_whitespace)) {
        parts
    } else if joined.trim().is_empty() {
        Vec::new()
    } else {
        vec![joined.trim().to_string()]
    }
}

/// Reads the bullets of the ordering section.
fn parse_orderings(lines: &[&str], first: usize, out: &mut Vec<LockOrdering>) {
    let mut arch: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if let Some(item) = trimmed.strip_prefix("- ").or_else(|| (trimmed == "-").then_some("")) {
            // A bullet and its continuation lines (indented, up to a blank
            // line or the next bullet), each piece remembering its line.
            let indent = line.len() - line.trim_start().len();
            let mut pieces: Vec<(usize, &str)> = vec![(first + i, item)];
            i += 1;
            while i < lines.len() {
                let l = lines[i];
                let t = l.trim();
                let l_indent = l.len() - l.trim_start().len();
                if t.is_empty() || l_indent <= indent || t.starts_with("- ") {
                    break;
                }
                pieces.push((first + i, t));
                i += 1;
            }
            orderings_in_bullet(&pieces, arch.as_deref(), out);
            continue;
        }
        if !trimmed.is_empty() && !line.starts_with([' ', '\t']) && trimmed.ends_with(':') && !trimmed.ends_with("::") {
            // A paragraph introducing the next bullets: "On x86:" scopes
            // them to an architecture, any other ("For SRCU:") ends that.
            arch = trimmed
                .strip_prefix("On ")
                .map(|a| a.trim_end_matches(':').trim().to_string())
                .filter(|a| is_lock_name(a));
        }
        i += 1;
    }
}

/// Finds the orderings stated by one bullet's sentences.
fn orderings_in_bullet(pieces: &[(usize, &str)], arch: Option<&str>, out: &mut Vec<LockOrdering>) {
    // Join the pieces with single spaces, remembering where each line
    // starts in the joined text to give every sentence its own line.
    let mut text = String::new();
    let mut starts: Vec<(usize, usize)> = Vec::new();
    for (line, piece) in pieces {
        if !text.is_empty() {
            text.push(' ');
        }
        starts.push((text.len(), *line));
        text.push_str(&piece.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let line_at = |offset: usize| starts.iter().rev().find(|(s, _)| *s <= offset).map_or(0, |(_, l)| *l);
    for (offset, sentence) in clauses(&text) {
        for (outer, inner) in sentence_orderings(sentence) {
            out.push(LockOrdering {
                outer,
                inner,
                arch: arch.map(str::to_string),
                line: line_no(line_at(offset)),
                text: sentence.to_string(),
            });
        }
    }
}

/// Splits text into clauses at ". " and "; ", with their byte offsets.
fn clauses(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    for i in 0..b.len() {
        if (b[i] == b'.' || b[i] == b';') && b.get(i + 1) == Some(&b' ') {
            out.push((start, text[start..=i].trim()));
            start = i + 1;
        }
    }
    out.push((start, text[start..].trim()));
    out.into_iter()
        .map(|(s, c)| (s + text[s..].len() - text[s..].trim_start().len(), c))
        .filter(|(_, c)| !c.is_empty())
        .collect()
}

/// Splits "a, b and c" into normalized names; `None` if any part is not a
/// lock name.
fn name_list(s: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for part in s.split(", ").flat_map(|p| p.split(" and ")) {
        let n = normalize_lock_name(part);
        if !is_lock_name(&n) {
            return None;
        }
        names.push(n);
    }
    (!names.is_empty()).then_some(names)
}

/// The object of a relation: the text after the verb up to the first
/// comma (what follows is commentary: "..., though acquiring them together
/// is quite rare").
fn object_list(s: &str) -> Option<Vec<String>> {
    let s = s.strip_prefix("of ").unwrap_or(s);
    let s = s.split(',').next().unwrap_or(s);
    name_list(s.trim().trim_end_matches(['.', ';']))
}

fn sentence_orderings(sentence: &str) -> Vec<(String, String)> {
    let body = sentence.trim_end_matches(['.', ';']);
    let mut pairs = Vec::new();
    for verb in [" is taken outside ", " are taken outside ", " is taken inside ", " are taken inside "] {
        let Some(pos) = body.find(verb) else { continue };
        let (Some(subject), Some(object)) = (name_list(&body[..pos]), object_list(&body[pos + verb.len()..])) else {
            continue;
        };
        let outside = verb.contains("outside");
        for s in &subject {
            for o in &object {
                pairs.push(if outside { (s.clone(), o.clone()) } else { (o.clone(), s.clone()) });
            }
        }
        return pairs;
    }
    let lower = body.to_ascii_lowercase();
    if let (Some(a), Some(b)) = (lower.find("critical sections for "), lower.find(" must also take ")) {
        let subject_start = a + "critical sections for ".len();
        if subject_start <= b {
            if let (Some(subject), Some(object)) =
                (name_list(&body[subject_start..b]), object_list(&body[b + " must also take ".len()..]))
            {
                for s in &subject {
                    for o in &object {
                        pairs.push((o.clone(), s.clone()));
                    }
                }
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_lock_name("``cpus_read_lock()``"), "cpus_read_lock");
        assert_eq!(normalize_lock_name("&kvm->srcu"), "kvm->srcu");
        assert!(is_lock_name("kvm->arch.hyperv.hv_lock"));
        assert!(is_lock_name("kvm_arch::tsc_write_lock"));
        assert!(!is_lock_name("a kvm->srcu read-side critical section"));
        assert!(!is_lock_name(""));
    }

    #[test]
    fn sentences() {
        assert_eq!(
            sentence_orderings("kvm->lock is taken outside kvm->slots_lock and kvm->irq_lock"),
            [("kvm->lock".into(), "kvm->slots_lock".into()), ("kvm->lock".into(), "kvm->irq_lock".into())]
        );
        assert_eq!(
            sentence_orderings("kvm->a and kvm->b are taken inside kvm->c, and cannot be taken otherwise."),
            [("kvm->c".into(), "kvm->a".into()), ("kvm->c".into(), "kvm->b".into())]
        );
        assert!(sentence_orderings("Taking cpus_read_lock() outside of kvm_lock is problematic").is_empty());
    }
}
