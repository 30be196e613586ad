//! Integration tests: the real `idgraph` binary on real files and a real SQLite store.
//!
//! One binary with a module per area (ripgrep's layout).

// Helpers here are test code too: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod aws;
mod chain;
mod cli;
mod daemon;
mod demo;
mod deploy;
mod disk;
mod export;
mod gates;
mod guard;
mod live;
mod logins;
mod ownership;
mod peers;
mod plan;
mod plan_cluster;
mod postgres;
mod reconcile;
mod scim;
mod secrets;
mod util;
mod watch;
