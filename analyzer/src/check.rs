//! `kvmtk check`: run the rules over every arch of a tree.
//!
//! Two entry points with one result: [`check`] over an already parsed tree,
//! and [`Checker`], which starts from the loaded sources and reuses what it
//! can. The unit of reuse is one arch's analysis: its findings depend only
//! on the files that arch reads (its own `arch/<a>/kvm` plus the common
//! files), on the answers the rules ask of the whole tree ([`TreeAnswers`],
//! HW013's "is this documented lock defined or taken anywhere"), the API
//! model, the rule selection and the analyzer's code, so a signature over
//! those keys a [`ResultCache`] entry. A tree whose every arch is known is
//! not even parsed; a commit touching `arch/x86` only re-analyzes x86
//! (unless it changes an answer), parsing only the files whose facts the
//! [`FactsCache`] does not hold.

use std::collections::BTreeSet;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::ApiModel;
use crate::cache::{analysis_version, FactsCache, ResultCache};
use crate::enable_path::EnablePath;
use crate::facts::FileFacts;
use crate::hash::Fnv;
use crate::lock_order::LockOrderStats;
use crate::pipeline::{FileWarnings, InputWarning, ParsedTree, CPUHOTPLUG_H, LOCKING_RST};
use crate::progress::{NoProgress, Progress};
use crate::rules::queries::{TreeAnswers, TreeUsage};
use crate::rules::{run_rules, Finding, RuleInput, RuleSelection, RuleStats};
use crate::source::is_c_source;
use crate::source::{SourceFile, SourceTree};

/// The findings over a tree, with the input warnings met on the way.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub tree: String,
    pub arches: Vec<String>,
    pub findings: Vec<Finding>,
    pub warnings: Vec<InputWarning>,
    /// Per arch, what the analysis could not model (`--verbose`, JSON).
    pub statistics: Vec<ArchStatistics>,
}

/// What one arch's analysis could not model: counted, never a finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ArchStatistics {
    pub arch: String,
    /// HW014's order graph (when HW014 ran).
    pub lock_order: LockOrderStats,
}

/// What one arch's analysis produced: its findings (common-code findings
/// included) and the analysis warnings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArchResult {
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
    /// HW014's statistics, when it ran.
    pub lock_order: Option<LockOrderStats>,
}

/// Link and analyze one arch of a parsed tree and run the selected rules;
/// `tree` is [`TreeAnswers::of`] the tree's usage.
pub fn analyze_arch(
    parsed: &ParsedTree,
    arch: Option<&str>,
    api: &ApiModel,
    selection: &RuleSelection,
    tree: &TreeAnswers,
) -> ArchResult {
    let analysis = parsed.analyze(arch, api);
    let enable_path = EnablePath::find(&analysis);
    let kconfig = crate::kconfig::Kconfig::of(&parsed.source);
    let stats = RuleStats::default();
    let input = RuleInput {
        analysis: &analysis,
        enable_path: &enable_path,
        api,
        locking_doc: parsed.locking.as_ref(),
        tree,
        kconfig: &kconfig,
        stats: &stats,
    };
    let findings = run_rules(&input, selection);
    ArchResult { findings, warnings: analysis.warnings.clone(), lock_order: stats.lock_order.into_inner() }
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
    let mut statistics = Vec::new();
    for (arch, r) in arches.iter().zip(results) {
        if let Some(lock_order) = &r.lock_order {
            let arch = arch.clone().unwrap_or_else(|| "common".into());
            statistics.push(ArchStatistics { arch, lock_order: lock_order.clone() });
        }
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
        statistics,
    }
}

/// Analyze every arch of a parsed tree in parallel and run the selected rules.
pub fn check(parsed: &ParsedTree, api: &ApiModel, selection: &RuleSelection) -> CheckReport {
    let arches = parsed.arches();
    let tree = TreeAnswers::of(&TreeUsage::of(&parsed.files, api), parsed.locking.as_ref(), api);
    let per_arch: Vec<ArchResult> =
        arches.par_iter().map(|arch| analyze_arch(parsed, arch.as_deref(), api, selection, &tree)).collect();
    merge(parsed.source.root_label.clone(), &arches, parsed.warnings.clone(), &per_arch)
}

