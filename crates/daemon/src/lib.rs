//! idgraph, the service: configuration, the command line, one reconciliation run, and
//! what the commands print. `main.rs` only parses arguments and maps the result to an
//! exit status.
//!
//! # Layout
//! - [`activity`]: the logins a run reads, the findings about them, and what it stores.
//! - [`config`]: the TOML configuration, environment overrides, validation, and building
//!   each configured source.
//! - [`daemon`]: `idgraph run`: schedule, HTTP, shutdown.
//! - [`export`]: the compliance evidence bundle.
//! - [`http`]: the daemon's HTTP server and its limits on slow and idle clients.
//! - [`reconcile`]: [`reconcile::reconcile_once`], fetch → graph → diff → store.
//! - [`cli`]: the commands.
//! - [`metrics`]: the Prometheus metrics.
//! - [`output`]: the JSON contract and the text a terminal shows.
//! - [`plan`]: `idgraph plan`, remediation SQL for orphaned users, never executed.
//! - [`progress`]: progress of long fetches on a terminal.
//! - [`watched`]: watched runs, targeted re-checks of the IdP users that changed.
//! - `watcher`: the daemon's watcher of changed IdP users (`[watch]`).

pub mod activity;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod export;
pub mod http;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod watched;
mod watcher;
