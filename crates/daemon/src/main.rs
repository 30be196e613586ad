//! The `idgraph` binary: parse the command line, start logging, run, exit.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use idgraph::cli::{execute, Cli, LogFormat, EXIT_USAGE};
use idgraph_sources::{scrub, Scrubbing};
use tracing_subscriber::EnvFilter;

/// A run parses and indexes millions of small strings on several threads at once; glibc's
/// allocator spends more time on them than the parsing does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the runtime waits at exit for tasks and blocking threads: a blocking read that
/// never returns (a FIFO, a stalled mount) must not keep the process from exiting.
const EXIT_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => {
            let _ = usage.print();
            // Help and version go to stdout and succeed; a usage error is EX_USAGE.
            return ExitCode::from(if usage.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    // Logs go to stderr so that `--format json` output on stdout stays parseable.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(cli.default_log_level()));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(cli.color.enabled(
            std::io::stderr().is_terminal(),
            std::env::var("NO_COLOR").ok().as_deref(),
        ))
        .with_writer(|| Scrubbing(std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(execute(cli));
    runtime.shutdown_timeout(EXIT_GRACE);
    match result {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("error: {}", scrub(&format!("{error:#}")));
            ExitCode::from(1)
        }
    }
}
