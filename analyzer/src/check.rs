//! `kvmtk check`: run the rules over every arch of a parsed tree.

use rayon::prelude::*;
use serde::Serialize;

use crate::api::ApiModel;
use crate::enable_path::EnablePath;
use crate::pipeline::{InputWarning, ParsedTree};
use crate::rules::{run_rules, Finding, RuleInput, RuleSelection};

/// The findings over a tree, with the input warnings met on the way.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub tree: String,
    pub arches: Vec<String>,
    pub findings: Vec<Finding>,
    pub warnings: Vec<InputWarning>,
}

/// Analyze every arch in parallel and run the selected rules. Findings in
/// common code are reported once whichever arches found them (their
/// fingerprint does not include the arch).
pub fn check(parsed: &ParsedTree, api: &ApiModel, selection: &RuleSelection) -> CheckReport {
    let arches = parsed.arches();
    let per_arch: Vec<(Vec<Finding>, Vec<String>)> = arches
        .par_iter()
        .map(|arch| {
            let analysis = parsed.analyze(arch.as_deref(), api);
            let enable_path = EnablePath::find(&analysis);
            let input =
                RuleInput { analysis: &analysis, enable_path: &enable_path, api, locking_doc: parsed.locking.as_ref() };
            (run_rules(&input, selection), analysis.warnings.clone())
        })
        .collect();
    let mut findings: Vec<Finding> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut warnings = parsed.warnings.clone();
    for (fs, ws) in per_arch {
        for f in fs {
            if seen.insert(f.fingerprint.clone()) {
                findings.push(f);
            }
        }
        for w in ws {
            let iw = InputWarning { path: String::new(), line: None, message: w };
            if !warnings.contains(&iw) {
                warnings.push(iw);
            }
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line, a.col, a.rule).cmp(&(&b.file, b.line, b.col, b.rule)));
    CheckReport {
        tree: parsed.source.root_label.clone(),
        arches: arches.iter().map(|a| a.clone().unwrap_or_else(|| "common".into())).collect(),
        findings,
        warnings,
    }
}
