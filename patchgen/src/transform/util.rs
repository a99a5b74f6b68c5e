//! Small helpers shared by the transformations: text positions around the
//! spans the analyzer found (line starts, indentation), a few lexical
//! look-ups the facts do not carry (struct definitions, identifier uses),
//! and commit message wrapping. Additive only: each helper is used by more
//! than one transformation or is too small to be worth a file of its own.

use analyzer::facts::{Block, Event, Stmt};
use analyzer::pipeline::ParsedTree;

/// The bytes of a file of the tree (empty when it is not there).
pub fn file_bytes<'t>(tree: &'t ParsedTree, path: &str) -> &'t [u8] {
    tree.source.file(path).map(|f| f.bytes.as_slice()).unwrap_or(&[])
}

/// Text of `start..end` (lossy).
pub fn text_of(src: &[u8], start: usize, end: usize) -> String {
    analyzer::parse::text::text(src, start, end)
}

/// Offset of the start of the line holding `pos`.
pub fn line_start(src: &[u8], pos: usize) -> usize {
    let pos = pos.min(src.len());
    src[..pos].iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0)
}

/// Offset just after the newline ending the line holding `pos` (or the end
/// of the file).
pub fn line_end_incl(src: &[u8], pos: usize) -> usize {
    let pos = pos.min(src.len());
    src[pos..].iter().position(|&b| b == b'\n').map(|i| pos + i + 1).unwrap_or(src.len())
}

/// The leading whitespace of the line holding `pos`.
pub fn indent_at(src: &[u8], pos: usize) -> String {
    let ls = line_start(src, pos);
    let n = src[ls..].iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    text_of(src, ls, ls + n)
}

/// Whether `start..end` is alone on its line(s): only whitespace before it
/// on its first line and after it on its last line.
pub fn alone_on_lines(src: &[u8], start: usize, end: usize) -> bool {
    let ls = line_start(src, start);
    let le = line_end_incl(src, end.saturating_sub(1).max(start));
    src[ls..start].iter().all(|b| b.is_ascii_whitespace())
        && src[end.min(le)..le].iter().all(|b| b.is_ascii_whitespace())
}

/// The whole lines of `start..end` (from the start of the first line to
/// just after the newline of the last), for deleting a statement.
pub fn whole_lines(src: &[u8], start: usize, end: usize) -> (usize, usize) {
    (line_start(src, start), line_end_incl(src, end.saturating_sub(1).max(start)))
}

