//! The whole analysis of a tree, stage by stage: load the sources, parse
//! every C file once (in parallel), read the kernel's own documentation,
//! then link and analyze one program per architecture (in parallel).

use std::sync::Arc;

use rayon::prelude::*;

use crate::api::ApiModel;
use crate::contexts::{Analysis, KernelDocs};
use crate::facts::FileFacts;
use crate::graph::Program;
use crate::kernel_docs::{CpuhpEnum, LockingDoc};
use crate::source::{is_c_source, SourceError, SourceOptions, SourceSpec, SourceTree};

/// Path of the hotplug state enum inside a kernel tree.
pub const CPUHOTPLUG_H: &str = "include/linux/cpuhotplug.h";
/// Path of KVM's locking documentation inside a kernel tree.
pub const LOCKING_RST: &str = "Documentation/virt/kvm/locking.rst";

/// A warning about the input, with the file (and line when known).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputWarning {
    pub path: String,
    pub line: Option<u32>,
    pub message: String,
}

impl std::fmt::Display for InputWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.path.is_empty(), self.line) {
            (true, _) => f.write_str(&self.message),
            (false, Some(l)) => write!(f, "{}:{}: {}", self.path, l, self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// A parsed tree: sources, facts of every C file, the kernel docs.
pub struct ParsedTree {
    pub source: SourceTree,
    /// Shared: trees checked one after another hold the same facts for
    /// the files they share.
    pub files: Vec<Arc<FileFacts>>,
    pub cpuhp: Option<CpuhpEnum>,
    pub locking: Option<LockingDoc>,
    pub warnings: Vec<InputWarning>,
}

/// A warning for a C file that is binary (has a NUL byte) or not UTF-8.
/// Such a file is still analyzed: the parser reads bytes, and messages
/// show invalid sequences as U+FFFD.
fn encoding_warning(path: &str, bytes: &[u8]) -> Option<InputWarning> {
    let line_of = |at: usize| 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u32;
    let (at, message) = if let Some(at) = memchr::memchr(0, bytes) {
        (at, "binary file (NUL byte); analyzed as C anyway")
    } else {
        let at = std::str::from_utf8(bytes).err()?.valid_up_to();
        (at, "not valid UTF-8; analyzed as bytes, invalid sequences shown as U+FFFD")
    };
    Some(InputWarning { path: path.to_string(), line: Some(line_of(at)), message: message.to_string() })
}

/// The input warnings of one C file, in the order a report lists them:
/// its encoding (from the bytes), then its first parse problem (from the
/// facts) with the count of the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileWarnings {
    pub encoding: Option<InputWarning>,
    pub parse: Option<InputWarning>,
}

impl FileWarnings {
    /// The warnings of a file with these bytes and facts.
    pub fn of(bytes: &[u8], facts: &FileFacts) -> FileWarnings {
        let parse = facts.diagnostics.first().map(|d| {
            let more = facts.diagnostics.len() - 1;
            // Line 0: about the whole file (too large, not parsed).
            let whole_file = d.span.line == 0;
            InputWarning {
                path: facts.path.clone(),
                line: (!whole_file).then_some(d.span.line),
                message: if whole_file {
                    d.message.clone()
                } else if more > 0 {
                    format!("{} (and {more} more parse problems in this file; the rest is analyzed)", d.message)
                } else {
                    format!("{} (the rest of the file is analyzed)", d.message)
                },
            }
        });
        FileWarnings { encoding: encoding_warning(&facts.path, bytes), parse }
    }

    /// Whether the file was not parsed at all (too large, over the parse
    /// budget): its parse warning is about the whole file, so it has no line.
    pub fn not_parsed(&self) -> bool {
        self.parse.as_ref().is_some_and(|w| w.line.is_none())
    }
}

impl ParsedTree {
    /// Load and parse a tree.
    pub fn load(spec: &SourceSpec, opts: &SourceOptions) -> Result<ParsedTree, SourceError> {
        let source = SourceTree::load(spec, opts)?;
        Ok(Self::from_source(source))
    }

