//! SARIF 2.1.0 through `serde-sarif`. See the parent module for the mapping.

use std::collections::BTreeMap;

use serde_json::json;
use serde_sarif::sarif::{
    ArtifactLocation, CodeFlow, Invocation, Location, LogicalLocation, Message, MultiformatMessageString, Notification,
    PhysicalLocation, PropertyBag, Region, ReportingConfiguration, ReportingDescriptor, Result as SarifResult,
    ResultLevel, Run, Sarif, ThreadFlow, ThreadFlowLocation, Tool, ToolComponent,
};

use super::describe_step;
use crate::check::CheckReport;
use crate::contexts::Step;
use crate::rules::{Finding, RuleInfo, Severity, REGISTRY};

/// The `$schema` of [`render_sarif`]'s output.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The `uriBaseId` every location is relative to: the analyzed tree's root.
pub const SRCROOT: &str = "SRCROOT";

/// The `partialFingerprints` key holding a finding's
/// [fingerprint](crate::rules::fingerprint).
pub const FINGERPRINT_KEY: &str = "kvmtk/v1";

fn level(severity: Severity) -> ResultLevel {
    match severity {
        Severity::Note => ResultLevel::Note,
        Severity::Warning => ResultLevel::Warning,
        Severity::Error => ResultLevel::Error,
    }
}

fn text(s: impl Into<String>) -> Message {
    Message::builder().text(s.into()).build()
}

/// A physical location in the tree; the region only with what is known
/// (SARIF lines and columns are 1-based; 0 means unknown here).
fn location(file: &str, line: u32, col: u32) -> Location {
    let artifact = ArtifactLocation::builder().uri(file.to_string()).uri_base_id(SRCROOT.to_string()).build();
    let physical = if line == 0 {
        PhysicalLocation::builder().artifact_location(artifact).build()
    } else {
        let region = if col == 0 {
            Region::builder().start_line(i64::from(line)).build()
        } else {
            Region::builder().start_line(i64::from(line)).start_column(i64::from(col)).build()
        };
        PhysicalLocation::builder().artifact_location(artifact).region(region).build()
    };
    Location::builder().physical_location(physical).build()
}

/// One `## Heading` section of a rule's markdown documentation, as text.
fn doc_section(doc: &str, heading: &str) -> Option<String> {
    let mut lines = doc.lines().skip_while(|l| l.trim_start_matches('#').trim() != heading || !l.starts_with("##"));
    lines.next()?;
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("# ") && !l.starts_with("## ")).collect();
    let body = body.join("\n").trim().to_string();
    (!body.is_empty()).then_some(body)
}

fn rule_descriptor(rule: &RuleInfo) -> ReportingDescriptor {
    let doc = rule.doc();
    let doc = doc.trim();
    let full = doc_section(doc, "What it finds").map_or_else(|| rule.summary.to_string(), |s| s.replace('\n', " "));
    let help = if doc.is_empty() {
        MultiformatMessageString::builder().text(rule.summary.to_string()).build()
    } else {
        MultiformatMessageString::builder().text(doc.to_string()).markdown(doc.to_string()).build()
    };
    ReportingDescriptor::builder()
        .id(rule.id.to_string())
        .name(rule.name.to_string())
        .short_description(MultiformatMessageString::builder().text(rule.summary.to_string()).build())
        .full_description(MultiformatMessageString::builder().text(full).build())
        .help(help)
        .default_configuration(ReportingConfiguration::builder().level(json!(rule.severity.as_str())).build())
        .build()
}

fn thread_flow_location(index: usize, step: &Step) -> ThreadFlowLocation {
    let mut loc = location(&step.file, step.line, step.col);
    let prefix = if index == 0 { "root: " } else { "" };
    loc.message = Some(text(format!("{prefix}{}", describe_step(step))));
    loc.logical_locations = Some(vec![function_location(&step.function)]);
    let mut state = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        state.insert(key.to_string(), MultiformatMessageString::builder().text(value).build());
    };
    put("context", step.context.clone());
    put("held", super::lock_set(&step.held));
    put("may_held", super::lock_set(&step.may_held));
    put("serialized_by", super::lock_set(&step.serialized_by));
    if let Some(via) = &step.via {
        put("via", via.clone());
    }
    ThreadFlowLocation::builder()
        .location(loc)
        .state(state)
        .execution_order(index as i64 + 1)
        .nesting_level(index as i64)
        .build()
}

