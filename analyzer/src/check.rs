//! `kvmtk check`: run the rules over every arch of a tree.
//!
//! Two entry points with one result: [`check`] over an already parsed tree,
//! and [`Checker`], which starts from the loaded sources and reuses what it
//! can. The unit of reuse is one arch's analysis: its findings depend only
//! on the files that arch reads (its own `arch/<a>/kvm` plus the common
//! files), the API model, the rule selection and the analyzer's code, so a
//! signature over those keys a [`ResultCache`] entry. A tree whose every
//! arch is known is not even parsed; a commit touching `arch/x86` only
//! re-analyzes x86, parsing only the files whose facts the [`FactsCache`]
//! does not hold.

use std::collections::BTreeSet;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::ApiModel;
use crate::cache::{analysis_version, FactsCache, ResultCache};
use crate::enable_path::EnablePath;
use crate::pipeline::{InputWarning, ParsedTree};
use crate::rules::{run_rules, Finding, RuleInput, RuleSelection};
use crate::source::{SourceFile, SourceTree};

/// The findings over a tree, with the input warnings met on the way.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub tree: String,
    pub arches: Vec<String>,
    pub findings: Vec<Finding>,
    pub warnings: Vec<InputWarning>,
}

/// What one arch's analysis produced: its findings (common-code findings
/// included) and the analysis warnings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArchResult {
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
}

/// Link and analyze one arch of a parsed tree and run the selected rules.
pub fn analyze_arch(parsed: &ParsedTree, arch: Option<&str>, api: &ApiModel, selection: &RuleSelection) -> ArchResult {
    let analysis = parsed.analyze(arch, api);
    let enable_path = EnablePath::find(&analysis);
    let input = RuleInput { analysis: &analysis, enable_path: &enable_path, api, locking_doc: parsed.locking.as_ref() };
    ArchResult { findings: run_rules(&input, selection), warnings: analysis.warnings.clone() }
}

/// Merge per-arch results into one report: arch order, a finding in common
/// code reported once whichever arches found it (its fingerprint does not
/// include the arch), analysis warnings once, findings sorted by place.
pub fn merge<'r>(
    tree: String,
    arches: &[Option<String>],
    input_warnings: Vec<InputWarning>,
    results: impl IntoIterator<Item = &'r ArchResult>,
) -> CheckReport {
    let mut findings: Vec<Finding> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut warnings = input_warnings;
    for r in results {
        for f in &r.findings {
            if seen.insert(f.fingerprint.clone()) {
                findings.push(f.clone());
            }
        }
        for w in &r.warnings {
            let iw = InputWarning { path: String::new(), line: None, message: w.clone() };
            if !warnings.contains(&iw) {
                warnings.push(iw);
            }
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line, a.col, a.rule).cmp(&(&b.file, b.line, b.col, b.rule)));
    CheckReport {
        tree,
        arches: arches.iter().map(|a| a.clone().unwrap_or_else(|| "common".into())).collect(),
        findings,
        warnings,
    }
}

/// Analyze every arch of a parsed tree in parallel and run the selected rules.
pub fn check(parsed: &ParsedTree, api: &ApiModel, selection: &RuleSelection) -> CheckReport {
    let arches = parsed.arches();
    let per_arch: Vec<ArchResult> =
        arches.par_iter().map(|arch| analyze_arch(parsed, arch.as_deref(), api, selection)).collect();
    merge(parsed.source.root_label.clone(), &arches, parsed.warnings.clone(), &per_arch)
}

/// The arches a tree is analyzed for, as [`ParsedTree::arches`] computes them.
pub fn arches_of(source: &SourceTree) -> Vec<Option<String>> {
    let mut arches: Vec<Option<String>> = source.arches.iter().cloned().map(Some).collect();
    if arches.is_empty() {
        arches.push(None);
    }
    arches
}