    /// Parse an already loaded tree.
    pub fn from_source(source: SourceTree) -> ParsedTree {
        let files: Vec<Arc<FileFacts>> = source
            .files
            .par_iter()
            .filter(|f| is_c_source(&f.path))
            .map(|f| Arc::new(crate::parse::parse_file(&f.path, f.arch.as_deref(), &f.bytes)))
            .collect();
        Self::assemble(source, files)
    }

    /// [`ParsedTree::from_source`], taking each file's facts from `cache`
    /// (keyed by blob id) and parsing only the files it does not hold. The
    /// result is the same as `from_source`'s: facts are syntax only.
    pub fn from_source_cached(source: SourceTree, cache: &crate::cache::FactsCache) -> ParsedTree {
        let files: Vec<Arc<FileFacts>> =
            source.files.par_iter().filter(|f| is_c_source(&f.path)).map(|f| cache.facts(f)).collect();
        Self::assemble(source, files)
    }

    /// The facts' diagnostics as input warnings, and the kernel docs.
    fn assemble(source: SourceTree, files: Vec<Arc<FileFacts>>) -> ParsedTree {
        // `files` are the facts of the C sources, in the same order.
        let per_file: Vec<FileWarnings> = source
            .files
            .iter()
            .filter(|f| is_c_source(&f.path))
            .zip(&files)
            .map(|(s, facts)| FileWarnings::of(&s.bytes, facts))
            .collect();
        let locking = Self::locking_doc(&source);
        Self::from_parts(source, files, &per_file, locking)
    }

    /// A parsed tree from its sources, facts and the warnings of each C
    /// file (in source order): files whose facts a caller does not need may
    /// be [`FileFacts::placeholder`]s, their warnings still count; and its
    /// `locking.rst` as [`ParsedTree::locking_doc`] read it.
    pub fn from_parts(
        source: SourceTree,
        files: Vec<Arc<FileFacts>>,
        per_file: &[FileWarnings],
        locking: Result<Option<LockingDoc>, InputWarning>,
    ) -> ParsedTree {
        let mut warnings: Vec<InputWarning> = source
            .warnings
            .iter()
            .map(|w| InputWarning { path: w.path.clone(), line: None, message: w.message.clone() })
            .collect();
        warnings.extend(per_file.iter().filter_map(|w| w.encoding.clone()));
        warnings.extend(per_file.iter().filter_map(|w| w.parse.clone()));
        let cpuhp = match source.file(CPUHOTPLUG_H) {
            Some(f) => match CpuhpEnum::parse(&f.path, &f.bytes) {
                Ok(c) => Some(c),
                Err(e) => {
                    warnings.push(InputWarning {
                        path: CPUHOTPLUG_H.to_string(),
                        line: None,
                        message: format!("{e}; hotplug callbacks are not analyzed"),
                    });
                    None
                }
            },
            None => None,
        };
        let locking = match locking {
            Ok(d) => d,
            Err(w) => {
                warnings.push(w);
                None
            }
        };
        ParsedTree { source, files, cpuhp, locking, warnings }
    }

    /// The tree's `locking.rst`, when it has one, or why it could not be
    /// read (an input warning: lock documentation is then not checked).
    pub fn locking_doc(source: &SourceTree) -> Result<Option<LockingDoc>, InputWarning> {
        let Some(f) = source.file(LOCKING_RST) else { return Ok(None) };
        LockingDoc::parse(&f.path, &f.bytes).map(Some).map_err(|e| InputWarning {
            path: LOCKING_RST.to_string(),
            line: None,
            message: format!("{e}; lock documentation is not checked"),
        })
    }

    /// The architectures to analyze: each arch with KVM code, or common
    /// code alone when the tree has none.
    pub fn arches(&self) -> Vec<Option<String>> {
        self.source.analyzed_arches()
    }

    /// Link and analyze one architecture.
    pub fn analyze<'a>(&'a self, arch: Option<&str>, api: &'a ApiModel) -> Analysis<'a> {
        let program = Program::link(&self.files, arch, api);
        let docs = KernelDocs { cpuhp: self.cpuhp.as_ref() };
        Analysis::run(program, api, &docs)
    }

    /// Analyze every architecture in parallel, in arch order.
    pub fn analyze_all<'a>(&'a self, api: &'a ApiModel) -> Vec<Analysis<'a>> {
        self.arches().par_iter().map(|a| self.analyze(a.as_deref(), api)).collect()
    }
}
