//! Progress of long work (parsing a tree, linting a range, testing a
//! series), for a progress bar. The libraries report through [`Progress`]
//! and never print; the `kvmtk` binary draws the bar on a terminal.

/// Receives the progress of long work. Called from several threads.
pub trait Progress: Sync {
    /// A new stage begins; `total` is its number of steps when known.
    fn stage(&self, name: &str, total: Option<u64>);
    /// `n` more steps of the current stage are done.
    fn advance(&self, n: u64);
    /// What the current step is (a patch's name, a commit): shown beside
    /// the stage.
    fn detail(&self, _what: &str) {}
    /// The work is over.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _name: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
