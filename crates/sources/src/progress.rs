//! How a long fetch tells the operator how far it is: a 200,000-user identity store takes
//! minutes to page through.

/// Receives progress of fetches. Implementations must be cheap: sources call it per page.
pub trait Progress: Send + Sync {
    /// `source` has fetched `pages` pages holding `objects` objects so far, of `total`
    /// when the source says how many there are.
    fn update(&self, source: &str, pages: u64, objects: u64, total: Option<u64>);
    /// `source` is done, successfully or not.
    fn finish(&self, source: &str);
}

/// Progress that goes nowhere: the default, and what tests use.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _source: &str, _pages: u64, _objects: u64, _total: Option<u64>) {}
    fn finish(&self, _source: &str) {}
}
