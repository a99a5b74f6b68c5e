//! kvmtk's patch generation, built on the analyzer (never the reverse):
//!
//! ```text
//! transform/  one transformation per file: finds its targets through the
//!             analyzer, checks its preconditions, returns a Change (edits
//!             on the original bytes + the commit message) or a Refusal
//! edit.rs     byte-range edits applied together, with overlap checks
//! series.rs   runs the transformations in order on an in-memory tree,
//!             re-checking after each, and renders git format-patch files
//!             and a cover letter
//! ```

pub mod edit;
pub mod lint;
pub mod series;
pub mod transform;
