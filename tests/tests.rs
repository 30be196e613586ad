//! Integration tests: the real `idgraph` binary on real files and a real SQLite store.
//!
//! One binary with a module per area (ripgrep's layout).

mod cli;
mod demo;
mod reconcile;
mod util;