/// FNV-1a, 64 bits, over a salt, a label and (path, blob id) pairs: equal
/// signatures, equal inputs.
fn signature<'f>(salt: u64, label: &str, files: impl Iterator<Item = &'f SourceFile>) -> u64 {
    let mut h = Fnv::default();
    h.part(&salt.to_le_bytes()).part(label.as_bytes());
    for f in files {
        h.part(f.path.as_bytes());
        match &f.blob_id {
            Some(b) => h.part(b.as_bytes()),
            // Without a blob id, the bytes themselves (never happens for
            // sources loaded by `SourceTree`, which hashes every file).
            None => h.part(&f.bytes),
        };
    }
    h.finish()
}

/// A file the analysis of a tree needs but did not analyze: the tree's
/// findings do not cover it (nor what it would have added: its functions,
/// locks, registrations, callers of other files' functions).
///
/// `kvmtk check` reports these as input warnings; `kvmtk lint` compares
/// them between the two sides of a step, since a finding that vanishes
/// with its file's coverage is not fixed (see [`crate::lint`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unanalyzed {
    /// Path relative to the tree root.
    pub path: String,
    /// The blob id of the contents that were not analyzed, when there are
    /// contents (not for a file that could not be read).
    pub blob_id: Option<String>,
    /// Why, for a user to read.
    pub reason: String,
}

/// The files of a tree the analysis does not cover: those that could not
/// be read (every source warning: unreadable, dangling link, missing
/// optional file), the C files not parsed at all (too large, over the
/// parse budget; `per_file` in the order of the C files), and the kernel
/// documents that did not parse (`cpuhotplug.h`, `locking.rst`). A C file
/// with parse problems is analyzed except where they are, so it is covered.
fn unanalyzed(parsed: &ParsedTree, per_file: &[FileWarnings]) -> Vec<Unanalyzed> {
    let source = &parsed.source;
    let blob = |path: &str| source.file(path).and_then(|f| f.blob_id.clone());
    let mut out: Vec<Unanalyzed> = source
        .warnings
        .iter()
        .map(|w| Unanalyzed { path: w.path.clone(), blob_id: None, reason: w.message.clone() })
        .collect();
    let c_files = source.files.iter().filter(|f| is_c_source(&f.path));
    for (f, w) in c_files.zip(per_file) {
        if let Some(parse) = w.parse.as_ref().filter(|_| w.not_parsed()) {
            out.push(Unanalyzed { path: f.path.clone(), blob_id: f.blob_id.clone(), reason: parse.message.clone() });
        }
    }
    let docs = [(CPUHOTPLUG_H, parsed.cpuhp.is_none()), (LOCKING_RST, parsed.locking.is_none())];
    for (path, failed) in docs {
        if failed && source.file(path).is_some() {
            let reason = parsed
                .warnings
                .iter()
                .find(|w| w.path == path && w.line.is_none())
                .map_or_else(|| "did not parse".to_string(), |w| w.message.clone());
            out.push(Unanalyzed { path: path.to_string(), blob_id: blob(path), reason });
        }
    }
    out.sort();
    out.dedup();
    out
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
    /// The files the report does not cover, sorted.
    pub unanalyzed: Vec<Unanalyzed>,
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
    /// Told which files are parsed and which arches analyzed.
    progress: &'a dyn Progress,
}

impl<'a> Checker<'a> {
    /// A checker with this model, facts cache, result cache and rule selection.
    pub fn new(api: &'a ApiModel, facts: &'a FactsCache, results: ResultCache, selection: RuleSelection) -> Self {
        let salt = signature(0, analysis_version(), std::iter::empty())
            ^ api.fingerprint().rotate_left(1)
            ^ selection.fingerprint().rotate_left(2);
        Checker { api, facts, results, selection, salt, progress: &NoProgress }
    }