/// FNV-1a, 64 bits, over a salt, a label and (path, blob id) pairs: equal
/// signatures, equal inputs.
fn signature<'f>(salt: u64, label: &str, files: impl Iterator<Item = &'f SourceFile>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: &[u8]| {
        for &c in b.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(c);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(&salt.to_le_bytes());
    feed(label.as_bytes());
    for f in files {
        feed(f.path.as_bytes());
        match &f.blob_id {
            Some(b) => feed(b.as_bytes()),
            // Without a blob id, the bytes themselves (never happens for
            // sources loaded by `SourceTree`, which hashes every file).
            None => feed(&f.bytes),
        }
    }
    h
}

/// How a [`Checker::check`] got its result, for timings and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CheckStats {
    /// Arches analyzed by this call.
    pub analyzed: usize,
    /// Arches whose result came from the [`ResultCache`].
    pub reused: usize,
    /// Whether the tree was parsed (facts from the cache or the parser).
    pub parsed_tree: bool,
}

/// The report of a [`Checker::check`].
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub report: CheckReport,
    /// How many of `report.warnings`, from the start, are input warnings
    /// (the rest are analysis warnings).
    pub input_warnings: usize,
    pub stats: CheckStats,
}

/// Checks trees one after another (or one tree again), reusing facts
/// through a [`FactsCache`] and whole per-arch results through a
/// [`ResultCache`]. Same report as [`check`] on the parsed tree.
pub struct Checker<'a> {
    api: &'a ApiModel,
    facts: &'a FactsCache,
    results: ResultCache,
    selection: RuleSelection,
    /// What besides the files decides a result: the analyzer's code, the
    /// API model, the rule selection.
    salt: u64,
}

impl<'a> Checker<'a> {
    /// A checker with this model, facts cache, result cache and rule selection.
    pub fn new(api: &'a ApiModel, facts: &'a FactsCache, results: ResultCache, selection: RuleSelection) -> Self {
        let salt = signature(0, analysis_version(), std::iter::empty())
            ^ api.fingerprint().rotate_left(1)
            ^ selection.fingerprint().rotate_left(2);
        Checker { api, facts, results, selection, salt }
    }

    /// The facts cache.
    pub fn facts(&self) -> &FactsCache {
        self.facts
    }

    /// The result cache.
    pub fn results(&self) -> &ResultCache {
        &self.results
    }

    /// The rule selection.
    pub fn selection(&self) -> &RuleSelection {
        &self.selection
    }

    /// Check a loaded tree, computing only what the caches do not hold.
    pub fn check(&self, source: SourceTree) -> CheckOutcome {
        let arches = arches_of(&source);
        let tree_sig = signature(self.salt, "\u{1}tree", source.files.iter());
        let sigs: Vec<u64> = arches
            .iter()
            .map(|a| {
                let arch = a.as_deref().unwrap_or("");
                signature(self.salt, arch, source.files_for_arch(arch))
            })
            .collect();
        let mut known: Vec<Option<ArchResult>> = sigs.iter().map(|s| self.results.get("arch", *s)).collect();
        let mut input_warnings: Option<Vec<InputWarning>> = self.results.get("tree", tree_sig);
        let tree_label = source.root_label.clone();
        let mut stats = CheckStats { reused: known.iter().filter(|k| k.is_some()).count(), ..CheckStats::default() };
        if input_warnings.is_none() || known.iter().any(Option::is_none) {
            let parsed = ParsedTree::from_source_cached(source, self.facts);
            stats.parsed_tree = true;
            let missing: Vec<usize> = (0..arches.len()).filter(|i| known[*i].is_none()).collect();
            let computed: Vec<(usize, ArchResult)> = missing
                .par_iter()
                .map(|&i| (i, analyze_arch(&parsed, arches[i].as_deref(), self.api, &self.selection)))
                .collect();
            stats.analyzed = computed.len();
            for (i, r) in computed {
                self.results.put("arch", sigs[i], &r);
                known[i] = Some(r);
            }
            self.results.put("tree", tree_sig, &parsed.warnings);
            input_warnings = Some(parsed.warnings.clone());
            self.facts.recycle(parsed);
        }
        let input_warnings = input_warnings.unwrap_or_default();
        let n_input = input_warnings.len();
        let report = merge(tree_label, &arches, input_warnings, known.iter().flatten());
        CheckOutcome { report, input_warnings: n_input, stats }
    }
}
