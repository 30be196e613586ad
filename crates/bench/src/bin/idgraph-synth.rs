//! `idgraph-synth`: writes a synthetic organisation as the file exports idgraph reads —
//! a SCIM ListResponse, `aws identitystore list-users` output, a `pg_user` CSV per target —
//! plus an `idgraph.toml` for them and `expected.json` with the findings idgraph must report.

use std::path::PathBuf;

use clap::Parser;
use idgraph_bench::{write_exports, Params};

/// Writes a synthetic organisation's exports.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    params: Params,
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let summary = write_exports(&args.params, &args.out)?;
    println!("{summary}");
    Ok(())
}
