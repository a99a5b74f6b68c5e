//! kvmtk's analysis engine.
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! source   (SourceTree: directory or git revision)
//!   -> parse    (tree-sitter-c with kernel idiom recovery)
//!   -> facts    (FileFacts: functions, calls, globals, initializers, statements)
//!   -> graph    (per-arch symbol table and call graph)
//!   -> locks    (flow-sensitive lock sets inside each function)
//!   -> contexts (execution contexts and lock sets across the graph, with witnesses)
//!   -> rules    (HW001-HW014)
//!   -> report   (text, JSON, SARIF, GitHub annotations, GitLab Code Quality)
//! ```
//!
//! Kernel API knowledge lives in one declarative table ([`api`]), read by
//! the contexts layer and the rules, never written inside them. The kernel's
//! own documentation ([`kernel_docs`]) is read from the tree being analyzed.

// Rule documentation (printed by `kvmtk explain`) shows kernel C, which is
// indented with tabs like the kernel itself.
#![allow(clippy::tabs_in_doc_comments)]

pub mod api;
pub mod cache;
pub mod check;
pub mod contexts;
pub mod enable_path;
pub mod facts;
pub mod graph;
pub mod hash;
pub mod kbuild;
pub mod kconfig;
pub mod kernel_docs;
pub mod lint;
pub mod lock_order;
pub mod lock_table;
pub mod locks;
pub mod parse;
pub mod pipeline;
pub mod progress;
pub mod read;
pub mod refs;
pub mod report;
pub mod rules;
pub mod source;
pub mod write;