fn function_location(name: &str) -> LogicalLocation {
    LogicalLocation::builder().name(name.to_string()).kind("function".to_string()).build()
}

fn result(f: &Finding) -> SarifResult {
    let mut primary = location(&f.file, f.line, f.col);
    primary.logical_locations = Some(vec![function_location(&f.function)]);
    let rule_index = REGISTRY.iter().position(|r| r.id == f.rule);
    let mut props = BTreeMap::new();
    props.insert("arch".to_string(), json!(f.arch));
    props.insert("symbols".to_string(), json!(f.symbols));
    let mut result = SarifResult::builder()
        .rule_id(f.rule.to_string())
        .level(level(f.severity))
        .message(text(f.message.clone()))
        .locations(vec![primary])
        .partial_fingerprints(BTreeMap::from([(FINGERPRINT_KEY.to_string(), f.fingerprint.clone())]))
        .properties(PropertyBag::builder().additional_properties(props).build())
        .build();
    result.rule_index = rule_index.map(|i| i as i64);
    if !f.evidence.is_empty() {
        let steps = f.evidence.iter().enumerate().map(|(i, s)| thread_flow_location(i, s)).collect::<Vec<_>>();
        let flow = ThreadFlow::builder().locations(steps).build();
        result.code_flows = Some(vec![CodeFlow::builder()
            .message(text(format!("{} -> {}", f.evidence[0].function, f.function)))
            .thread_flows(vec![flow])
            .build()]);
    }
    if !f.related.is_empty() {
        result.related_locations = Some(
            f.related
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut loc = location(&r.file, r.line, r.col);
                    loc.id = Some(i as i64 + 1);
                    loc.message = Some(text(r.message.clone()));
                    loc
                })
                .collect(),
        );
    }
    result
}

/// Render a report as a SARIF 2.1.0 log (one run; see [the module](super)
/// for the mapping), pretty-printed, ending with a newline. Locations are
/// relative to `uriBaseId` [`SRCROOT`], the analyzed tree's root: give
/// its absolute URI to a consumer that needs one (GitHub code scanning
/// resolves it against the checkout).
pub fn render_sarif(report: &CheckReport) -> String {
    let driver = ToolComponent::builder()
        .name("kvmtk".to_string())
        .full_name("kvmtk: Linux KVM hardware-enable analyzer".to_string())
        .version(env!("CARGO_PKG_VERSION").to_string())
        .semantic_version(env!("CARGO_PKG_VERSION").to_string())
        .rules(REGISTRY.iter().map(rule_descriptor).collect::<Vec<_>>())
        .build();
    let notifications: Vec<Notification> = report
        .warnings
        .iter()
        .map(|w| {
            let mut n = Notification::builder().message(text(w.message.clone())).level(json!("warning")).build();
            if !w.path.is_empty() {
                n.locations = Some(vec![location(&w.path, w.line.unwrap_or(0), 0)]);
            }
            n
        })
        .collect();
    let mut invocation = Invocation::builder().execution_successful(true).build();
    if !notifications.is_empty() {
        invocation.tool_execution_notifications = Some(notifications);
    }
    let srcroot = ArtifactLocation::builder()
        .description(text(format!("the root of the analyzed tree `{}`", report.tree)))
        .build();
    let mut run_props = BTreeMap::new();
    run_props.insert("tree".to_string(), json!(report.tree));
    run_props.insert("arches".to_string(), json!(report.arches));
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .original_uri_base_ids(BTreeMap::from([(SRCROOT.to_string(), srcroot)]))
        .invocations(vec![invocation])
        .results(report.findings.iter().map(result).collect::<Vec<_>>())
        .properties(PropertyBag::builder().additional_properties(run_props).build())
        .build();
    let log = Sarif::builder().schema(SARIF_SCHEMA.to_string()).version(json!("2.1.0")).runs(vec![run]).build();
    let mut out = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        let doc = "# HW001 x\n\n## What it finds\nA list\nwalked.\n\n## Why is this bad?\nRaces.\n";
        assert_eq!(doc_section(doc, "What it finds").as_deref(), Some("A list\nwalked."));
        assert_eq!(doc_section(doc, "Why is this bad?").as_deref(), Some("Races."));
        assert_eq!(doc_section(doc, "Fix"), None);
        assert_eq!(doc_section("", "Fix"), None);
    }
}
