//! GitLab CI Code Quality reports (`artifacts:reports:codequality`), the
//! subset of the Code Climate issue format GitLab reads. See the parent
//! module.

use serde::Serialize;

use super::{compact_chain, position, warning_line, warnings_count, RenderOptions};
use crate::check::CheckReport;
use crate::hash::fnv;
use crate::rules::{Finding, Severity};

#[derive(Serialize)]
struct Issue {
    description: String,
    check_name: String,
    fingerprint: String,
    severity: &'static str,
    location: Location,
}

#[derive(Serialize)]
struct Location {
    path: String,
    lines: Lines,
}

#[derive(Serialize)]
struct Lines {
    begin: u32,
}

/// GitLab's scale: `info`, `minor`, `major`, `critical`, `blocker`.
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Note => "info",
        Severity::Warning => "major",
        Severity::Error => "critical",
    }
}

fn issue(f: &Finding, opts: &RenderOptions) -> Issue {
    let mut description = format!("{} [{} {}]", f.message, f.rule, f.name);
    if !f.evidence.is_empty() {
        description.push_str(&format!(" chain: {}", compact_chain(&f.evidence)));
    }
    for r in &f.related {
        description.push_str(&format!("; related: {}: {}", position(&opts.path(&r.file), r.line, r.col), r.message));
    }
    Issue {
        description,
        check_name: format!("kvmtk/{}", f.rule),
        fingerprint: f.fingerprint.clone(),
        severity: severity(f.severity),
        location: Location { path: opts.path(&f.file), lines: Lines { begin: f.line.max(1) } },
    }
}

/// Render a report as a GitLab Code Quality report: a JSON array of
/// issues, one per finding (`check_name` `kvmtk/HW001`, `severity` `info`
/// for notes, `major` for warnings, `critical` for errors, the kvmtk
/// fingerprint, which is stable across line shifts, so GitLab matches a
/// finding of the merge request with the same one on its target branch),
/// then, when there are input warnings, one `info` issue
/// `kvmtk/input` summarizing them at the first one's file. Lines are
/// 1-based; a finding without a line is put on line 1.
pub fn render_gitlab(report: &CheckReport, opts: &RenderOptions) -> String {
    let mut issues: Vec<Issue> = report.findings.iter().map(|f| issue(f, opts)).collect();
    if let Some(first) = report.warnings.first() {
        let mut description =
            format!("{} (what they name was skipped, the rest analyzed):", warnings_count(&report.warnings));
        for w in &report.warnings {
            description.push_str(&format!(" {};", warning_line(w, opts)));
        }
        description.pop();
        let path = report.warnings.iter().find(|w| !w.path.is_empty()).unwrap_or(first);
        issues.push(Issue {
            fingerprint: format!("{:016x}", fnv(&[description.as_bytes()])),
            description,
            check_name: "kvmtk/input".to_string(),
            severity: "info",
            location: Location {
                path: if path.path.is_empty() { ".".to_string() } else { opts.path(&path.path) },
                lines: Lines { begin: path.line.unwrap_or(1).max(1) },
            },
        });
    }
    // Serializing plain structs of strings and integers cannot fail.
    let mut out = serde_json::to_string_pretty(&issues).expect("issues serialize");
    out.push('\n');
    out
}
