//! The stable JSON form; the schema is documented in the parent module.
//!
//! The report is copied into private mirror structs rather than serialized
//! directly, so that a change to the analyzer's own types cannot silently
//! change the schema scripts depend on.

use serde::Serialize;

use crate::check::{ArchStatistics, CheckReport};
use crate::contexts::Step;
use crate::pipeline::InputWarning;
use crate::rules::{Finding, Related};

/// The `version` field of [`render_json`]'s output. Bumped on any change
/// other than a key added at the end of an object.
pub const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    tool: &'static str,
    tree: &'a str,
    arches: &'a [String],
    findings: Vec<JsonFinding<'a>>,
    warnings: Vec<JsonWarning<'a>>,
    statistics: Vec<JsonArchStatistics<'a>>,
}

#[derive(Serialize)]
struct JsonArchStatistics<'a> {
    arch: &'a str,
    lock_order: JsonLockOrderStats,
}

#[derive(Serialize)]
struct JsonLockOrderStats {
    classes: usize,
    unknown_classes: usize,
    edges: usize,
    unresolved_completion_waits: usize,
    unresolved_work_waits: usize,
    unresolved_thread_waits: usize,
    cycle_search_cut: bool,
}

impl<'a> From<&'a ArchStatistics> for JsonArchStatistics<'a> {
    fn from(s: &'a ArchStatistics) -> Self {
        let l = &s.lock_order;
        JsonArchStatistics {
            arch: &s.arch,
            lock_order: JsonLockOrderStats {
                classes: l.classes,
                unknown_classes: l.unknown_classes,
                edges: l.edges,
                unresolved_completion_waits: l.unresolved_completion_waits,
                unresolved_work_waits: l.unresolved_work_waits,
                unresolved_thread_waits: l.unresolved_thread_waits,
                cycle_search_cut: l.cycle_search_cut,
            },
        }
    }
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'a str,
    name: &'a str,
    severity: &'static str,
    arch: &'a str,
    file: &'a str,
    line: u32,
    col: u32,
    function: &'a str,
    message: &'a str,
    evidence: Vec<JsonStep<'a>>,
    related: Vec<JsonRelated<'a>>,
    symbols: &'a [String],
    fingerprint: &'a str,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
    col: u32,
    context: &'a str,
    held: &'a [String],
    may_held: &'a [String],
    serialized_by: &'a [String],
    via: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    file: &'a str,
    line: u32,
    col: u32,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonWarning<'a> {
    path: &'a str,
    line: Option<u32>,
    message: &'a str,
}

impl<'a> From<&'a Finding> for JsonFinding<'a> {
    fn from(f: &'a Finding) -> Self {
        JsonFinding {
            rule: f.rule,
            name: f.name,
            severity: f.severity.as_str(),
            arch: &f.arch,
            file: &f.file,
            line: f.line,
            col: f.col,
            function: &f.function,
            message: &f.message,
            evidence: f.evidence.iter().map(JsonStep::from).collect(),
            related: f.related.iter().map(JsonRelated::from).collect(),
            symbols: &f.symbols,
            fingerprint: &f.fingerprint,
        }
    }
}

impl<'a> From<&'a Step> for JsonStep<'a> {
    fn from(s: &'a Step) -> Self {
        JsonStep {
            function: &s.function,
            file: &s.file,
            line: s.line,
            col: s.col,
            context: &s.context,
            held: &s.held,
            may_held: &s.may_held,
            serialized_by: &s.serialized_by,
            via: s.via.as_deref(),
        }
    }
}

impl<'a> From<&'a Related> for JsonRelated<'a> {
    fn from(r: &'a Related) -> Self {
        JsonRelated { file: &r.file, line: r.line, col: r.col, message: &r.message }
    }
}

impl<'a> From<&'a InputWarning> for JsonWarning<'a> {
    fn from(w: &'a InputWarning) -> Self {
        JsonWarning { path: &w.path, line: w.line, message: &w.message }
    }
}

/// Render a report as kvmtk's stable JSON (schema version
/// [`JSON_SCHEMA_VERSION`], documented in [the module](super)):
/// pretty-printed, keys in a fixed order, ending with a newline.
pub fn render_json(report: &CheckReport) -> String {
    let doc = JsonReport {
        version: JSON_SCHEMA_VERSION,
        tool: "kvmtk",
        tree: &report.tree,
        arches: &report.arches,
        findings: report.findings.iter().map(JsonFinding::from).collect(),
        warnings: report.warnings.iter().map(JsonWarning::from).collect(),
        statistics: report.statistics.iter().map(JsonArchStatistics::from).collect(),
    };
    // Serializing plain structs of strings and integers cannot fail.
    let mut out = serde_json::to_string_pretty(&doc).expect("report serializes");
    out.push('\n');
    out
}
