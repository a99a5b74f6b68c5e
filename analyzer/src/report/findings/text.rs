//! The gcc / sparse / smatch form: `path:line:col: warning: ...` with
//! `note:` lines for the chain of reasoning. See the parent module.

use std::fmt::Write as _;

use super::{describe_step, plural, position, Counts};
use crate::check::CheckReport;

/// Render a report the way the kernel's own checkers print: input warnings
/// (`path:line: warning: ...`), then each finding as
/// `path:line:col: <severity>: message [HW001 unguarded-list-walk]` followed
/// by one `note:` per evidence step (the first marked `root:`) and per
/// related place, then a summary line
/// (`2 findings (1 error, 1 warning, 0 notes) in arches x86, arm64`).
/// No colour; editors and CI logs parse it as compiler output.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    for w in &report.warnings {
        let at = if w.path.is_empty() {
            "kvmtk".to_string()
        } else {
            match w.line {
                Some(l) => format!("{}:{l}", w.path),
                None => w.path.clone(),
            }
        };
        let _ = writeln!(out, "{at}: warning: {}", w.message);
    }
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{}: {}: {} [{} {}]",
            position(&f.file, f.line, f.col),
            f.severity.as_str(),
            f.message,
            f.rule,
            f.name
        );
        for (i, step) in f.evidence.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}: note: {}{}",
                position(&step.file, step.line, step.col),
                if i == 0 { "root: " } else { "" },
                describe_step(step)
            );
        }
        for r in &f.related {
            let _ = writeln!(out, "{}: note: {}", position(&r.file, r.line, r.col), r.message);
        }
    }
    let c = Counts::of(report);
    let arches = match report.arches.len() {
        0 => "no arch".to_string(),
        1 => format!("arch {}", report.arches[0]),
        _ => format!("arches {}", report.arches.join(", ")),
    };
    let _ = write!(
        out,
        "{} ({}, {}, {}) in {arches}",
        plural(report.findings.len(), "finding", "findings"),
        plural(c.errors, "error", "errors"),
        plural(c.warnings, "warning", "warnings"),
        plural(c.notes, "note", "notes"),
    );
    if !report.warnings.is_empty() {
        let _ = write!(out, "; {}", plural(report.warnings.len(), "input warning", "input warnings"));
    }
    out.push('\n');
    out
}