/// The offset of the `)` matching the `(` at or after `from`.
pub fn matching_paren(src: &[u8], from: usize) -> Option<usize> {
    let open = from + src.get(from..)?.iter().position(|&b| b == b'(')?;
    analyzer::parse::mask::balanced(src, open).map(|(close, _)| close)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Offsets of the uses of identifier `ident` in `start..end` of `src`,
/// outside comments, strings and character constants.
pub fn ident_uses(src: &[u8], start: usize, end: usize, ident: &str) -> Vec<usize> {
    let end = end.min(src.len());
    let id = ident.as_bytes();
    let mut out = Vec::new();
    let mut k = start;
    while k < end {
        match src[k] {
            b'/' if src.get(k + 1) == Some(&b'*') => {
                k = src[k + 2..end].windows(2).position(|w| w == b"*/").map(|i| k + 2 + i + 2).unwrap_or(end);
            }
            b'/' if src.get(k + 1) == Some(&b'/') => k = line_end_incl(src, k),
            q @ (b'"' | b'\'') => {
                k += 1;
                while k < end && src[k] != q {
                    k += if src[k] == b'\\' { 2 } else { 1 };
                }
                k += 1;
            }
            b if is_ident_byte(b) => {
                let s = k;
                while k < end && is_ident_byte(src[k]) {
                    k += 1;
                }
                if &src[s..k] == id {
                    out.push(s);
                }
            }
            _ => k += 1,
        }
    }
    out
}

/// The body of the definition of `struct <tag> { ... }` in `src`: the
/// offsets of its `{` and `}`. Found lexically (the facts keep functions,
/// globals and initializers, not struct definitions).
pub fn struct_body(src: &[u8], tag: &str) -> Option<(usize, usize)> {
    for at in ident_uses(src, 0, src.len(), "struct") {
        let mut k = at + "struct".len();
        while k < src.len() && src[k].is_ascii_whitespace() {
            k += 1;
        }
        if !src[k..].starts_with(tag.as_bytes()) || src.get(k + tag.len()).is_some_and(|&b| is_ident_byte(b)) {
            continue;
        }
        k += tag.len();
        while k < src.len() && src[k].is_ascii_whitespace() {
            k += 1;
        }
        if src.get(k) != Some(&b'{') {
            continue;
        }
        let mut depth = 0usize;
        for (i, &b) in src.iter().enumerate().skip(k) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((k, i));
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    None
}

/// Whether a statement's text is a declaration (`unsigned int cpu = ...;`,
/// `struct foo *p = ...;`, `int r;`): a type made of identifiers (and `*`)
/// before the declared name, as opposed to an expression statement, which
/// starts with an identifier followed by an operator or a call.
pub fn is_declaration(stmt_text: &str) -> bool {
    let head = stmt_text.split(['=', ';', '(', '[']).next().unwrap_or("");
    let words: Vec<&str> = head.split(|c: char| c.is_whitespace() || c == '*').filter(|w| !w.is_empty()).collect();
    words.len() >= 2
        && words.iter().all(|w| w.bytes().all(is_ident_byte))
        && !head.contains("->")
        && !head.contains('.')
}

/// The top-level statement of `block` whose span contains `pos`.
pub fn top_stmt_at(block: &Block, pos: usize) -> Option<(usize, &Stmt)> {
    block.stmts.iter().enumerate().find(|(_, s)| {
        let sp = stmt_span(s);
        (sp.start as usize) <= pos && pos < sp.end as usize
    })
}

/// The span of any statement.
pub fn stmt_span(s: &Stmt) -> analyzer::facts::Span {
    match s {
        Stmt::Simple { span, .. }
        | Stmt::If { span, .. }
        | Stmt::Loop { span, .. }
        | Stmt::Switch { span, .. }
        | Stmt::Case { span }
        | Stmt::Return { span, .. }
        | Stmt::Goto { span, .. }
        | Stmt::Label { span, .. }
        | Stmt::Break { span }
        | Stmt::Continue { span }
        | Stmt::ScopedGuard { span, .. }
        | Stmt::Preproc { span, .. } => *span,
        Stmt::Block(b) => b.span,
    }
}

/// The events of a simple statement (empty for others).
pub fn simple_events(s: &Stmt) -> &[Event] {
    match s {
        Stmt::Simple { events, .. } => events,
        _ => &[],
    }
}

/// The spans of the `goto label;` statements in a block tree.
pub fn gotos_to(block: &Block, label: &str, out: &mut Vec<analyzer::facts::Span>) {
    for s in &block.stmts {
        match s {
            Stmt::Goto { span, label: l } if l == label => out.push(*span),
            Stmt::Block(b) => gotos_to(b, label, out),
            Stmt::If { then_branch, else_branch, .. } => {
                gotos_to(then_branch, label, out);
                if let Some(e) = else_branch {
                    gotos_to(e, label, out);
                }
            }
            Stmt::Loop { body, .. } | Stmt::Switch { body, .. } | Stmt::ScopedGuard { body, .. } => {
                gotos_to(body, label, out)
            }
            Stmt::Preproc { branches, .. } => branches.iter().for_each(|b| gotos_to(&b.body, label, out)),
            _ => {}
        }
    }
}

/// The rule that reports lock-order cycles.
pub const CYCLE_RULE: &str = "HW014";

/// Whether the lock-order rule is registered (a transformation's message
/// may then say its edits were checked).
pub fn cycle_rule_registered() -> bool {
    analyzer::rules::REGISTRY.iter().any(|r| r.id == CYCLE_RULE)
}

/// The lock-order cycles (HW014 findings) that applying `edits` to the tree
/// would introduce: the edited tree is re-parsed (only the files the edits
/// touch) and checked with that rule alone, and its findings are compared
/// by fingerprint and severity with the tree's own. A transformation that
/// must not deadlock asks this before it proposes a lock it adds or moves.
/// Empty when the rule is not registered; `Err` when the edits do not
/// apply.
pub fn introduced_cycles(
    tree: &ParsedTree,
    api: &analyzer::api::ApiModel,
    before: &analyzer::check::CheckReport,
    edits: &[crate::edit::Edit],
) -> Result<Vec<analyzer::rules::Finding>, String> {
    if !cycle_rule_registered() {
        return Ok(Vec::new());
    }
    let mut files: std::collections::BTreeMap<String, Vec<u8>> = std::collections::BTreeMap::new();
    for e in edits {
        if !files.contains_key(&e.path) {
            files.insert(e.path.clone(), file_bytes(tree, &e.path).to_vec());
        }
    }
    let new = crate::edit::apply(&files, edits).map_err(|e| e.to_string())?;
    let changes: crate::series::tree::Changes = new.into_iter().map(|(p, b)| (p, Some(b))).collect();
    let next = crate::series::tree::update_parsed(tree, &changes);
    let selection = analyzer::rules::RuleSelection { only: vec![CYCLE_RULE.to_string()], ..Default::default() };
    let after = analyzer::check::check(&next, api, &selection);
    // A cycle the tree has only at a lower severity (closed on some paths
    // only, a warning) that the edits close on every path is introduced.
    let known = analyzer::lint::worst_severities(
        before.findings.iter().filter(|f| f.rule == CYCLE_RULE).map(|f| (f.fingerprint.as_str(), f.severity)),
    );
    let mut new: Vec<analyzer::rules::Finding> =
        after.findings.into_iter().filter(|f| analyzer::lint::is_new(&known, &f.fingerprint, f.severity)).collect();
    // Errors (closed on every path) first: the one a refusal cites.
    new.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(new)
}

/// A cycle as a commit message or a refusal cites it: its message and its
/// evidence, one step a line.
pub fn describe_cycle(f: &analyzer::rules::Finding) -> String {
    let mut s = format!("{} ({}:{})", f.message, f.file, f.line);
    for r in &f.related {
        s.push_str(&format!("; {} ({}:{})", r.message, r.file, r.line));
    }
    s
}

/// Wrap a paragraph-structured text at `width` columns. Paragraphs are
/// separated by blank lines; lines starting with whitespace (code, quoted
/// lists) are kept as they are.
/// `a`, `a and b`, `a, b and c`: a list as a commit message says it.
pub fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => {
            format!("{} and {}", init.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", "), last.as_ref())
        }
    }
}