    /// This checker, telling `progress` which files it parses and which
    /// arches it analyzes.
    pub fn with_progress(self, progress: &'a dyn Progress) -> Self {
        Checker { progress, ..self }
    }

    /// The facts cache.
    pub fn facts(&self) -> &FactsCache {
        self.facts
    }

    /// The result cache.
    pub fn results(&self) -> &ResultCache {
        &self.results
    }

    /// Check a loaded tree, computing only what the caches do not hold.
    pub fn check(&self, mut source: SourceTree) -> CheckOutcome {
        let arches = source.analyzed_arches();
        let tree_sig = signature(self.salt, "\u{1}tree", source.files.iter());
        // An arch's result depends on its own files and on the answers the
        // rules ask of the whole tree (`TreeAnswers`), whose digest the tree
        // entry keeps.
        let file_sigs: Vec<u64> = arches
            .iter()
            .map(|a| {
                let arch = a.as_deref().unwrap_or("");
                signature(self.salt, arch, source.files_for_arch(arch))
            })
            .collect();
        let arch_sigs = |answers_digest: u64| -> Vec<u64> {
            file_sigs.iter().map(|&s| signature(s, &answers_digest.to_string(), std::iter::empty())).collect()
        };
        let lookup =
            |sigs: &[u64]| -> Vec<Option<ArchResult>> { sigs.iter().map(|s| self.results.get("arch", *s)).collect() };
        let tree_entry: Option<TreeEntry> = self.results.get("tree", tree_sig);
        let mut stats = CheckStats::default();
        let tree_label = source.root_label.clone();
        // (digest, what that digest's keys found)
        let mut first: Option<(u64, Vec<Option<ArchResult>>)> = None;
        if let Some(entry) = &tree_entry {
            let known = lookup(&arch_sigs(entry.answers_digest));
            if known.iter().all(Option::is_some) {
                stats.reused = known.len();
                let n_input = entry.warnings.len();
                let report = merge(tree_label, &arches, entry.warnings.clone(), known.iter().flatten());
                return CheckOutcome { report, input_warnings: n_input, stats, unanalyzed: entry.unanalyzed.clone() };
            }
            first = Some((entry.answers_digest, known));
        }
        // What the tree-wide inputs (usage, input warnings) need of each C
        // file is small and kept per file: an unchanged file costs a
        // summary read, and its facts are read only when an arch that
        // includes it is analyzed. Contents are read (for a deferred git
        // source) only for the files parsed or without a summary.
        let c_idx: Vec<usize> = (0..source.files.len()).filter(|&i| is_c_source(&source.files[i].path)).collect();
        let keys: Vec<u64> =
            c_idx.iter().map(|&i| signature(self.salt, "\u{2}file", std::iter::once(&source.files[i]))).collect();
        let cached: Vec<Option<FileSummary>> = keys.par_iter().map(|k| self.results.get("file", *k)).collect();
        let unsummarized: BTreeSet<String> = c_idx
            .iter()
            .zip(&cached)
            .filter(|(_, s)| s.is_none())
            .map(|(&i, _)| source.files[i].path.clone())
            .collect();
        if source.read_pending(|f| unsummarized.contains(&f.path)).is_err() {
            return self.check(source.read_all_pending());
        }
        self.progress.stage("parsing", Some(unsummarized.len() as u64));
        let summaries: Vec<(FileSummary, Option<Arc<FileFacts>>)> = c_idx
            .par_iter()
            .zip(cached)
            .zip(&keys)
            .map(|((&i, cached), key)| {
                if let Some(s) = cached {
                    return (s, None);
                }
                let f = &source.files[i];
                let facts = self.facts.facts(f);
                let s = FileSummary {
                    usage: TreeUsage::of_file(&facts, self.api),
                    warnings: FileWarnings::of(&f.bytes, &facts),
                };
                self.results.put("file", *key, &s);
                self.progress.advance(1);
                (s, Some(facts))
            })
            .collect();
        stats.parsed_tree = true;
        let mut usage = TreeUsage::default();
        for (s, _) in &summaries {
            usage.add(&s.usage);
        }
        // The answers need the lock documentation (read now, parsed once).
        if source.read_pending(|f| f.path == LOCKING_RST).is_err() {
            return self.check(source.read_all_pending());
        }
        let locking = ParsedTree::locking_doc(&source);
        let answers = TreeAnswers::of(&usage, locking.as_ref().ok().and_then(Option::as_ref), self.api);
        let answers_digest = answers.digest();
        let sigs = arch_sigs(answers_digest);
        let mut known = match first {
            Some((digest, known)) if digest == answers_digest => known,
            _ => lookup(&sigs),
        };
        stats.reused = known.iter().filter(|k| k.is_some()).count();
        let missing: Vec<usize> = (0..arches.len()).filter(|i| known[*i].is_none()).collect();
        // Facts of the files the missing arches read; the others keep their
        // place (file indices are those of the whole tree) and no content.
        let needed =
            |f: &SourceFile| f.arch.is_none() || missing.iter().any(|&i| arches[i].as_deref() == f.arch.as_deref());
        let per_file: Vec<FileWarnings> = summaries.iter().map(|(s, _)| s.warnings.clone()).collect();
        let mut facts: Vec<Option<Arc<FileFacts>>> = c_idx
            .par_iter()
            .zip(summaries)
            .map(|(&i, (_, facts))| {
                let f = &source.files[i];
                if needed(f) {
                    facts.or_else(|| self.facts.cached(f))
                } else {
                    Some(Arc::new(FileFacts::placeholder(&f.path, f.arch.as_deref())))
                }
            })
            .collect();
        let unparsed: BTreeSet<String> =
            c_idx.iter().zip(&facts).filter(|(_, f)| f.is_none()).map(|(&i, _)| source.files[i].path.clone()).collect();
        // The hotplug state enum is read from its bytes, not from facts.
        if source.read_pending(|f| unparsed.contains(&f.path) || f.path == CPUHOTPLUG_H).is_err() {
            return self.check(source.read_all_pending());
        }
        facts.par_iter_mut().zip(&c_idx).filter(|(slot, _)| slot.is_none()).for_each(|(slot, &i)| {
            *slot = Some(self.facts.facts(&source.files[i]));
        });
        let files: Vec<Arc<FileFacts>> = facts.into_iter().flatten().collect();
        let parsed = ParsedTree::from_parts(source, files, &per_file, locking);
        self.progress.stage("analyzing", Some(missing.len() as u64));
        let unanalyzed = unanalyzed(&parsed, &per_file);
        let computed: Vec<(usize, ArchResult)> = missing
            .par_iter()
            .map(|&i| {
                let r = analyze_arch(&parsed, arches[i].as_deref(), self.api, &self.selection, &answers);
                self.progress.advance(1);
                (i, r)
            })
            .collect();
        stats.analyzed = computed.len();
        for (i, r) in computed {
            self.results.put("arch", sigs[i], &r);
            known[i] = Some(r);
        }
        let ParsedTree { warnings: input_warnings, .. } = parsed;
        self.results.put(
            "tree",
            tree_sig,
            &TreeEntry { warnings: input_warnings.clone(), answers_digest, unanalyzed: unanalyzed.clone() },
        );
        let n_input = input_warnings.len();
        let report = merge(tree_label, &arches, input_warnings, known.iter().flatten());
        CheckOutcome { report, input_warnings: n_input, stats, unanalyzed }
    }
}

/// What the tree-wide inputs need of one C file, kept in the
/// [`ResultCache`] by (path, blob id) and the analysis salt: its part of
/// the [`TreeUsage`] and its input warnings.
#[derive(Serialize, Deserialize)]
struct FileSummary {
    usage: TreeUsage,
    warnings: FileWarnings,
}

/// What the result cache keeps of a whole tree: its input warnings and the
/// digest of its [`TreeAnswers`] (part of every arch's key).
#[derive(Serialize, Deserialize)]
struct TreeEntry {
    warnings: Vec<InputWarning>,
    answers_digest: u64,
    unanalyzed: Vec<Unanalyzed>,
}
