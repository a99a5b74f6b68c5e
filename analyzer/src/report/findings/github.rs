//! GitHub Actions workflow commands (annotations). See the parent module.

use std::fmt::Write as _;

use super::{compact_chain, position};
use crate::check::CheckReport;
use crate::rules::Severity;

/// Escape a workflow command's message (data): `%`, CR, LF.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escape a workflow command's property value: as data, plus `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn command(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "notice",
    }
}

/// Render a report as GitHub Actions workflow commands, one annotation per
/// line: input warnings as `::warning file=F,line=L,title=kvmtk input::...`,
/// then each finding as
/// `::warning file=F,line=L,col=C,title=HW001 unguarded-list-walk::message`
/// (`::error` for errors, `::notice` for notes) whose message continues
/// with the chain `root -> ... -> site` and the related places on escaped
/// new lines.
pub fn render_github(report: &CheckReport) -> String {
    let mut out = String::new();
    for w in &report.warnings {
        let mut props = Vec::new();
        if !w.path.is_empty() {
            props.push(format!("file={}", escape_property(&w.path)));
            if let Some(l) = w.line {
                props.push(format!("line={l}"));
            }
        }
        props.push(format!("title={}", escape_property("kvmtk input")));
        let _ = writeln!(out, "::warning {}::{}", props.join(","), escape_data(&w.message));
    }
    for f in &report.findings {
        let mut props = vec![format!("file={}", escape_property(&f.file))];
        if f.line > 0 {
            props.push(format!("line={}", f.line));
            if f.col > 0 {
                props.push(format!("col={}", f.col));
            }
        }
        props.push(format!("title={}", escape_property(&format!("{} {}", f.rule, f.name))));
        let mut message = f.message.clone();
        if !f.evidence.is_empty() {
            message.push_str("\nchain: ");
            message.push_str(&compact_chain(&f.evidence));
        }
        for r in &f.related {
            let _ = write!(message, "\nrelated: {}: {}", position(&r.file, r.line, r.col), r.message);
        }
        let _ = writeln!(out, "::{} {}::{}", command(f.severity), props.join(","), escape_data(&message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_data("50%\r\nx: a, b"), "50%25%0D%0Ax: a, b");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}