pub fn wrap(text: &str, width: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    for para in text.split("\n\n") {
        if para.lines().any(|l| l.starts_with([' ', '\t'])) {
            out.push(para.to_string());
            continue;
        }
        let mut lines: Vec<String> = Vec::new();
        let mut cur = String::new();
        for w in para.split_whitespace() {
            if !cur.is_empty() && cur.len() + 1 + w.len() > width {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
        if !cur.is_empty() {
            lines.push(cur);
        }
        out.push(lines.join("\n"));
    }
    out.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_and_statements() {
        assert!(is_declaration("unsigned int cpu = smp_processor_id();"));
        assert!(is_declaration("struct kvm_user_return_msrs *msrs = per_cpu_ptr(p, cpu);"));
        assert!(is_declaration("int err;"));
        assert!(!is_declaration("value = (value & mask);"));
        assert!(!is_declaration("msrs->values[i].host = value;"));
        assert!(!is_declaration("raw_spin_lock(&l);"));
    }

    #[test]
    fn struct_bodies_and_identifiers() {
        let src = b"/* struct foo { */\nstruct foo *p;\nstruct foo {\n\tint a; /* a */\n\tstruct { int b; } c;\n};\n";
        let (o, c) = struct_body(src, "foo").unwrap();
        assert_eq!(&src[o..=c], b"{\n\tint a; /* a */\n\tstruct { int b; } c;\n}");
        assert_eq!(ident_uses(src, 0, src.len(), "a").len(), 1);
        assert_eq!(wrap("a b c\nd", 3), "a b\nc d");
    }
}
