//! Reports: what the analysis found, in the forms people and tools read.

pub mod findings;
pub mod graph;
