//! The gcc / sparse / smatch form: `path:line:col: warning: ...` with
//! `note:` lines for the chain of reasoning. See the parent module.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::{describe_step, plural, position, rule_summary, warning_line, warnings_count, Counts, RenderOptions};
use crate::check::CheckReport;
use crate::rules::Severity;

/// gcc's colours: the location bold, the severity bold in its colour, the
/// rule tag like a warning option.
struct Palette {
    location: Style,
    error: Style,
    warning: Style,
    note: Style,
}

impl Palette {
    fn new(color: bool) -> Palette {
        if !color {
            return Palette { location: Style::new(), error: Style::new(), warning: Style::new(), note: Style::new() };
        }
        let bold = Style::new().bold();
        Palette {
            location: bold,
            error: bold.fg_color(Some(AnsiColor::Red.into())),
            warning: bold.fg_color(Some(AnsiColor::Magenta.into())),
            note: bold.fg_color(Some(AnsiColor::Cyan.into())),
        }
    }

    fn severity(&self, s: Severity) -> Style {
        match s {
            Severity::Error => self.error,
            Severity::Warning => self.warning,
            Severity::Note => self.note,
        }
    }
}

/// `text` in `style` (nothing added for the plain style).
fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// [`render_text_with`] with the default options: tree-relative paths, no
/// colour, every note and summary.
pub fn render_text(report: &CheckReport) -> String {
    render_text_with(report, &RenderOptions::default())
}

/// Render the findings the way the kernel's own checkers print them: each
/// finding as `path:line:col: <severity>: message [HW001
/// unguarded-list-walk]` followed by one `note:` per evidence step (the
/// first marked `root:`) and per related place, then the per-rule line
/// (`by rule: HW001 unguarded-list-walk 1, HW007 sleep-in-atomic 1`) and
/// the summary line (`2 findings (1 error, 1 warning, 0 notes) in arches
/// x86, arm64; 1 input warning`). With `opts.quiet`, the finding lines
/// only. The input warnings themselves are not here: they go to standard
/// error ([`render_warnings`]), so that each is printed once and a finding
/// is never pushed off a screen by them.
pub fn render_text_with(report: &CheckReport, opts: &RenderOptions) -> String {
    let palette = Palette::new(opts.color);
    let mut out = String::new();
    for f in &report.findings {
        let sev = palette.severity(f.severity);
        let _ = writeln!(
            out,
            "{}: {} {} {}",
            paint(palette.location, &position(&opts.path(&f.file), f.line, f.col)),
            paint(sev, &format!("{}:", f.severity.as_str())),
            f.message,
            paint(sev, &format!("[{} {}]", f.rule, f.name)),
        );
        if opts.quiet {
            continue;
        }
        for (i, step) in f.evidence.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}: {} {}{}",
                paint(palette.location, &position(&opts.path(&step.file), step.line, step.col)),
                paint(palette.note, "note:"),
                if i == 0 { "root: " } else { "" },
                describe_step(step)
            );
        }
        for r in &f.related {
            let _ = writeln!(
                out,
                "{}: {} {}",
                paint(palette.location, &position(&opts.path(&r.file), r.line, r.col)),
                paint(palette.note, "note:"),
                r.message
            );
        }
    }
    if opts.quiet {
        return out;
    }
    if let Some(line) = rule_summary(report) {
        out.push_str(&line);
        out.push('\n');
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

/// What HW014's order graph of one arch could not model: with `verbose`,
/// one line of counts when there is any (an arch whose every lock and wait
/// was resolved says nothing); a cycle search cut short is a warning always
/// (its verdict is incomplete).
fn lock_order_line(s: &crate::check::ArchStatistics, verbose: bool, warning: &str) -> String {
    let l = &s.lock_order;
    let mut out = String::new();
    let unresolved =
        l.unknown_classes + l.unresolved_completion_waits + l.unresolved_work_waits + l.unresolved_thread_waits;
    if verbose && unresolved > 0 {
        let _ = writeln!(
            out,
            "kvmtk: lock order, {}: {} over {} ({} unknown, each kept apart); waits with no known target (no edge): {}, {}, {}",
            s.arch,
            plural(l.edges, "edge", "edges"),
            plural(l.classes, "class", "classes"),
            l.unknown_classes,
            plural(l.unresolved_completion_waits, "completion wait", "completion waits"),
            plural(l.unresolved_work_waits, "work flush", "work flushes"),
            plural(l.unresolved_thread_waits, "thread stop", "thread stops"),
        );
    }
    if l.cycle_search_cut {
        let _ = writeln!(
            out,
            "kvmtk: {warning} lock order, {}: the cycle search hit its step budget; HW014 cycles may be missing",
            s.arch
        );
    }
    out
}

/// The input warnings for standard error, after the findings: with
/// `verbose`, each once in the gcc form (`path:line: warning: message`);
/// otherwise one line with their count (`kvmtk: warning: 15 input warnings
/// in 9 files (...); --verbose lists them`). Then what the lock-order
/// graph could not model ([`lock_order_line`]). Empty when there is nothing
/// to say.
pub fn render_warnings(report: &CheckReport, verbose: bool, opts: &RenderOptions) -> String {
    let palette = Palette::new(opts.color);
    let warning = paint(palette.warning, "warning:");
    let mut out = String::new();
    if verbose {
        for w in &report.warnings {
            let line = warning_line(w, opts);
            // `at: warning: message`, with the severity painted.
            let line = line.replacen(" warning: ", &format!(" {warning} "), 1);
            out.push_str(&line);
            out.push('\n');
        }
    } else if !report.warnings.is_empty() {
        let _ = writeln!(
            out,
            "kvmtk: {warning} {} (what they name was skipped, the rest analyzed); --verbose lists them",
            warnings_count(&report.warnings)
        );
    }
    for s in &report.statistics {
        out.push_str(&lock_order_line(s, verbose, &warning));
    }
    out
}
