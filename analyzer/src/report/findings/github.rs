//! GitHub Actions workflow commands (annotations). See the parent module.

use std::fmt::Write as _;

use super::{compact_chain, plural, position, rule_summary, warning_line, warnings_count, Counts, RenderOptions};
use crate::check::CheckReport;
use crate::rules::Severity;

/// How many annotations of each level (error, warning, notice) GitHub
/// shows for one step; the log keeps the others.
const SHOWN_PER_LEVEL: usize = 10;

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

/// [`render_github_with`] with tree-relative paths.
pub fn render_github(report: &CheckReport) -> String {
    render_github_with(report, &RenderOptions::default())
}

/// Render a report as GitHub Actions workflow commands, one annotation per
/// line: each finding as
/// `::warning file=F,line=L,col=C,title=HW001 unguarded-list-walk::message`
/// (`::error` for errors, `::notice` for notes) whose message continues
/// with the chain `root -> ... -> site` and the related places on escaped
/// new lines; then the input warnings summarized in one
/// `::notice title=kvmtk input::` annotation listing them; then one
/// `::notice title=kvmtk summary::` with the counts per rule. GitHub shows
/// only the first 10 annotations of each level of a step: the findings
/// come first, and the input warnings are one notice, so that they never
/// hide a finding.
pub fn render_github_with(report: &CheckReport, opts: &RenderOptions) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let mut props = vec![format!("file={}", escape_property(&opts.path(&f.file)))];
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
            let _ = write!(message, "\nrelated: {}: {}", position(&opts.path(&r.file), r.line, r.col), r.message);
        }
        let _ = writeln!(out, "::{} {}::{}", command(f.severity), props.join(","), escape_data(&message));
    }
    if !report.warnings.is_empty() {
        let mut message =
            format!("{} (what they name was skipped, the rest analyzed):", warnings_count(&report.warnings));
        for w in &report.warnings {
            message.push('\n');
            message.push_str(&warning_line(w, opts));
        }
        let _ = writeln!(out, "::notice title={}::{}", escape_property("kvmtk input"), escape_data(&message));
    }
    if let Some(by_rule) = rule_summary(report) {
        let c = Counts::of(report);
        let mut message = format!(
            "{} ({}, {}, {}); {by_rule}",
            plural(report.findings.len(), "finding", "findings"),
            plural(c.errors, "error", "errors"),
            plural(c.warnings, "warning", "warnings"),
            plural(c.notes, "note", "notes"),
        );
        if [c.errors, c.warnings, c.notes].iter().any(|&n| n > SHOWN_PER_LEVEL) {
            message.push_str(&format!(
                "\nGitHub shows the first {SHOWN_PER_LEVEL} annotations of each level of a step: the log lists them all"
            ));
        }
        let _ = writeln!(out, "::notice title={}::{}", escape_property("kvmtk summary"), escape_data(&message));
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
